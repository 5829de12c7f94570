"""Pipelines (seed 002, diagram 4): a batch job, checks on its result, a notification.

The dataclasses the pipeline workflow, its step workflows and activities exchange, and
the pure parts of the steps: assertions on the previous step's result, and the webhook
payload (Slack's incoming-webhook format, which most chat tools accept too). This module
is imported by workflow code: standard library and Crucible dataclasses only.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crucible.core.batch.models import BatchJobRequest

STEP_TYPES = ("batch", "validate", "notify")
#: Assertion operators; a list is compared by its length.
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
PRESENCE = ("exists", "missing")


@dataclass
class Assertion:
    """``path`` (dotted, into the previous step's result) ``op`` ``value``."""

    path: str
    op: str
    value: Any = None


@dataclass
class PipelineStep:
    name: str
    type: str
    batch: BatchJobRequest | None = None
    assertions: list[Assertion] = field(default_factory=list)
    #: The webhook's URL is a secret (it carries the token); steps hold a reference to it.
    webhook_secret: str | None = None
    webhook_host: str | None = None
    text: str | None = None


@dataclass
class PipelineDefinition:
    pipeline_id: str
    name: str
    steps: list[PipelineStep]


@dataclass
class PipelineRunInput:
    """A run of a pipeline. Its steps are read when the run starts, so edits apply to the next run."""

    pipeline_id: str
    batch_task_queue: str | None = None
    segment_s: float = 5.0
    heartbeat_timeout_s: float = 10.0


@dataclass
class PipelineRunResult:
    pipeline_id: str
    steps: list[dict[str, Any]]


@dataclass
class StepInput:
    """A validate or notify step, run as a child workflow of the pipeline run."""

    pipeline_run_id: str
    pipeline_name: str
    index: int
    step: PipelineStep
    previous: dict[str, Any] | None
    results: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StepResult:
    passed: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadPipelineInput:
    pipeline_id: str


@dataclass
class PostWebhookInput:
    url_secret: str
    payload: dict[str, Any]


def lookup(result: Mapping[str, Any] | None, path: str) -> tuple[bool, Any]:
    """(found, value) of a dotted ``path`` in ``result``; list items by index."""
    value: Any = result
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def check(assertion: Assertion, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """One assertion's outcome: ``passed``, what was found, and why when it failed."""
    found, actual = lookup(result, assertion.path)
    outcome: dict[str, Any] = {"path": assertion.path, "op": assertion.op, "expected": assertion.value}
    if assertion.op in PRESENCE:
        passed = found == (assertion.op == "exists")
        return {**outcome, "passed": passed, "actual": actual}
    if not found:
        return {
            **outcome,
            "passed": False,
            "actual": None,
            "reason": f"{assertion.path} is not in the result",
        }
    if isinstance(actual, list | dict):
        actual = len(actual)
    try:
        passed = bool(OPERATORS[assertion.op](actual, assertion.value))
    except TypeError:
        return {
            **outcome,
            "passed": False,
            "actual": actual,
            "reason": f"cannot compare {type(actual).__name__} with {type(assertion.value).__name__}",
        }
    reason = (
        None if passed else f"{assertion.path} is {actual!r}, expected {assertion.op} {assertion.value!r}"
    )
    return {**outcome, "passed": passed, "actual": actual, **({"reason": reason} if reason else {})}


def webhook_payload(
    pipeline: str, run_id: str, results: list[dict[str, Any]], text: str | None
) -> dict[str, Any]:
    """A message in Slack's incoming-webhook format: ``text`` plus blocks, one line per step."""
    headline = text or f"Pipeline *{pipeline}* run `{run_id}`: every step passed"
    lines = [f"• {r['step']} ({r['type']}): {r.get('outcome', 'done')}" for r in results]
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines) or "no steps"}},
        ],
    }

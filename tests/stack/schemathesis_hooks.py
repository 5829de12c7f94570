"""Schemathesis hooks: positive test cases that keep the rules JSON Schema cannot state.

A few of the API's rules relate one field to another, read a string as a document (an
inline spec, PromQL, a Chaos Toolkit file, a cron expression), or depend on the server's
settings (the command allowlist) or on another resource (a backfill's schedule). The OpenAPI
document states every rule it can; a body Schemathesis generates from it as valid may still
break one of these, and the API answers 422 naming the field.

So, as Schemathesis suggests for such rules, its generator is extended here: each positive
test case of these operations is mended where it breaks one of them (and only there), so
that ``positive_data_acceptance`` holds the API to "valid data is accepted" with its default
statuses. Negative cases are left as generated.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
import yaml
from jsonschema import SchemaError, validators
from pydantic import ValidationError

from crucible.api.saga_models import SagaCreate
from crucible.core.chaos.chaostoolkit import from_chaostoolkit
from crucible.core.chaos.faults import fault_from_dict
from crucible.core.errors import InvalidRequestError
from crucible.core.qa.spec import Spec, parse_document
from crucible.core.schedules import check_cron, check_time_zone, schedule_id_for

Body = dict[str, Any]

#: An OpenAPI document, as YAML text, for a ``spec`` given as text.
SPEC_TEXT = yaml.safe_dump(
    {
        "openapi": "3.1.0",
        "info": {"title": "inline", "version": "1"},
        "paths": {"/ping": {"get": {"responses": {"200": {"description": "ok"}}}}},
    }
)
#: The one executable the test stack's allowlist has (CRUCIBLE_CHAOS_COMMANDS).
ALLOWED_COMMAND = "echo"
#: A Chaos Toolkit experiment with nothing the test stack cannot run.
CHAOS_TOOLKIT = {
    "version": "1.0.0",
    "title": "imported",
    "description": "",
    "steady-state-hypothesis": {
        "title": "up",
        "probes": [
            {
                "type": "probe",
                "name": "up",
                "tolerance": 200,
                "provider": {"type": "http", "url": "http://127.0.0.1:9/health", "timeout": 1},
            }
        ],
    },
    "method": [
        {
            "type": "action",
            "name": "say",
            "provider": {"type": "process", "path": ALLOWED_COMMAND, "arguments": "fault", "timeout": 5},
            "pauses": {"after": 5},
        }
    ],
}
MAX_SAMPLES = 1000
SLO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/-]*$")


def qa_run(body: Body) -> None:
    """An inline ``spec`` given as text reads as an OpenAPI or Swagger document."""
    if isinstance(body.get("spec"), str):
        try:
            Spec(parse_document(body["spec"]))
        except Exception:
            body["spec"] = SPEC_TEXT


def saga_test(body: Body) -> None:
    """``failure_event`` is one of ``expected_events``; ``compensation_events`` are among them."""
    expected = body.get("expected_events")
    if not isinstance(expected, list) or not expected:
        return
    if isinstance(body.get("failure_event"), str) and body["failure_event"] not in expected:
        body["failure_event"] = expected[-1]
    if isinstance(body.get("compensation_events"), list):
        body["compensation_events"] = [name for name in body["compensation_events"] if name in expected]


def batch_job(job: Body) -> None:
    """``output`` is not the input file; the schema processor's ``schema`` is a JSON Schema."""
    if isinstance(job.get("output"), str) and job["output"] == job.get("input"):
        job["output"] = job["output"][:4000] + ".out"
    options = job.get("options")
    if isinstance(options, dict) and "schema" in options:
        try:
            validators.validator_for(options["schema"]).check_schema(options["schema"])
        except (SchemaError, TypeError, AttributeError):
            options["schema"] = {"type": "object"}


def saga(body: Body) -> None:
    """Each capture has its own name; a placeholder names a capture made before it."""
    try:
        if not SagaCreate.model_validate(body).errors():
            return
    except ValidationError:
        return
    taken: set[str] = set()
    for step in body["steps"]:
        capture = step["action"].get("capture") or {}
        for name in [name for name in capture if name in taken]:
            del capture[name]
        taken |= set(capture)
    body["steps"] = _without_placeholders(body["steps"])


def _without_placeholders(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("{{", "{ {")
    if isinstance(value, list):
        return [_without_placeholders(item) for item in value]
    if isinstance(value, dict):
        return {key: item if key == "capture" else _without_placeholders(item) for key, item in value.items()}
    return value


def pipeline(body: Body) -> None:
    for step in body.get("steps") or []:
        if isinstance(step, dict) and isinstance(step.get("job"), dict):
            batch_job(step["job"])


def _timing(body: Body, phases: dict[str, float]) -> None:
    """Each phase holds at most 1000 samples at ``monitoring_interval_s``."""
    longest = max(
        [0.0, *(value for name in phases if isinstance(value := body.get(name, phases[name]), int | float))]
    )
    interval = body.get("monitoring_interval_s", 10.0)
    if isinstance(interval, int | float) and longest / interval > MAX_SAMPLES:
        body["monitoring_interval_s"] = min(3600.0, math.ceil(longest / MAX_SAMPLES) + 1.0)


def _window(body: Body) -> None:
    """A window ends after it starts."""
    window = (body.get("schedule") or {}).get("window")
    if isinstance(window, dict):
        _ordered(window, "start", "end")


def _ordered(span: Body, start_field: str, end_field: str) -> None:
    try:
        start, end = (_moment(span[name]) for name in (start_field, end_field))
    except (KeyError, TypeError, ValueError, AttributeError):
        return
    if end <= start:
        span[end_field] = (start + timedelta(hours=1)).isoformat()


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _calls(body: Body) -> list[Body]:
    """Every command call in an experiment body: its SLOs' and its fault's actions'."""
    holders = [*(body.get("slos") or []), *((body.get("fault") or {}).get("method") or [])]
    holders += (body.get("fault") or {}).get("rollbacks") or []
    return [h["process"] for h in holders if isinstance(h, dict) and isinstance(h.get("process"), dict)]


def _slos(slos: list[Any]) -> None:
    """SLO names are unique; a prometheus SLO's query is PromQL."""
    seen: set[str] = set()
    for index, slo in enumerate(slos):
        if not isinstance(slo, dict):
            continue
        name = slo.get("name")
        if isinstance(name, str) and name in seen:
            renamed = f"{name[:90]}-{index}"
            slo["name"] = renamed if SLO_NAME.match(renamed) else f"slo-{index}"
        if isinstance(slo.get("name"), str):
            seen.add(slo["name"])
        if slo.get("kind", "prometheus") == "prometheus" and isinstance(slo.get("query"), str):
            slo["query"] = "up"


def _experiment(body: Body, phases: dict[str, float]) -> None:
    """What an experiment's own fields and an import's overrides share."""
    _timing(body, phases)
    _window(body)
    if isinstance(body.get("slos"), list):
        _slos(body["slos"])
    preflight = body.get("preflight")
    if isinstance(preflight, dict) and preflight.get("alerts_query"):
        preflight["alerts_query"] = "ALERTS"  # PromQL
    for call in _calls(body):
        if isinstance(call.get("command"), list) and call["command"]:
            call["command"][0] = ALLOWED_COMMAND  # the server's allowlist


def chaos_experiment(body: Body) -> None:
    _experiment(body, {"duration_s": 0.0, "baseline_window_s": 30.0, "recovery_timeout_s": 120.0})
    params = (body.get("fault") or {}).get("params")
    if (body.get("fault") or {}).get("provider") == "proxy" and isinstance(params, dict):
        try:  # a proxy fault is one of the faults the chaos proxy knows, each with its own fields
            fault_from_dict(params["fault"])
        except (InvalidRequestError, TypeError, KeyError, AttributeError, ValueError):
            params["fault"] = {"type": "latency", "ms": 5}


def chaos_import(body: Body) -> None:
    """``experiment`` is a Chaos Toolkit experiment Crucible can run."""
    document = body.get("experiment")
    try:
        if isinstance(document, str):
            document = yaml.safe_load(document)
        from_chaostoolkit(document)
    except Exception:
        body["experiment"] = copy.deepcopy(CHAOS_TOOLKIT)
    if isinstance(body.get("overrides"), dict):
        _experiment(
            body["overrides"], {"duration_s": 60.0, "baseline_window_s": 30.0, "recovery_timeout_s": 120.0}
        )


def backfill(body: Body) -> None:
    """A backfill ends after it starts, and its schedule acts at most 1000 times in it (it
    acts at most once a second)."""
    _ordered(body, "start", "end")
    try:
        start, end = _moment(body["start"]), _moment(body["end"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return
    if (end - start).total_seconds() > 900:
        body["end"] = (start + timedelta(seconds=900)).isoformat()


def schedule(body: Body) -> None:
    """A name makes an id; cron and the time zone are ones Temporal reads; a target is the
    body of the run it starts, with that run's own rules."""
    for field, check, mended in (
        ("name", schedule_id_for, "nightly"),
        ("cron", check_cron, "17 3 * * *"),
        ("time_zone", check_time_zone, "UTC"),
    ):
        if isinstance(body.get(field), str):
            try:
                check(body[field])
            except ValueError:
                body[field] = mended
    target = body.get("target")
    if not isinstance(target, dict):
        return
    if target.get("kind") == "qa" and isinstance(target.get("run"), dict):
        qa_run(target["run"])
    elif target.get("kind") == "batch" and isinstance(target.get("job"), dict):
        batch_job(target["job"])


MENDS: dict[str, Callable[[Body], None]] = {
    "POST /api/v1/qa-runs": qa_run,
    "POST /api/v1/sagas": saga,
    "POST /api/v1/saga-tests": saga_test,
    "POST /api/v1/batch-jobs": batch_job,
    "POST /api/v1/pipelines": pipeline,
    "POST /api/v1/chaos-experiments": chaos_experiment,
    "POST /api/v1/chaos-experiments/import": chaos_import,
    "POST /api/v1/schedules": schedule,
    "POST /api/v1/schedules/{schedule_id}/backfill": backfill,
}


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    mend = MENDS.get(case.operation.label)
    meta = case.meta
    if (
        mend is None
        or meta is None
        or not meta.generation.mode.is_positive
        or not isinstance(case.body, dict)
    ):
        return case
    body = copy.deepcopy(case.body)
    mend(body)
    case.body = body
    return case

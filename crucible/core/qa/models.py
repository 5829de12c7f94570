"""The dataclasses a QA run's workflow and activities exchange.

They carry ids and compact summaries only: specs, scenarios and results live in
PostgreSQL (:mod:`crucible.core.qa.store`), header values in the secret store.

No ``from __future__ import annotations`` here: Temporal's converter reads a dataclass's
type hints each time it decodes one, and string annotations make that a compile per field.
"""

import re
from dataclasses import dataclass, field

from crucible.core.qa.spec import Operation

GENERATORS = ("schema", "llm")


@dataclass
class QaFilters:
    """Which operations a run tests. Empty include lists include everything."""

    include_tags: list[str] = field(default_factory=list)
    exclude_tags: list[str] = field(default_factory=list)
    include_paths: list[str] = field(default_factory=list)  # regular expressions
    exclude_paths: list[str] = field(default_factory=list)
    include_methods: list[str] = field(default_factory=list)
    exclude_methods: list[str] = field(default_factory=list)

    def admits(self, op: Operation) -> bool:
        method = op.method.upper()
        if self.include_methods and method not in {m.upper() for m in self.include_methods}:
            return False
        if method in {m.upper() for m in self.exclude_methods}:
            return False
        if self.include_tags and not set(op.tags) & set(self.include_tags):
            return False
        if set(op.tags) & set(self.exclude_tags):
            return False
        if self.include_paths and not any(re.search(p, op.path) for p in self.include_paths):
            return False
        return not any(re.search(p, op.path) for p in self.exclude_paths)


@dataclass
class QaPackageRunInput:
    """What a QA run does. Header values are not here: ``headers_secret`` refers to them."""

    base_url: str
    spec_url: str | None = None
    generator: str = "schema"
    concurrency: int = 8
    filters: QaFilters = field(default_factory=QaFilters)
    headers_secret: str | None = None
    header_names: list[str] = field(default_factory=list)
    min_pass_rate: float = 1.0
    request_timeout_s: float = 10.0
    max_response_time_ms: float | None = None
    seed: int = 0
    known_failures: list[str] = field(default_factory=list)
    replay_of: str | None = None
    follow_redirects: bool = False
    ai_attempts: int = 3
    ai_token_budget: int = 200_000
    #: A stored request (a schedule's) that the run copies as its own: a scheduled run has no
    #: request row of its own until it makes one.
    template: str | None = None


@dataclass
class QaPackageRunResult:
    verdict: str
    pass_rate: float
    operations: int
    passed: int
    failed: int
    new_failures: int


@dataclass
class FetchSpecInput:
    run_id: str
    spec_url: str | None
    filters: QaFilters
    replay_of: str | None = None
    template: str | None = None


@dataclass
class FetchSpecResult:
    version: str
    title: str
    operations: list[str]  # operation keys, in spec order, after the filters
    problems: int = 0  # operations whose part of the spec is broken
    replayed_scenarios: int = 0


@dataclass
class GenerateScenariosInput:
    run_id: str
    operations: list[str]
    attempts: int = 3
    token_budget: int = 200_000  # what this batch may still spend
    concurrency: int = 4


@dataclass
class GeneratedScenarios:
    """How the LLM did for one operation: each failed attempt's reason, then scenarios or a fallback."""

    operation: str
    failures: list[str] = field(default_factory=list)
    scenarios: int = 0
    tokens: int = 0
    fallback: str | None = None  # why the schema generator makes this operation's scenarios


@dataclass
class GenerateScenariosResult:
    operations: list[GeneratedScenarios]


@dataclass
class ExecuteOperationsInput:
    run_id: str
    operations: list[str]
    base_url: str
    headers_secret: str | None = None
    seed: int = 0
    concurrency: int = 8
    request_timeout_s: float = 10.0
    max_response_time_ms: float | None = None
    follow_redirects: bool = False


@dataclass
class OperationOutcome:
    """One operation's result, as compact as the workflow's history needs."""

    operation: str
    scenarios: int
    passed: bool
    failed_checks: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    source: str = "schema"


@dataclass
class ExecuteOperationsResult:
    outcomes: list[OperationOutcome]


@dataclass
class EvaluateQaInput:
    run_id: str
    min_pass_rate: float = 1.0
    known_failures: list[str] = field(default_factory=list)


@dataclass
class EvaluateQaResult:
    verdict: str
    pass_rate: float
    operations: int
    passed: int
    failed: int
    new_failures: list[str] = field(default_factory=list)
    known_failures_seen: int = 0

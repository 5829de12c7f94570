"""What the QA benchmark measures and the options it takes: shared by the run and its report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.qa_history import RunHistory, Timeline

SLOW, FAST = "slow", "fast"  # the targets: --delay-ms, and 0 ms
CRUCIBLE, PLAIN = "crucible", "plain"
#: Crucible's runs on a target again, right after Schemathesis' run on it: the machine's speed
#: drifts over the minutes Schemathesis takes, so its rate is compared with Crucible's around it.
AFTER = "after"
PARTS = ("worker", "api", "temporal", "postgres", "kafka", SLOW, FAST, "bench")
TARGET_RATIO = 2.0  # Crucible's time over the plain script's, at 10 ms, at most
TARGET_SPEEDUP = 10.0  # Crucible's scenarios/s over Schemathesis's cases/s, at least
RUN_TIMEOUT_S = 600


@dataclass(frozen=True)
class Options:
    operations: int = 200
    concurrency: int = 8
    delay_ms: float = 10.0
    rounds: int = 3
    warmup: int = 1
    seed: int = 0
    schemathesis: bool = True
    schemathesis_max_examples: int | None = None
    schemathesis_timeout: float = 1200.0
    markdown: Path | None = None
    keep: bool = False


@dataclass
class Sample:
    """One timed pass of one contender against one target."""

    target: str
    contender: str
    round: int
    scenarios: int
    seconds: float
    cpu: dict[str, float]
    run_id: str | None = None


@dataclass
class CrucibleRun:
    run_id: str
    seconds: float
    scenarios: int
    history: RunHistory
    timeline: Timeline


@dataclass
class SchemathesisResult:
    command: list[str]
    exit_code: int | None
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    report: dict[str, Any] | None
    timed_out: bool

    @property
    def cases(self) -> int:
        return int(((self.report or {}).get("test_cases") or {}).get("generated") or 0)

    @property
    def running_time(self) -> float:
        return float((self.report or {}).get("running_time") or self.wall_seconds)


@dataclass
class Results:
    options: Options
    scenarios: int = 0
    operations: int = 0
    samples: list[Sample] = field(default_factory=list)
    runs: dict[str, list[CrucibleRun]] = field(default_factory=dict)
    rss_ready_mb: dict[str, float] = field(default_factory=dict)
    rss_peak_mb: dict[str, float] = field(default_factory=dict)
    #: Target name → Schemathesis' run against it.
    schemathesis: dict[str, SchemathesisResult] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    total_seconds: float = 0.0

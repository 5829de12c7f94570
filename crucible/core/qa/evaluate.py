"""A QA run's evaluation: each operation's pass/fail with reasons, the verdict and coverage."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from crucible.core.qa.checks import SPEC_PROBLEM, declared_code
from crucible.core.qa.store import OperationResults

PASSED = "PASSED"
FAILED = "FAILED"


def failure_key(operation: str, check: str) -> str:
    """How a baseline names a failure: ``"GET /products/{id} response_schema_conformance"``."""
    return f"{operation} {check}"


def normalise_failure_key(entry: str) -> str:
    """``"get  /x  check"`` as ``"GET /x check"``: methods in capitals, single spaces."""
    parts = entry.split()
    return " ".join([parts[0].upper(), *parts[1:]]) if parts else ""


def evaluate(
    operations: Sequence[dict[str, Any]],
    results: Mapping[str, OperationResults],
    *,
    min_pass_rate: float,
    known_failures: Sequence[str] = (),
) -> dict[str, Any]:
    """The evaluation stored with the run and shown in its reports.

    An operation passes when none of its scenarios failed a check, not counting the
    failures the ``known_failures`` baseline lists, and its part of the spec is sound.
    """
    known = {normalise_failure_key(k) for k in known_failures}
    nothing = OperationResults(0, set(), [])
    endpoints: list[dict[str, Any]] = []
    new_failures: set[str] = set()
    known_seen: set[str] = set()
    checks: Counter[str] = Counter()
    scenarios = 0
    for op in operations:
        key = op["key"]
        declared: list[str] = op.get("responses") or []
        found = results.get(key, nothing)
        scenarios += found.scenarios
        failures = [
            {"check": SPEC_PROBLEM, "message": problem, "expected": None, "actual": None, "path": None}
            for problem in op.get("problems") or []
        ] + found.failures
        failed_checks = sorted({f["check"] for f in failures})
        for check in failed_checks:
            checks[check] += 1
            (known_seen if failure_key(key, check) in known else new_failures).add(failure_key(key, check))
        ran = bool(found.scenarios) or bool(op.get("problems"))
        passed = ran and all(failure_key(key, c) in known for c in failed_checks)
        endpoints.append(
            {
                "operation": key,
                "operation_id": op.get("operation_id"),
                "tags": op.get("tags") or [],
                "status": ("PASSED" if passed else "FAILED") if ran else "NOT_RUN",
                "scenarios": found.scenarios,
                "failed_checks": failed_checks,
                "failures": failures,
                "problems": op.get("problems") or [],
                "coverage": {
                    "declared": sorted(declared),
                    "seen": sorted(found.statuses),
                    "undeclared_seen": sorted(
                        s for s in found.statuses if declared_code(op.get("responses") or [], s) is None
                    ),
                },
            }
        )
    total = len(endpoints)
    passed_count = sum(1 for e in endpoints if e["status"] == "PASSED")
    # No operation tested (filters that match nothing) proves nothing: it is not a pass.
    pass_rate = passed_count / total if total else 0.0
    return {
        "verdict": PASSED if total and pass_rate >= min_pass_rate else FAILED,
        "pass_rate": round(pass_rate, 4),
        "min_pass_rate": min_pass_rate,
        "operations": total,
        "passed": passed_count,
        "failed": total - passed_count,
        "scenarios": scenarios,
        "checks_failed": dict(sorted(checks.items())),
        "new_failures": sorted(new_failures),
        "known_failures_seen": sorted(known_seen),
        "known_failures_fixed": sorted(known - known_seen),
        "endpoints": endpoints,
    }

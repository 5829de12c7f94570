"""What a saga test asserts about the events it collected, each with its own pass/fail and reason.

- ``expected_events_in_order``: every expected type was seen, in the expected order (by the
  time of each type's first event); other types fail it unless ``allow_other_events``.
- ``no_duplicates``: no type was seen twice for the correlation id.
- ``compensation_complete``: every compensation event was seen.
- ``recovery_within``: from the first failure event to the last compensation event took at
  most ``recovery_within_s``.

This module is imported by workflow code: standard library only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from crucible.core.saga_tests.models import (
    COMPENSATION_COMPLETE,
    EXPECTED_ORDER,
    FAILED,
    NO_DUPLICATES,
    PASSED,
    RECOVERY_TIME,
    TRIGGER_ACCEPTED,
    AssertionResult,
    EventSummary,
    SagaTestSpec,
    TriggerResult,
)

#: Event types that sound like the failure a saga compensates (``PaymentFailed``, ``StockRejected``).
FAILURE_LIKE = re.compile(r"fail|reject|error|declin|timed?out|denied|abort", re.IGNORECASE)


def failure_event(spec: SagaTestSpec) -> str | None:
    """The event that starts compensation: given, or the first expected one that sounds like a failure."""
    if spec.failure_event is not None:
        return spec.failure_event
    return next((t for t in spec.expected_events if FAILURE_LIKE.search(t)), None)


def compensation_events(spec: SagaTestSpec) -> list[str]:
    """The events that prove compensation: given, or the expected events after the failure event."""
    if spec.compensation_events is not None:
        return list(spec.compensation_events)
    failure = failure_event(spec)
    if failure is None or failure not in spec.expected_events:
        return []
    return spec.expected_events[spec.expected_events.index(failure) + 1 :]


def first_of_each(events: Sequence[EventSummary]) -> dict[str, EventSummary]:
    """Each type's first event, in the order of ``events`` (which are ordered by time)."""
    firsts: dict[str, EventSummary] = {}
    for event in events:
        firsts.setdefault(event.type, event)
    return firsts


def _listed(types: Sequence[str]) -> str:
    return ", ".join(types) if types else "none"


def check_order(
    expected: Sequence[str], events: Sequence[EventSummary], *, allow_other: bool = False
) -> AssertionResult:
    observed = list(first_of_each(events))
    missing = [t for t in expected if t not in observed]
    unexpected = [t for t in observed if t not in expected]
    details = {"expected": list(expected), "observed": observed, "missing": missing, "unexpected": unexpected}
    position = {t: i for i, t in enumerate(observed)}
    previous: str | None = None
    last = -1
    for wanted in expected:
        after = f" (expected after {previous})" if previous else " (expected first)"
        if wanted not in position:
            return AssertionResult(EXPECTED_ORDER, False, f"{wanted} was not observed{after}", details)
        if position[wanted] < last:
            reason = f"{wanted} came before {previous}; expected after it"
            return AssertionResult(EXPECTED_ORDER, False, reason, details)
        last, previous = position[wanted], wanted
    if unexpected and not allow_other:
        where = observed.index(unexpected[0])
        after = f" after {observed[where - 1]}" if where else " first"
        reason = f"unexpected {unexpected[0]}{after}; expected only {_listed(expected)}"
        return AssertionResult(EXPECTED_ORDER, False, reason, details)
    return AssertionResult(EXPECTED_ORDER, True, f"all {len(expected)} expected events, in order", details)


def check_duplicates(events: Sequence[EventSummary]) -> AssertionResult:
    counts = Counter(e.type for e in events)
    repeated = [t for t, n in counts.items() if n > 1]
    duplicates = {t: [f"{e.topic}/{e.partition}@{e.offset}" for e in events if e.type == t] for t in repeated}
    if not repeated:
        return AssertionResult(NO_DUPLICATES, True, f"each of {len(events)} events seen once")
    first = repeated[0]
    digests = {e.digest for e in events if e.type == first}
    same = " (the same message published again)" if len(digests) == 1 else ""
    reason = f"{first} seen {counts[first]} times{same}"
    if len(repeated) > 1:
        reason += f"; also repeated: {_listed(repeated[1:])}"
    return AssertionResult(NO_DUPLICATES, False, reason, {"duplicates": duplicates})


def check_compensation(spec: SagaTestSpec, events: Sequence[EventSummary]) -> AssertionResult | None:
    wanted = compensation_events(spec)
    if not wanted:
        return None
    seen = first_of_each(events)
    missing = [t for t in wanted if t not in seen]
    details = {"compensation_events": wanted, "missing": missing, "failure_event": failure_event(spec)}
    if missing:
        reason = f"compensation incomplete: {missing[0]} was not observed"
        if len(missing) > 1:
            reason += f" (nor {_listed(missing[1:])})"
        return AssertionResult(COMPENSATION_COMPLETE, False, reason, details)
    return AssertionResult(COMPENSATION_COMPLETE, True, f"observed {_listed(wanted)}", details)


def check_recovery(spec: SagaTestSpec, events: Sequence[EventSummary]) -> AssertionResult | None:
    limit = spec.recovery_within_s
    failure, wanted = failure_event(spec), compensation_events(spec)
    if limit is None or failure is None or not wanted:
        return None
    seen = first_of_each(events)
    details: dict[str, object] = {"limit_s": limit, "from": failure}
    if failure not in seen:
        return AssertionResult(RECOVERY_TIME, False, f"{failure} was not observed: nothing to time", details)
    missing = [t for t in wanted if t not in seen]
    if missing:
        reason = f"not recovered: {missing[0]} was not observed within the test's time"
        return AssertionResult(RECOVERY_TIME, False, reason, details)
    last = max((seen[t] for t in wanted), key=lambda e: e.time_s)
    took = round(max(0.0, last.time_s - seen[failure].time_s), 3)
    details |= {"to": last.type, "recovery_s": took}
    if took > limit:
        return AssertionResult(
            RECOVERY_TIME, False, f"recovery took {took:g} s, more than {limit:g} s", details
        )
    return AssertionResult(RECOVERY_TIME, True, f"recovered in {took:g} s (within {limit:g} s)", details)


def check_trigger(result: TriggerResult) -> AssertionResult:
    details = {"status": result.status, "correlation_id": result.correlation_id}
    if not 200 <= result.status < 300:
        return AssertionResult(TRIGGER_ACCEPTED, False, f"the trigger answered {result.status}", details)
    if result.correlation_id is None:
        reason = f"no correlation id: {result.problem or 'the response has none'}"
        return AssertionResult(TRIGGER_ACCEPTED, False, reason, details)
    return AssertionResult(TRIGGER_ACCEPTED, True, f"the trigger answered {result.status}", details)


def evaluate(spec: SagaTestSpec, events: Sequence[EventSummary]) -> list[AssertionResult]:
    """The event assertions, in the order they are reported."""
    results = [
        check_order(spec.expected_events, events, allow_other=spec.allow_other_events),
        check_duplicates(events),
        check_compensation(spec, events),
        check_recovery(spec, events),
    ]
    return [r for r in results if r is not None]


def verdict_of(assertions: Sequence[AssertionResult]) -> str:
    return PASSED if all(a.passed for a in assertions) else FAILED

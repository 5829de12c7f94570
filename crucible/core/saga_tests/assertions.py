"""What a saga test asserts about the events it collected, each with its own pass/fail and reason.

- ``expected_events_in_order``: every expected type was seen, in the expected order (by the
  time of each type's first event); other types fail it unless ``allow_other_events``.
- ``no_duplicates``: no event was delivered twice: two messages with one event id (``event_id_path``),
  or, for messages without one, with the same value.
- ``no_repeated_types``: no type was seen in more than one event, but for ``allow_repeated_types``.
- ``compensation_complete``: every compensation event was seen.
- ``recovery_within``: from the first failure event to the last compensation event took at
  most ``recovery_within_s``.

This module is imported by workflow code: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from crucible.core.saga_tests.models import (
    COMPENSATION_COMPLETE,
    EXPECTED_ORDER,
    FAILED,
    NO_DUPLICATES,
    NO_REPEATED_TYPES,
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


def _where(event: EventSummary) -> str:
    return f"{event.topic}/{event.partition}@{event.offset}"


def check_duplicates(events: Sequence[EventSummary]) -> AssertionResult:
    """No event delivered twice: a repeat is a message with the identity of an earlier one."""
    by_identity: dict[str, list[EventSummary]] = {}
    for event in events:
        by_identity.setdefault(event.identity, []).append(event)
    repeats = [same for same in by_identity.values() if len(same) > 1]
    if not repeats:
        return AssertionResult(NO_DUPLICATES, True, f"each of {len(events)} events delivered once")
    duplicates = [
        {"identity": same[0].identity, "type": same[0].type, "at": [_where(e) for e in same]}
        for same in repeats
    ]
    first = repeats[0][0]
    how = "with the same event id" if first.event_id is not None else "the same message"
    reason = f"{first.type} delivered {len(repeats[0])} times ({how}: {first.identity})"
    if len(repeats) > 1:
        reason += f"; also delivered again: {_listed([same[0].type for same in repeats[1:]])}"
    return AssertionResult(NO_DUPLICATES, False, reason, {"duplicates": duplicates})


def check_repeated_types(events: Sequence[EventSummary], allowed: Sequence[str] = ()) -> AssertionResult:
    """No type seen in two different events (a repeat of one event is :func:`check_duplicates`'s)."""
    distinct: dict[str, set[str]] = {}
    for event in events:
        distinct.setdefault(event.type, set()).add(event.identity)
    repeated = {t: len(ids) for t, ids in distinct.items() if len(ids) > 1}
    refused = [t for t in repeated if t not in allowed]
    details = {
        "repeated": {t: [_where(e) for e in events if e.type == t] for t in repeated},
        "allowed": list(allowed),
    }
    if refused:
        first = refused[0]
        reason = f"{first} seen in {repeated[first]} different events"
        if len(refused) > 1:
            reason += f"; also repeated: {_listed(refused[1:])}"
        return AssertionResult(
            NO_REPEATED_TYPES, False, reason + " (allow_repeated_types lets a type repeat)", details
        )
    if repeated:
        shown = ", ".join(f"{t} {n} times" for t, n in repeated.items())
        return AssertionResult(NO_REPEATED_TYPES, True, f"repeated as allowed: {shown}", details)
    return AssertionResult(NO_REPEATED_TYPES, True, "each type seen in one event", details)


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
    untimed = [t for t in [failure, *wanted] if seen[t].time_s is None]
    if untimed:
        reason = f"{untimed[0]} has no time (neither at time_path nor a Kafka timestamp): nothing to time"
        return AssertionResult(RECOVERY_TIME, False, reason, details)
    last = max((seen[t] for t in wanted), key=lambda e: e.time_s or 0.0)
    took = round(max(0.0, (last.time_s or 0.0) - (seen[failure].time_s or 0.0)), 3)
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
        check_repeated_types(events, spec.allow_repeated_types),
        check_compensation(spec, events),
        check_recovery(spec, events),
    ]
    return [r for r in results if r is not None]


def verdict_of(assertions: Sequence[AssertionResult]) -> str:
    return PASSED if all(a.passed for a in assertions) else FAILED

"""What ``crucible sagas run`` shows: a line per state transition while the saga runs, then how it ended."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.markup import escape

from crucible.cli.api_calls import EXIT_FAILED, EXIT_OK
from crucible.cli.common import errors

#: A saga that was undone: it ended ``SagaCancelled`` with every completed step compensated.
EXIT_COMPENSATED = 1

SAGA_COMPLETED = "SagaCompleted"
SAGA_CANCELLED = "SagaCancelled"
MANUAL_INTERVENTION = "ManualIntervention"

#: Room for the longest state or event name (``INTERVENTION_RESOLVED``) before what it says.
_NAME_WIDTH = 22
_STEP_STATE = re.compile(r"^Step(\d+)_(\w+)$")
_ERROR_TYPE = re.compile(r"^[A-Z][A-Za-z]+: ")
_COLOURS = {
    "Completed": "green",
    SAGA_COMPLETED: "green",
    "Failed": "red",
    "CompensationFailed": "red",
    MANUAL_INTERVENTION: "bold red",
    "Compensating": "yellow",
    SAGA_CANCELLED: "yellow",
    "STEP_COMPENSATED": "yellow",
}


def resolve_commands(run_id: str) -> list[str]:
    """What to type to get a saga out of ``ManualIntervention``: retry, or record it was fixed by hand."""
    return [
        f"after fixing the service:    crucible sagas resolve {run_id} --retry --note '…'",
        f"having put it right by hand: crucible sagas resolve {run_id} --mark-resolved --note '…'",
    ]


class SagaWatch:
    """Prints a line per state transition and compensation event of a saga it is shown."""

    def __init__(self, out: Console, run_id: str) -> None:
        self.out = out
        self.run_id = run_id
        self.names: dict[int, str] = {}

    def see(self, envelope: dict[str, Any]) -> None:
        kind, data = envelope["type"], envelope.get("data") or {}
        if kind == "REQUESTED":
            self.names = {int(s["step"]): str(s["name"]) for s in data.get("steps") or []}
            return
        name = str(data.get("to")) if kind == "STATE_CHANGED" else kind
        text = self._state(name, data) if kind == "STATE_CHANGED" else self._event(kind, data)
        if text is None:
            return
        colour = _COLOURS.get(name) or _COLOURS.get(_STEP_STATE.sub(r"\2", name), "")
        if kind == "STEP_VERIFIED":
            colour = "green" if data.get("passed") else "red"
        shown = f"[{colour}]{name:<{_NAME_WIDTH}}[/{colour}]" if colour else f"{name:<{_NAME_WIDTH}}"
        self.out.print(f"{shown}{escape(text)}".rstrip(), soft_wrap=True)
        if name == MANUAL_INTERVENTION:
            self.out.print("  the saga waits; to go on, run one of:")
            for command in resolve_commands(self.run_id):
                self.out.print(f"  {escape(command)}", soft_wrap=True)

    def step(self, data: dict[str, Any]) -> str:
        """``step 2 reserve stock``, of an event's data (or a summary's entry) that has a step number."""
        number = data.get("step")
        name = data.get("name") or (self.names.get(number, "") if isinstance(number, int) else "")
        return f"step {number} {name}".rstrip()

    def _state(self, state: str, data: dict[str, Any]) -> str:
        if state == "SagaInitiated":
            return f"{data.get('name')}: {_plural(data.get('steps'), 'step')}"
        if match := _STEP_STATE.match(state):
            return self._step_state(match[2], data)
        if state == "Compensating" and data.get("after"):
            return f"{self.step(data)}: resolved with {data['after']}"
        if state == "Compensating":
            order = data.get("steps") or []
            last_first = ", last first" if len(order) > 1 else ""
            return f"{data.get('reason')}; compensating {_steps(order)}{last_first}"
        if state == "CompensationFailed":
            return f"{self.step(data)}: {_failure(data)}"
        if state == MANUAL_INTERVENTION:
            return f"{self.step(data)}: its compensation keeps failing"
        if state == "CompensationCompleted":
            fully, restored = _yes_no(data.get("fully_compensated")), _yes_no(data.get("restored"))
            return f"fully compensated: {fully}, restored: {restored}"
        if state in (SAGA_COMPLETED, SAGA_CANCELLED):
            failed = f"; step {data['failed_step']} failed" if data.get("failed_step") else ""
            return f"completed {_steps(data.get('completed_steps'))}{failed}"
        return ""

    def _step_state(self, phase: str, data: dict[str, Any]) -> str:
        step = self.step(data)
        if phase == "InProgress":
            return f"{step}: {data.get('request')}"
        if phase == "Completed":
            captured = _captured(data.get("captured"))
            attempts = f" on attempt {data['attempt']}" if (data.get("attempt") or 1) > 1 else ""
            answered = f"{data['status']}{attempts}" if data.get("status") else f"done{attempts}"
            return f"{step}: {answered}" + (f", captured {captured}" if captured else "")
        if phase == "Failed":
            uncertain = (
                "; it may have taken effect, so it is compensated too"
                if data.get("outcome_uncertain")
                else ""
            )
            return f"{step}: {_failure(data)}{uncertain}"
        return step

    def _event(self, kind: str, data: dict[str, Any]) -> str | None:
        step = self.step(data)
        if kind == "STOP_REQUESTED":
            cut = f"; step {data['interrupted_step']} interrupted" if data.get("interrupted_step") else ""
            return f"by {data.get('by')}: {data.get('reason')}{cut}"
        if kind == "SIGNAL_IGNORED":
            return f"{data.get('signal')}: {data.get('why')}"
        if kind == "COMPENSATION_STARTED":
            again = f" (round {data['round']})" if (data.get("round") or 1) > 1 else ""
            return f"{step}: {data.get('request')}{again}"
        if kind == "STEP_COMPENSATED":
            return f"{step}: {data.get('status') or 'done'}"
        if kind == "COMPENSATION_SKIPPED":
            return f"{step}: it has no compensation"
        if kind == "INTERVENTION_RESOLVED":
            return f"{step}: {data.get('action')} ({data.get('note') or 'no note'})"
        if kind == "STEP_VERIFIED":
            why = f": {_reason(data['reason'])}" if data.get("reason") else ""
            return f"{step}: {'passed' if data.get('passed') else 'not passed'}{why}"
        return None


def print_summary(out: Console, watch: SagaWatch, run: dict[str, Any], result: dict[str, Any]) -> int:
    """Print how the saga ended, from its run and the data of its terminal event; its exit code."""
    ended = {**(run.get("summary") or {}), **result}
    status, state = run["status"], ended.get("state") or run.get("state")
    why = _why(ended)
    out.print(f"state:             {state}{f' ({why})' if why else ''}")
    completed = ended.get("completed_steps") or []
    out.print(
        "completed steps:   "
        + (", ".join(escape(watch.step({"step": n})) for n in completed) if completed else "none")
    )
    compensations = ended.get("compensations") or []
    if compensations:
        out.print("compensations:")
        for done in compensations:
            rounds = f", {done['rounds']} rounds" if (done.get("rounds") or 0) > 1 else ""
            note = f": {done['note']}" if done.get("note") else ""
            out.print(f"  {escape(watch.step(done))}: {done.get('outcome')}{rounds}{escape(note)}")
    if state != SAGA_COMPLETED and "restored" in ended:
        out.print(f"restored:          {_restored(ended)}")
    out.print(
        f"run:               {run['run_id']} ({status})\ntemporal:          {run['temporal_ui_url']}",
        soft_wrap=True,
    )
    return _exit_code(status, state, ended)


def _exit_code(status: str, state: str | None, ended: dict[str, Any]) -> int:
    if status == "COMPLETED" and state == SAGA_COMPLETED:
        return EXIT_OK
    if status == "COMPLETED" and state == SAGA_CANCELLED and ended.get("fully_compensated") is True:
        return EXIT_COMPENSATED
    err = errors()
    if status == "FAILED":
        reason = ended.get("message") or ended.get("reason") or "no reason given"
        err.print(f"[red]error:[/red] the saga failed: {escape(str(reason))}")
    elif status == "CANCELLED":
        err.print("[red]error:[/red] the saga was cancelled")
    if ended.get("not_compensated"):
        left = ended["not_compensated"]
        err.print(f"[red]error:[/red] {_steps(left)} {_were(left)} not compensated")
    if ended.get("marked_resolved"):
        by_hand = ended["marked_resolved"]
        done = f"{_steps(by_hand)} {_were(by_hand)} put right by hand"
        err.print(f"[red]error:[/red] {done}, not compensated by the saga")
    return EXIT_FAILED


def _why(ended: dict[str, Any]) -> str:
    if ended.get("stopped_by"):
        return f"{ended['stopped_by']}: {ended.get('reason')}"
    if ended.get("failed_step"):
        return f"step {ended['failed_step']} failed"
    return ""


def _restored(ended: dict[str, Any]) -> str:
    restored = ended.get("restored")
    if restored is None:
        return "unknown (no verify requests)"
    if restored:
        return "yes"
    failed = [v for v in ended.get("verifications") or [] if not v.get("passed")]
    return "no: " + "; ".join(escape(f"step {v['step']}: {_reason(v.get('reason'))}") for v in failed)


def _failure(data: dict[str, Any]) -> str:
    """A failed call's reason and attempt."""
    reason = _reason(data.get("reason"))
    attempt = f" (attempt {data['attempt']})" if data.get("attempt") else ""
    return f"{reason}{attempt}"


def _reason(reason: Any) -> str:
    """A failure's reason without the error type Temporal puts in front (``SagaCallFailed: …``)."""
    return _ERROR_TYPE.sub("", str(reason or ""), count=1)


def _captured(captured: Any) -> str:
    """What a step captured: its values (``order_id=o-1``), or only their names when that is all an
    event gives."""
    if isinstance(captured, dict):
        return ", ".join(f"{name}={value}" for name, value in sorted(captured.items()))
    return ", ".join(str(name) for name in captured or [])


def _yes_no(value: Any) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def _steps(numbers: Any) -> str:
    """``step 1``, ``steps 2, 1`` or ``no steps``."""
    numbers = list(numbers or [])
    listed = ", ".join(str(n) for n in numbers)
    return f"step {listed}" if len(numbers) == 1 else f"steps {listed}" if numbers else "no steps"


def _were(numbers: list[Any]) -> str:
    return "was" if len(numbers) == 1 else "were"


def _plural(count: Any, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"

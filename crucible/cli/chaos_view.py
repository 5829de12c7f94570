"""What ``crucible chaos`` shows: a line per step of an experiment while it runs, its results and
how it ended, and the exit code that ending gives."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crucible.cli.api_calls import EXIT_FAILED, EXIT_OK
from crucible.cli.common import API, errors

#: The hypothesis held: every SLO was met under chaos, the fault rolled back and the SLOs recovered.
CONFIRMED = "HypothesisConfirmed"
#: An SLO broke under chaos, or the rollback or the recovery failed (``Escalated``).
REJECTED = "HypothesisRejected"
ESCALATED = "Escalated"
EXIT_REJECTED = 1

#: Room for the longest state name (``HypothesisConfirmed``) before what it says.
_LABEL_WIDTH = 20
_COLOURS = {
    CONFIRMED: "green",
    "Validated": "green",
    REJECTED: "red",
    ESCALATED: "bold red",
    "Blocked": "red",
    "Aborted": "red",
    "Failed": "red",
    "Inconclusive": "yellow",
    "Postponed": "yellow",
    "ChangesRequested": "yellow",
}


def review_hints(run_id: str, state: str, submitted_by: str | None = None) -> list[str]:
    """What to type to move an experiment waiting for review along; none in other states."""
    if state == "Draft":
        return [
            f"submit it:             crucible chaos submit {run_id}",
            f"then another admin:    crucible chaos approve {run_id}",
        ]
    if state == "UnderReview":
        other = f"an admin other than {submitted_by}" if submitted_by else "an admin other than the submitter"
        return [
            f"approve it ({other}): crucible chaos approve {run_id}",
            f"or send it back:       crucible chaos request-changes {run_id} --comment '…'",
        ]
    if state == "ChangesRequested":
        return [
            f"submit it again:       crucible chaos submit {run_id}",
            f"or drop it:            crucible chaos abort {run_id}",
        ]
    return []


class ChaosWatch:
    """Prints a line per state change, pre-flight, SLO sample and fault step of an experiment.

    Args:
        out: where the lines go.
        run_id: the experiment's run id, for the review hints.
        state: the state the API created it in (``Draft``, or ``Approved`` with auto-approval), or
            the one it is in now when it is followed from its start.
        live_from: the seq of the experiment's newest event when following began: the review
            hints of the states before it are history, so they are not printed.
    """

    def __init__(self, out: Console, run_id: str, state: str, *, live_from: int = 0) -> None:
        self.out = out
        self.run_id = run_id
        self.state = state
        self.live_from = live_from
        self.live = True
        self.targets: dict[str, str] = {}
        self.units: dict[str, str] = {}

    def say(self, label: str, text: str, colour: str = "") -> None:
        padded = f"{label:<{_LABEL_WIDTH}}" if text else label
        shown = f"[{colour}]{padded}[/{colour}]" if colour else padded
        self.out.print(f"{shown}{text}", soft_wrap=True)

    def hint(self, submitted_by: str | None = None) -> None:
        if not self.live:
            return
        for line in review_hints(self.run_id, self.state, submitted_by):
            self.out.print(f"  {escape(line)}", soft_wrap=True)

    def see(self, envelope: dict[str, Any]) -> None:
        kind, data = envelope["type"], envelope.get("data") or {}
        self.live = int(envelope.get("seq") or 0) >= self.live_from
        if kind == "REQUESTED":
            self._requested(data)
        elif kind == "STATE_CHANGED":
            self.state = str(data.get("to"))
            self.say(self.state, escape(state_text(data)), _COLOURS.get(self.state, ""))
            self.hint(data.get("by"))
        elif kind == "SIGNAL_IGNORED":
            by = f" by {data['by']}" if data.get("by") else ""
            self.say("ignored", escape(f"{data.get('signal')}{by}: {data.get('reason')}"), "yellow")
        elif kind == "PREFLIGHT_CHECKED":
            if data.get("ok"):
                self.say("pre-flight", "ok", "green")
            else:
                self.say("pre-flight", f"[red]blocked[/red]: {escape(str(data.get('reason')))}")
        elif kind == "SLO_MEASURED":
            self.say(f"{data.get('phase')} {data.get('sample')}", self._sample(data.get("slos") or []))
        elif kind == "FAULT_INJECTED":
            self.say("fault injected", escape(fault_text(data, injected=True)), "yellow")
        elif kind == "FAULT_ROLLED_BACK":
            if data.get("ok"):
                self.say("rolled back", escape(rollback_text(data)), "green")
            else:
                self.say("rollback failed", escape(str(data.get("error"))), "bold red")

    def _requested(self, data: dict[str, Any]) -> None:
        slos = data.get("slos") or []
        # A check's own note says what it wanted; a query's value needs its threshold beside it.
        self.targets = {str(s.get("name")): slo_target(s) for s in slos if s.get("kind") == "prometheus"}
        self.units = {str(s.get("name")): str(s.get("unit") or "") for s in slos}
        fault = fault_text(data.get("fault") or {})
        timing = (
            f"{_seconds(data.get('duration_s'))}, sampled every {_seconds(data.get('monitoring_interval_s'))}"
        )
        count = f"{len(slos)} SLO{'' if len(slos) == 1 else 's'}"
        self.say(
            "experiment", escape(f"{data.get('name')} on {data.get('target')}: {fault} for {timing}; {count}")
        )
        if self.state == "Draft" and self.live:
            self.say(self.state, "waiting for its review")
            self.hint()

    def _sample(self, slos: list[dict[str, Any]]) -> str:
        parts = []
        for slo in slos:
            name = str(slo.get("slo"))
            value = escape(f"{name} {number(slo.get('value'), self.units.get(name, ''))}")
            if slo.get("met"):
                parts.append(f"{value} [green]ok[/green]")
                continue
            why = [f"wants {self.targets[name]}"] if self.targets.get(name) else []
            why += [str(slo["note"])] if slo.get("note") else []
            parts.append(
                f"{value} [bold red]BREACH[/bold red]" + (f" ({escape('; '.join(why))})" if why else "")
            )
        return ", ".join(parts)


def state_text(data: Mapping[str, Any]) -> str:
    """What a ``STATE_CHANGED`` event says besides the state: the reason, who, when."""
    parts = []
    if data.get("reason"):
        breached = f": {data['slos']}" if data.get("slos") else ""
        parts.append(f"{data['reason']}{breached}")
    if data.get("after"):
        parts.append(f"blocked ({data['after']}); checking again in {_seconds(data.get('retry_in_s'))}")
    if data.get("start_at") is not None:
        parts.append(f"starts at {_time(data['start_at'])}")
    if data.get("window_end") is not None:
        parts.append(f"the window closes at {_time(data['window_end'])}")
    if data.get("recovery_time_s") is not None:
        parts.append(f"recovered {_seconds(data['recovery_time_s'])} after the rollback")
    if data.get("by"):
        parts.append(f"by {data['by']}")
    if data.get("comment"):
        parts.append(f"“{data['comment']}”")
    return "; ".join(parts)


def slo_target(slo: Mapping[str, Any]) -> str:
    """What an SLO of an experiment's definition asks for: ``< 300 ms``, or its check succeeding."""
    if slo.get("kind", "prometheus") == "prometheus":
        unit = f" {slo['unit']}" if slo.get("unit") else ""
        return f"{slo.get('op')} {number(slo.get('threshold'))}{unit}"
    call = slo.get("http") or {}
    return f"{call.get('method', 'GET')} {call.get('url')} succeeds" if call else "its command succeeds"


def fault_text(fault: Mapping[str, Any], *, injected: bool = False) -> str:
    """A fault, as a definition (``provider`` and ``params``) or a ``FAULT_INJECTED`` event (the
    params flattened, with what the injection did) gives it."""
    provider = fault.get("provider")
    params = {**(fault.get("params") or {}), **fault}
    if provider == "proxy":
        spec = dict(params.get("fault") or {})
        kind = spec.pop("type", "fault")
        settings = " ".join(f"{k}={v}" for k, v in spec.items())
        return f"proxy {params.get('proxy')}: {kind} {settings}".rstrip()
    if provider == "process":
        text = f"{params.get('signal') or 'SIGKILL'} to the process matching “{params.get('match')}”"
        done = (params.get("processes") or {}).get("processes") if injected else None
        pids = ", ".join(str(p.get("pid")) for p in done or [])
        return f"{text} (pid {pids})" if pids else text
    if provider == "kubernetes":
        where = f"{params.get('label_selector')} in {params.get('namespace') or 'default'}"
        deleted = (params.get("pods") or {}).get("deleted") if injected else None
        if deleted:
            return f"deleted pod {', '.join(deleted)} ({where})"
        return f"delete {params.get('count') or 1} pod of {where}"
    if provider == "actions":
        if injected and params.get("outcomes"):
            return "; ".join(f"{o.get('name')}: {o.get('detail')}" for o in params["outcomes"])
        names = [m if isinstance(m, str) else m.get("name") for m in params.get("method") or []]
        return f"actions {', '.join(map(str, names))}"
    return str(provider)


def rollback_text(data: Mapping[str, Any]) -> str:
    """What a successful ``FAULT_ROLLED_BACK`` did."""
    provider = data.get("provider")
    if provider == "proxy":
        return f"proxy {data.get('proxy')}: fault removed"
    if provider == "process":
        restored = (data.get("processes") or {}).get("processes") or []
        done = [
            f"pid {p.get('pid')} {p.get('action')}" + (f" as pid {p['new_pid']}" if p.get("new_pid") else "")
            for p in restored
        ]
        return ", ".join(done) or "nothing to restore"
    if provider == "kubernetes":
        pods = data.get("pods") or {}
        return f"{pods.get('ready')} pods ready after {_seconds(pods.get('waited_s'))}"
    if provider == "actions":
        return "; ".join(f"{o.get('name')}: {o.get('detail')}" for o in data.get("outcomes") or []) or "done"
    return "done"


def results_table(results: list[dict[str, Any]]) -> Table:
    """Each SLO's target, baseline, worst value under chaos and value after recovery."""
    table = Table("SLO", "TARGET", "BASELINE", "CHAOS WORST", "RECOVERY", "MET", box=None, pad_edge=False)
    for row in results:
        unit = str(row.get("unit") or "")
        met = "[green]yes[/green]" if row.get("chaos_met") else "[red]no[/red]"
        table.add_row(
            escape(str(row.get("slo"))),
            escape(str(row.get("target"))),
            *(escape(number(row.get(phase), unit)) for phase in ("baseline", "chaos", "recovery")),
            met,
        )
    return table


def latest_table(measurements: list[dict[str, Any]]) -> Table:
    """Each SLO's latest sample, for an experiment whose results are not in yet."""
    latest = {m["slo"]: m for m in measurements}
    table = Table("SLO", "TARGET", "PHASE", "SAMPLE", "VALUE", "MET", box=None, pad_edge=False)
    for slo, m in latest.items():
        met = "[green]yes[/green]" if m.get("met") else "[red]no[/red]"
        shown = (slo, m.get("target"), m.get("phase"), m.get("sample"), number(m.get("value")))
        table.add_row(*(escape(str(v)) for v in shown), met)
    return table


def print_accepted(out: Console, accepted: dict[str, Any], base: str) -> None:
    """The created experiment's id (alone on the first line, for scripts), state, links and next steps."""
    run_id, links = accepted["run_id"], accepted["links"]
    out.print(run_id)
    out.print(f"state:     {accepted['state']}")
    out.print(f"status:    {base}{links['status']}", soft_wrap=True)
    out.print(f"report:    {report_url(base, run_id)}", soft_wrap=True)
    out.print(f"temporal:  {links['temporal_ui']}", soft_wrap=True)
    hints = review_hints(run_id, accepted["state"]) or [
        f"follow it:             crucible chaos watch {run_id}"
    ]
    out.print("next:")
    for hint in hints:
        out.print(f"  {escape(hint)}", soft_wrap=True)


def report_url(base: str, run_id: str) -> str:
    """The experiment's HTML report, at the API ``base``."""
    return f"{base}{API}/runs/{run_id}/report?format=html"


def print_outcome(out: Console, run: dict[str, Any], result: dict[str, Any], report: str) -> int:
    """Print how the experiment ended, from its run and the data of its terminal event; its exit code."""
    summary = {**(run.get("summary") or {}), **result}
    status = run["status"]
    state = str(summary.get("state") or run.get("state"))
    verdict = summary.get("verdict") or run.get("verdict")
    if summary.get("results"):
        out.print()
        out.print(results_table(summary["results"]))
    if verdict:
        colour = _COLOURS.get(verdict, "")
        out.print(f"\n[bold {colour}]{verdict}[/bold {colour}]" if colour else f"\n[bold]{verdict}[/bold]")
    reason = summary.get("message") or summary.get("reason")
    out.print(f"state:     {escape(state)}{escape(f' ({reason})') if reason else ''}")
    if summary.get("recovery_time_s") is not None:
        out.print(f"recovery:  {_seconds(summary['recovery_time_s'])} after the rollback")
    if summary.get("fault") not in (None, "none"):
        out.print(f"fault:     {escape(str(summary['fault']))}")
    out.print(f"run:       {run['run_id']} ({status})", soft_wrap=True)
    out.print(f"report:    {report}", soft_wrap=True)
    out.print(f"temporal:  {run['temporal_ui_url']}", soft_wrap=True)
    return exit_code(status, state, verdict, str(reason or ""))


def exit_code(status: str, state: str, verdict: str | None, reason: str) -> int:
    """0 the hypothesis was confirmed, 1 rejected or escalated, 3 the experiment could not run.

    Explains on stderr any ending but a confirmed hypothesis.
    """
    err = errors()
    why = f": {reason}" if reason else ""
    if status == "COMPLETED" and state == ESCALATED:
        err.print(f"[red]error:[/red] the experiment escalated{escape(why)}; check the target by hand")
        return EXIT_REJECTED
    if status == "COMPLETED" and verdict == CONFIRMED:
        return EXIT_OK
    if status == "COMPLETED" and verdict == REJECTED:
        err.print(f"[red]error:[/red] the hypothesis was rejected{escape(why)}")
        return EXIT_REJECTED
    if status == "COMPLETED" and verdict:
        stopped = f"{verdict}: the experiment was stopped before it could test its hypothesis{why}"
        err.print(f"[red]error:[/red] {escape(stopped)}")
    elif status == "COMPLETED":
        err.print(f"[red]error:[/red] the experiment did not run: {escape(state)}{escape(why)}")
    else:
        err.print(f"[red]error:[/red] the experiment ended {escape(status)} in {escape(state)}{escape(why)}")
    return EXIT_FAILED


def number(value: Any, unit: str = "") -> str:
    """A measured value, four significant digits, with its unit; ``-`` when there is none."""
    if value is None:
        return "-"
    shown = f"{value:.4g}" if isinstance(value, int | float) else str(value)
    return f"{shown} {unit}" if unit else shown


def _seconds(value: Any) -> str:
    return f"{value:g} s" if isinstance(value, int | float) else "? s"


def _time(epoch_s: Any) -> str:
    try:
        return datetime.fromtimestamp(float(epoch_s), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError):
        return str(epoch_s)

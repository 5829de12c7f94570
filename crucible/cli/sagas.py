"""``crucible sagas``: start a saga from a file and follow it, abort it, resolve a manual intervention."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from crucible.cli.api_calls import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliApi,
    FollowOpt,
    JsonOpt,
    RunJsonOpt,
    file_option,
    follow_started,
)
from crucible.cli.common import API, console, errors, fail, print_json
from crucible.cli.inputs import read_document
from crucible.cli.saga_view import MANUAL_INTERVENTION, SagaWatch, print_summary

sagas_app = typer.Typer(
    help="Run sagas (steps across services, each undone by a compensation when a later one fails), "
    "abort them, and resolve compensations that need a person.",
    epilog="Exit codes: 0 the saga completed, 1 it was undone (every completed step compensated), "
    "2 a usage error or a request the API refused as invalid, 3 the saga failed, was cancelled or "
    "was not fully compensated, any other refusal, or no API, 130 Ctrl-C.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

SagaArg = Annotated[str, typer.Argument(help="The saga's run id, `saga-…`.", show_default=False)]
KIND = "saga"


@sagas_app.command("run")
def run(
    file: Annotated[str, file_option("The saga: `name` and `steps`")],
    follow_run: FollowOpt = True,
    as_json: RunJsonOpt = False,
) -> None:
    """Start a saga and follow it to its end.

    The file holds the body of `POST /api/v1/sagas` (see docs/sagas.md). Each state transition
    (`Step2_InProgress`, `Compensating`, `STEP_COMPENSATED`, `STEP_VERIFIED`, …) prints on a line;
    at the end a summary gives the final state, the completed steps, each compensation's outcome
    and whether state was restored. While the saga waits in `ManualIntervention` the two
    `crucible sagas resolve` commands that get it going again are printed.

    Exit codes: **0** `SagaCompleted`, **1** `SagaCancelled` with every completed step
    compensated, **2** a usage error (including a saga the API refused), **3** the saga failed,
    was cancelled, or ended without every completed step compensated by it, or the API refused
    or could not be reached, **130** Ctrl-C (the saga goes on).

    Example: `crucible sagas run --file examples/shop/saga.json`
    """
    definition = read_document(file, "--file")
    out = errors() if as_json else console()
    with CliApi(what=f"the saga in {file}", option_of=lambda loc: "--file") as api:
        accepted = api.call("POST", f"{API}/sagas", json=definition).json()
        run_id = accepted["run_id"]
        watch = SagaWatch(out, run_id)
        ended = follow_started(
            api,
            accepted,
            follow_run=follow_run,
            as_json=as_json,
            see=watch.see,
            stop_hints=[f"abort it:        crucible sagas abort {run_id}  (both compensate what completed)"],
        )
    if ended is not None:
        raise typer.Exit(print_summary(out, watch, *ended))


@sagas_app.command("abort")
def abort(
    run_id: SagaArg,
    reason: Annotated[
        str | None, typer.Option(help="Why, for the saga's events and summary.", metavar="TEXT")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a running saga and compensate every step it completed.

    The step in flight finishes, no further step runs, and every completed step is
    compensated, last first; the saga then ends `SagaCancelled`. `crucible runs cancel`
    does the same, but the run ends `CANCELLED` (and `crucible sagas run` exits 3).

    Once compensation has begun an abort changes nothing, so it is refused (exit 3).

    Example: `crucible sagas abort saga-5d0e… --reason "customer called"`
    """
    with CliApi(what="the abort") as api:
        saga = _running_saga(api, run_id)
        state = str(saga.get("state") or "")
        if state != "SagaInitiated" and not state.startswith("Step"):
            hint = "; see `crucible sagas resolve --help`" if state == MANUAL_INTERVENTION else ""
            fail(f"{run_id} is {state}: compensation has begun, an abort changes nothing{hint}", EXIT_FAILED)
        body = {"reason": reason} if reason else {}
        answer = api.call("POST", f"{API}/runs/{run_id}/signals/abort", json=body).json()
    if as_json:
        print_json(answer)
        return
    out = console()
    out.print(f"{run_id}: abort sent; after the step in flight every completed step is compensated")
    out.print(f"follow it: crucible runs watch {run_id}", soft_wrap=True)


@sagas_app.command("resolve")
def resolve(
    run_id: SagaArg,
    note: Annotated[
        str,
        typer.Option(
            help="What was done, for the saga's events and summary.", metavar="TEXT", show_default=False
        ),
    ],
    retry: Annotated[
        bool, typer.Option("--retry", help="Run the failed compensation again (the service is fixed).")
    ] = False,
    mark_resolved: Annotated[
        bool,
        typer.Option("--mark-resolved", help="Record the step as put right by hand and go on to the next."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Get a saga waiting in `ManualIntervention` going again: give `--retry` or `--mark-resolved`.

    `--retry` sends the compensation again, with its retries and the same idempotency key;
    failing again returns to `ManualIntervention`. `--mark-resolved` counts the step as put right
    by hand: the saga goes on, and ends not fully compensated (`crucible sagas run` exits 3).
    A saga not waiting for a resolution is refused (exit 3), since the signal would be ignored.

    Example: `crucible sagas resolve saga-5d0e… --retry --note "restarted inventory"`
    """
    if retry == mark_resolved:
        raise typer.BadParameter("give one of --retry and --mark-resolved", param_hint="--retry")
    action = "retry" if retry else "mark_resolved"
    with CliApi(what="the resolution", option_of=lambda loc: f"--{loc[0]}") as api:
        saga = _running_saga(api, run_id)
        progress = saga.get("progress")
        awaiting = progress.get("awaiting_resolution") if progress else None
        # The run's own answer when it gave one, else (it was slow to) the state of its last event.
        waiting = awaiting is not None if progress is not None else saga.get("state") == MANUAL_INTERVENTION
        if not waiting:
            fail(f"{run_id} is {saga.get('state')}, not waiting in {MANUAL_INTERVENTION}", EXIT_FAILED)
        body = {"action": action, "note": note}
        answer = api.call("POST", f"{API}/runs/{run_id}/signals/resolve", json=body).json()
    if as_json:
        print_json(answer)
        return
    step = f"step {awaiting['step']}" if awaiting else "the step"
    done = "its compensation runs again" if retry else "it counts as put right by hand"
    console().print(f"{run_id}: resolve sent for {step}: {done} ({escape(note)})")


def _running_saga(api: CliApi, run_id: str) -> dict[str, Any]:
    """The run ``run_id``, which must be a saga that is still running."""
    saga: dict[str, Any] = api.call("GET", f"{API}/runs/{run_id}").json()
    if saga["kind"] != KIND:
        fail(f"{run_id} is a {saga['kind']} run, not a saga", EXIT_USAGE)
    if saga["status"] != "RUNNING":
        fail(f"{run_id} has ended: {saga['status']}, in state {saga.get('state')}", EXIT_FAILED)
    return saga

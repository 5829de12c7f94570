"""Steady probes: HTTP requests at a fixed rate through a target's address, for as long as an
experiment runs. They are its load, and what its SLOs see (`crucible.core.chaos.metrics`).

The load is open: a request leaves every ``1/rate`` seconds whether or not the ones before it
have answered, as real clients' requests do, so a slow target does not slow the probes down and
hide its own latency. A probe keeps at most :data:`MAX_IN_FLIGHT` requests open; a request that
would exceed it is not sent and counts as an error (a client would have failed to get through).

The activity runs until it is cancelled. When the workflow asks for that, it returns a
`SteadyProbesSummary`, which a workflow that waits for the cancellation
(``ActivityCancellationType.WAIT_CANCELLATION_COMPLETED``) receives as the activity's result.
Any other cancellation (worker shutdown, heartbeat timeout) is re-raised, so Temporal retries
the probes elsewhere; the counts so far go with every heartbeat and carry over to the retry.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.activities.heartbeats import Heartbeat
from crucible.core.chaos.metrics import claim_series, record_probe, release_series
from crucible.core.chaos.model import HttpCall, SteadyProbe
from crucible.core.targets import TargetRefused

#: Requests of one probe that may be open at once.
MAX_IN_FLIGHT = 50
#: A probe that falls further behind its schedule than this (a stalled event loop) skips the
#: requests it missed instead of sending them in a burst.
MAX_LAG_S = 1.0
INVALID_STEADY_PROBE = "InvalidSteadyProbe"


@dataclass
class SteadyProbesInput:
    run_id: str
    probes: list[SteadyProbe] = field(default_factory=list)


@dataclass
class ProbeCounts:
    probe: str
    ok: int = 0
    error: int = 0
    #: What the latest error was: ``status 500``, ``ConnectError``, ``no answer within 5 s``…
    last_error: str = ""


@dataclass
class SteadyProbesSummary:
    run_id: str
    probes: list[ProbeCounts] = field(default_factory=list)


class SteadyProbeActivities:
    """Sends steady probes through the worker's pooled HTTP client."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @activity.defn
    async def run_steady_probes(self, request: SteadyProbesInput) -> SteadyProbesSummary:
        for probe in request.probes:
            if not probe.rate_per_s > 0:
                raise ApplicationError(
                    f"steady probe {probe.name!r} needs a rate above 0, not {probe.rate_per_s}",
                    type=INVALID_STEADY_PROBE,
                    non_retryable=True,
                )
        summary = _resumed(request, activity.info().heartbeat_details)
        names = [probe.name for probe in request.probes]
        claim_series(request.run_id, names)
        activity.logger.info(
            "steady probes started: %s", ", ".join(f"{p.name} at {p.rate_per_s:g}/s" for p in request.probes)
        )
        try:
            # The summary's counts change in place, so every beat carries the latest ones.
            with Heartbeat().running() as beat:
                beat.now(summary)
                async with asyncio.TaskGroup() as probes:
                    for probe, counts in zip(request.probes, summary.probes, strict=True):
                        probes.create_task(self._drive(request.run_id, probe, counts))
                    probes.create_task(asyncio.Event().wait())  # no probes: wait all the same
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            # Cancelled by the experiment, or the experiment is over (its workflow closed): done.
            # Anything else (a worker shutting down, a timeout) is retried where it can run.
            if details is None or not (details.cancel_requested or details.not_found):
                raise
            activity.logger.info("steady probes stopped: %s", _shown(summary))
            return summary
        finally:
            release_series(request.run_id, names)
        raise AssertionError("steady probes end only when cancelled")  # pragma: no cover

    async def _drive(self, run_id: str, probe: SteadyProbe, counts: ProbeCounts) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / probe.rate_per_s
        in_flight: set[asyncio.Task[None]] = set()
        due = loop.time()
        try:
            while True:
                if len(in_flight) >= MAX_IN_FLIGHT:
                    _count(run_id, probe, counts, f"not sent: {MAX_IN_FLIGHT} requests still open", None)
                else:
                    task = loop.create_task(self._send(run_id, probe, counts))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                due += interval
                now = loop.time()
                if now - due > MAX_LAG_S:
                    due = now
                await asyncio.sleep(max(due - now, 0))
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _send(self, run_id: str, probe: SteadyProbe, counts: ProbeCounts) -> None:
        call = probe.http
        started = time.perf_counter()
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange.
            async with asyncio.timeout(call.timeout_s):
                status = await self._exchange(call)
        except TimeoutError:
            error = f"no answer within {call.timeout_s:g} s"
        except TargetRefused as exc:  # nothing was sent; the SLOs on these probes see errors
            error = exc.summary
        except Exception as exc:  # whatever the target does is an outcome, never a crash
            error = type(exc).__name__
        else:
            ok = status in call.expected_status if call.expected_status else status < 400
            error = "" if ok else f"status {status}"
        _count(run_id, probe, counts, error, time.perf_counter() - started)

    async def _exchange(self, call: HttpCall) -> int:
        body: dict[str, Any] = {}
        if isinstance(call.body, str | bytes):
            body["content"] = call.body
        elif call.body is not None:
            body["json"] = call.body
        async with self.http.stream(
            call.method, call.url, headers=call.headers, timeout=call.timeout_s, **body
        ) as response:
            async for _ in response.aiter_raw():  # read to the end, keep nothing
                pass
            return response.status_code


def _count(
    run_id: str, probe: SteadyProbe, counts: ProbeCounts, error: str, duration_s: float | None
) -> None:
    record_probe(run_id, probe.name, ok=not error, duration_s=duration_s)
    if error:
        counts.error += 1
        counts.last_error = error
    else:
        counts.ok += 1


def _resumed(request: SteadyProbesInput, details: Any) -> SteadyProbesSummary:
    """A fresh summary, or the counts of the attempt before this one, from its last heartbeat."""
    before: dict[str, dict[str, Any]] = {}
    if details and isinstance(details[0], dict):
        before = {p.get("probe", ""): p for p in details[0].get("probes", []) if isinstance(p, dict)}
    return SteadyProbesSummary(
        request.run_id,
        [
            ProbeCounts(
                probe.name,
                int(before.get(probe.name, {}).get("ok", 0)),
                int(before.get(probe.name, {}).get("error", 0)),
                str(before.get(probe.name, {}).get("last_error", "")),
            )
            for probe in request.probes
        ],
    )


def _shown(summary: SteadyProbesSummary) -> str:
    return ", ".join(f"{p.probe} {p.ok} ok, {p.error} errors" for p in summary.probes) or "none"

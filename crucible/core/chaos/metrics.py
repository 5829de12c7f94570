"""The steady probes' metrics: what clients of a target see during an experiment, for SLO queries.

They live in a registry of their own (:data:`PROBE_REGISTRY`), served by each worker on its own
port (:func:`serve_probe_metrics`), so the Temporal SDK's metrics and these never mix. SLOs
select an experiment's probes with ``{experiment="$experiment"}``; for example the p99 latency::

    histogram_quantile(0.99, sum by (le) (rate(
        crucible_probe_request_duration_seconds_bucket{experiment="$experiment"}[30s])))

and the error ratio::

    sum(rate(crucible_probe_requests_total{experiment="$experiment",outcome="error"}[30s]))
      / sum(rate(crucible_probe_requests_total{experiment="$experiment"}[30s]))

The ``experiment`` label is a run id, which convention 10 otherwise avoids: an experiment's
series are dropped :data:`SERIES_KEPT_S` after its probes stop, so they stay few.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

log = logging.getLogger("crucible.chaos")

OK, ERROR = "ok", "error"
#: Fine around the latencies SLOs name (100 to 500 ms), so quantiles between buckets stay close.
PROBE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2.5, 5, 10,
)  # fmt: skip
#: How long an experiment's series stay after its probes stop: long enough for the last
#: recovery query and a scrape or two, short enough that a busy worker keeps few series.
SERIES_KEPT_S = 600.0

PROBE_REGISTRY = CollectorRegistry()

PROBE_DURATION = Histogram(
    "crucible_probe_request_duration_seconds",
    "Time from sending a steady probe's request to the end of its response (or its failure)",
    ["experiment", "probe"],
    buckets=PROBE_BUCKETS,
    registry=PROBE_REGISTRY,
)
PROBE_REQUESTS = Counter(
    "crucible_probe_requests",
    "Steady probe requests by outcome: ok (an expected status) or error (anything else)",
    ["experiment", "probe", "outcome"],
    registry=PROBE_REGISTRY,
)

_servers: list[WSGIServer] = []

# (experiment, probe) -> how many running activities use those series; they are dropped only at 0.
_in_use: Tally[tuple[str, str]] = Tally()


def claim_series(experiment: str, probes: Iterable[str]) -> None:
    """Mark an experiment's probe series as in use, and make them exist at 0 at once.

    Zeros from the start let ``rate()`` see the first requests, and ``outcome="error"`` series
    exist before any error, so an error ratio reads 0 rather than no data.
    """
    for probe in probes:
        _in_use[experiment, probe] += 1
        PROBE_DURATION.labels(experiment, probe)
        for outcome in (OK, ERROR):
            PROBE_REQUESTS.labels(experiment, probe, outcome)


def release_series(experiment: str, probes: Iterable[str], *, after_s: float = SERIES_KEPT_S) -> None:
    """Drop an experiment's probe series ``after_s`` from now, unless they are claimed again."""
    names = list(probes)
    for probe in names:
        _in_use[experiment, probe] -= 1

    def drop() -> None:
        for probe in names:
            if _in_use[experiment, probe] > 0:
                continue
            del _in_use[experiment, probe]
            for metric, labels in (
                (PROBE_DURATION, (experiment, probe)),
                (PROBE_REQUESTS, (experiment, probe, OK)),
                (PROBE_REQUESTS, (experiment, probe, ERROR)),
            ):
                with contextlib.suppress(KeyError):  # never made, or gone already
                    metric.remove(*labels)

    if after_s <= 0:
        drop()
    else:
        asyncio.get_running_loop().call_later(after_s, drop)


def record_probe(experiment: str, probe: str, *, ok: bool, duration_s: float | None) -> None:
    """Count one request (and its duration, when one was sent at all)."""
    PROBE_REQUESTS.labels(experiment, probe, OK if ok else ERROR).inc()
    if duration_s is not None:
        PROBE_DURATION.labels(experiment, probe).observe(duration_s)


def serve_probe_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Serve :data:`PROBE_REGISTRY` at ``http://host:port/metrics`` from a daemon thread.

    ``port`` 0 picks a free port, and so does a port that is taken (a second worker on one
    machine), with a warning. Returns the port it serves on.
    """
    try:
        server, _ = start_http_server(port, addr=host, registry=PROBE_REGISTRY)
    except OSError as exc:
        if port == 0:
            raise
        log.warning("probe metrics port %d is taken (%s); choosing a free one", port, exc.strerror)
        server, _ = start_http_server(0, addr=host, registry=PROBE_REGISTRY)
    _servers.append(server)
    bound = int(server.server_address[1])
    log.info("steady probe metrics at http://%s:%d/metrics", _shown(host), bound)
    return bound


def stop_probe_metrics(port: int | None = None) -> None:
    """Stop the server :func:`serve_probe_metrics` started on ``port``; None: every one."""
    for server in list(_servers):
        if port is None or server.server_address[1] == port:
            _servers.remove(server)
            server.shutdown()
            server.server_close()


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host

"""Request bodies for runs that tests need only to exist: one that ends at once, one that waits."""

from __future__ import annotations

from typing import Any

#: Nothing listens on port 9 of loopback: a run's calls to it fail at once.
CLOSED = "http://127.0.0.1:9"

#: A QA run of one operation against a closed port: it ends within a second or two.
QUICK_QA: dict[str, Any] = {
    "spec": {
        "openapi": "3.1.0",
        "info": {"title": "quick", "version": "1"},
        "paths": {"/ping": {"get": {"responses": {"200": {"description": "ok"}}}}},
    },
    "base_url": CLOSED,
}

#: A chaos experiment: it stays in Draft, injecting nothing, until someone reviews it.
WAITING_EXPERIMENT: dict[str, Any] = {
    "name": "waits for review",
    "target": CLOSED,
    "fault": {
        "provider": "proxy",
        "params": {"proxy": "web", "control_url": CLOSED, "fault": {"type": "latency", "ms": 5}},
    },
    "duration_s": 60,
    "slos": [{"name": "up", "kind": "http", "http": {"url": f"{CLOSED}/health"}}],
    "preflight": {"alerts_query": ""},
}

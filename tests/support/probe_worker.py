"""A worker process with the probe workflow, configured from the environment like `crucible worker`.

``python -m tests.support.probe_worker`` — the durability tests kill it mid-run.
"""

from __future__ import annotations

import asyncio

from crucible.core.config import load_settings
from crucible.core.exits import exit_without_teardown
from crucible.core.logs import configure_logging
from crucible.worker import run_worker
from tests.support.probe import ProbeWorkflow, hold

if __name__ == "__main__":
    settings = load_settings()
    configure_logging(settings.log_level)
    asyncio.run(run_worker(settings, workflows=[ProbeWorkflow], activities=[hold]))
    exit_without_teardown(0)  # as `crucible worker` does: the SDK's threads can abort a normal exit

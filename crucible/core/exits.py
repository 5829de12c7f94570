"""Ending a process that used the Temporal SDK."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn


def exit_without_teardown(code: int = 0) -> NoReturn:
    """Flush output and leave without Python's interpreter teardown.

    The Temporal SDK's Rust core keeps threads that can call into Python while the
    interpreter finalizes, which aborts the process (``PyGILState_Release``, SIGABRT)
    after an otherwise clean shutdown. Everything that matters is closed by the time
    this is called, so skipping the teardown loses nothing and keeps the exit code true.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a broken pipe
            stream.flush()
    os._exit(code)

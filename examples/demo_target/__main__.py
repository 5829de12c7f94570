"""``python -m examples.demo_target --host 127.0.0.1 --port 8099``."""

from __future__ import annotations

from examples.demo_target.app import main

main()

"""The demo target: a small shop-inventory HTTP API, with one deliberate defect, for QA runs to test."""

from __future__ import annotations

from examples.demo_target.app import create_app, main

__all__ = ["create_app", "main"]

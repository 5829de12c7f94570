"""Chaos Toolkit experiment documents for the importer's tests, built from small parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crucible.core.chaos.chaostoolkit import from_chaostoolkit
from crucible.core.errors import InvalidRequestError

EXAMPLE = Path(__file__).parents[2] / "examples" / "chaos" / "chaostoolkit.json"
E = ("body", "experiment")
URL = "http://127.0.0.1:8099"


def probe(name: str, tolerance: Any = 200, **provider: Any) -> dict[str, Any]:
    return {"type": "probe", "name": name, "tolerance": tolerance, "provider": {"type": "http", **provider}}


def action(name: str, path: str = "echo", arguments: Any = None, **extra: Any) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": "process", "path": path}
    if arguments is not None:
        provider["arguments"] = arguments
    return {"type": "action", "name": name, "provider": provider, **extra}


def experiment(*method: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "title": "shop stays up",
        "steady-state-hypothesis": {"title": "up", "probes": [probe("up", url=f"{URL}/health")]},
        "method": list(method) or [action("poke", pauses={"after": 5})],
        **extra,
    }


def errors_of(document: Any, **kwargs: Any) -> dict[tuple[str | int, ...], str]:
    with pytest.raises(InvalidRequestError) as raised:
        from_chaostoolkit(document, **kwargs)
    return {e.loc: e.msg for e in raised.value.errors}

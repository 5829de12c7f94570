"""Which signals each kind of run accepts, by workflow method reference.

``POST /api/v1/runs/{run_id}/signals/{name}`` looks the signal up here, validates
the JSON body against the signal's input dataclass, and sends it. A kind of run
registers its signals when its workflow lands; a name not listed here is a 422.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crucible.core.runs import RUN_KINDS


@dataclass(frozen=True)
class SignalRoute:
    """A workflow signal the API may send, and the type of its one argument."""

    method: Callable[..., Any]
    arg_type: type | None

    @classmethod
    def of(cls, method: Callable[..., Any]) -> SignalRoute:
        params = list(inspect.signature(method).parameters)[1:]  # after self
        if len(params) > 1:
            raise TypeError(f"signal {method.__qualname__} must take at most one argument")
        hints = typing.get_type_hints(method)
        return cls(method=method, arg_type=hints[params[0]] if params else None)


@dataclass(frozen=True)
class KindRoutes:
    kind: str
    signals: Mapping[str, SignalRoute] = field(default_factory=dict)
    #: The workflow query a running run answers with its progress, if the kind has one.
    progress: Callable[..., Any] | None = None


KINDS: dict[str, KindRoutes] = {kind: KindRoutes(kind) for kind in RUN_KINDS}


def register_kind(
    kind: str,
    signals: Mapping[str, Callable[..., Any]] | None = None,
    *,
    progress: Callable[..., Any] | None = None,
) -> None:
    """Make ``kind`` known to the API, with the signals its runs accept and its progress query."""
    KINDS[kind] = KindRoutes(
        kind, {name: SignalRoute.of(method) for name, method in (signals or {}).items()}, progress
    )

"""The faults a `FaultProxy` can inject, modelled on Toxiproxy's toxics.

Each fault is a frozen dataclass that checks its fields on construction and raises
`InvalidRequestError` naming the wrong one. `fault_to_dict` and `fault_from_dict` turn a
fault into a JSON object tagged with ``type`` and back, so activities and the API can pass
faults around without a union type in their dataclasses.

``toxicity`` is the probability, from 0 to 1, that the fault applies to a connection; it is
rolled once per connection (per request for `HttpErrors`, see there).
``direction`` is ``"upstream"`` (client to target) or ``"downstream"`` (target to client).
"""

from __future__ import annotations

import dataclasses
import http
import math
from dataclasses import dataclass
from typing import Any, Literal

from crucible.core.errors import FieldError, InvalidRequestError

Direction = Literal["upstream", "downstream"]
DIRECTIONS: tuple[Direction, ...] = ("upstream", "downstream")


def _check(ok: bool, field: str, msg: str) -> None:
    if not ok:
        raise InvalidRequestError.one((field,), msg)


def _check_number(value: float, field: str, *, low: float, high: float = math.inf) -> None:
    _check(
        isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high,
        field,
        f"must be a number from {low} to {high}, got {value!r}",
    )


def number_error(
    loc: tuple[str | int, ...], value: Any, *, minimum: float, integer: bool
) -> FieldError | None:
    """What is wrong with ``value`` as a fault's numeric parameter at ``loc``, or None.

    An integer parameter takes a float with no fraction too (``3.0``), as JSON writers may
    send one.
    """
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not (whole if integer else isinstance(value, int | float)):
        return FieldError(loc, f"must be {'an integer' if integer else 'a number'}", "type_error")
    if not value >= minimum:
        return FieldError(loc, f"must be at least {minimum:g}")
    return None


def _check_common(fault: Any) -> None:
    _check_number(fault.toxicity, "toxicity", low=0, high=1)
    if hasattr(fault, "direction"):
        _check(fault.direction in DIRECTIONS, "direction", f"must be one of {DIRECTIONS}")


@dataclass(frozen=True)
class Latency:
    """Delays every chunk of data by ``ms``, plus a uniform random ``0..jitter_ms``.

    Applies to data on live connections as soon as it is added, and stops when removed.
    """

    ms: float
    jitter_ms: float = 0
    direction: Direction = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        _check_number(self.ms, "ms", low=0)
        _check_number(self.jitter_ms, "jitter_ms", low=0)
        _check_common(self)


@dataclass(frozen=True)
class Bandwidth:
    """Limits the data rate to ``kbps`` kilobits per second (1 kbps is 125 bytes a second)."""

    kbps: float
    direction: Direction = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        _check_number(self.kbps, "kbps", low=0.008)  # one byte a second
        _check_common(self)

    @property
    def bytes_per_second(self) -> float:
        return self.kbps * 125


@dataclass(frozen=True)
class _TimedFault:
    timeout_ms: float = 0
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        _check_number(self.timeout_ms, "timeout_ms", low=0)
        _check_common(self)


@dataclass(frozen=True)
class Blackhole(_TimedFault):
    """Accepts connections and swallows their data; the client hangs until its own timeout.

    On live connections the data stops flowing while the fault is in place. With
    ``timeout_ms`` above 0 the proxy closes a blackholed connection after that long, like
    Toxiproxy's ``timeout`` toxic.
    """


@dataclass(frozen=True)
class ResetPeer(_TimedFault):
    """Resets new connections with a TCP RST (``SO_LINGER`` 0) after ``timeout_ms``.

    With ``timeout_ms`` 0 the connection is reset as soon as it is accepted.
    """


@dataclass(frozen=True)
class LimitData:
    """Closes the connection once ``bytes`` have passed in ``direction``.

    Bytes are counted from the moment the fault first sees the connection.
    """

    bytes: int
    direction: Direction = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        _check(
            isinstance(self.bytes, int) and not isinstance(self.bytes, bool) and self.bytes >= 0,
            "bytes",
            f"must be a whole number >= 0, got {self.bytes!r}",
        )
        _check_common(self)


@dataclass(frozen=True)
class SlowClose:
    """Holds back the end of the stream in ``direction`` for ``delay_ms`` after the sender closes."""

    delay_ms: float
    direction: Direction = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        _check_number(self.delay_ms, "delay_ms", low=0)
        _check_common(self)


@dataclass(frozen=True)
class Slicer:
    """Cuts data into slices of ``average_size`` ± ``size_variation`` bytes, ``delay_us`` apart."""

    average_size: int
    size_variation: int = 0
    delay_us: int = 0
    direction: Direction = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        _check_number(self.average_size, "average_size", low=1)
        _check_number(self.size_variation, "size_variation", low=0, high=max(0, self.average_size - 1))
        _check_number(self.delay_us, "delay_us", low=0)
        _check_common(self)


@dataclass(frozen=True)
class HttpErrors:
    """Answers HTTP/1.1 requests with ``status`` instead of forwarding them.

    The proxy reads the first request head of each new connection. With probability
    ``toxicity`` it answers with the error and ``Connection: close``; otherwise it forwards
    the request with ``Connection: close`` so the client's next request comes on a new
    connection and gets its own roll. The probability therefore holds per request even for
    clients that pool connections. Protocol upgrades (WebSocket) do not survive this.
    """

    status: int = 503
    body: str = ""
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        _check(
            isinstance(self.status, int) and not isinstance(self.status, bool) and 400 <= self.status <= 599,
            "status",
            f"must be an HTTP error status from 400 to 599, got {self.status!r}",
        )
        _check_common(self)

    @property
    def reason(self) -> str:
        try:
            return http.HTTPStatus(self.status).phrase
        except ValueError:
            return "Error"


Fault = Latency | Bandwidth | Blackhole | ResetPeer | LimitData | SlowClose | Slicer | HttpErrors

FAULT_TYPES: dict[str, type[Fault]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "blackhole": Blackhole,
    "reset_peer": ResetPeer,
    "limit_data": LimitData,
    "slow_close": SlowClose,
    "slicer": Slicer,
    "http_errors": HttpErrors,
}
_TYPE_NAMES = {cls: name for name, cls in FAULT_TYPES.items()}


def fault_type(fault: Fault) -> str:
    """The fault's ``type`` tag: ``latency``, ``reset_peer``, and so on."""
    return _TYPE_NAMES[type(fault)]


def fault_to_dict(fault: Fault) -> dict[str, Any]:
    """A JSON object for ``fault``: its fields plus ``type``."""
    return {"type": fault_type(fault), **dataclasses.asdict(fault)}


def fault_from_dict(data: dict[str, Any]) -> Fault:
    """The fault a `fault_to_dict` object describes; `InvalidRequestError` names what is wrong."""
    kind = data.get("type")
    cls = FAULT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidRequestError.one(("type",), f"must be one of {sorted(FAULT_TYPES)}, got {kind!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known - {"type"})
    if unknown:
        raise InvalidRequestError.one((unknown[0],), f"is not a field of a {kind} fault")
    try:
        return cls(**{k: v for k, v in data.items() if k != "type"})
    except TypeError as exc:  # a required field is missing
        raise InvalidRequestError.one(("type",), f"{kind}: {exc}") from exc

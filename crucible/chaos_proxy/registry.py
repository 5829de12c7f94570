"""The named `FaultProxy` instances one chaos proxy process runs."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from crucible.core.chaos import FaultProxy, fault_to_dict
from crucible.core.errors import ConflictError, InvalidRequestError, NotFoundError


def parse_address(value: object, field: str) -> tuple[str, int]:
    """``"host:port"`` as a pair; `InvalidRequestError` names ``field`` when it is not one."""
    host, sep, port = str(value).rpartition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidRequestError.one((field,), f"must be 'host:port', got {value!r}")
    return host.strip("[]"), int(port)


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe(name: str, proxy: FaultProxy) -> dict[str, Any]:
    """The JSON view of one proxy: where it listens, where it forwards, its faults and stats."""
    return {
        "name": name,
        "listen": format_address(proxy.listen_address),
        "upstream": format_address(proxy.upstream),
        "faults": {fault_name: fault_to_dict(fault) for fault_name, fault in proxy.faults.items()},
        "stats": dataclasses.asdict(proxy.stats),
    }


class ProxyRegistry:
    """Creates, finds and stops proxies by name."""

    def __init__(self) -> None:
        self._proxies: dict[str, FaultProxy] = {}
        self._lock = asyncio.Lock()

    async def create(self, name: str, *, listen: tuple[str, int], upstream: tuple[str, int]) -> bool:
        """Starts proxy ``name``; returns whether it is new.

        Creating a proxy that already exists with the same upstream (a retried request)
        is harmless; with another upstream, or a fixed listen port it does not have, it
        is a `ConflictError`.
        """
        async with self._lock:
            existing = self._proxies.get(name)
            if existing is not None:
                same_port = listen[1] in (0, existing.listen_address[1])
                if existing.upstream != upstream or not same_port:
                    raise ConflictError(f"proxy {name!r} exists already with another address")
                return False
            proxy = FaultProxy(*upstream, listen_host=listen[0], listen_port=listen[1])
            try:
                await proxy.start()
            except OSError as exc:
                raise InvalidRequestError.one(("listen",), f"cannot listen there: {exc}") from exc
            self._proxies[name] = proxy
            return True

    def get(self, name: str) -> FaultProxy:
        try:
            return self._proxies[name]
        except KeyError:
            raise NotFoundError("proxy", name) from None

    def items(self) -> list[tuple[str, FaultProxy]]:
        return sorted(self._proxies.items())

    async def delete(self, name: str) -> bool:
        """Stops proxy ``name``; returns whether there was one."""
        async with self._lock:
            proxy = self._proxies.pop(name, None)
        if proxy is None:
            return False
        await proxy.stop()
        return True

    async def close(self) -> None:
        """Stops every proxy, so no fault outlives the process."""
        async with self._lock:
            proxies, self._proxies = list(self._proxies.values()), {}
        await asyncio.gather(*(proxy.stop() for proxy in proxies), return_exceptions=True)

"""The one way out for requests to targets: every request and every redirect hop is checked.

:class:`GuardedTransport` wraps an httpx transport. Before a request leaves, it checks the
request's URL against the policy in force and then sends it to one of the checked addresses
(the URL's host is replaced by that IP; the ``Host`` header and the TLS server name keep the
original name). The inner transport never resolves the name again, so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot redirect the request.
httpx follows redirects by sending a new request through the transport, so each hop is
checked the same way.

The policy in force is the one set by :func:`using_policy` around the call, else the
transport's own; with neither, every request is refused. Connections are pooled by IP
address, and each request is checked before it may use one, so one client can serve
every organisation's policy.

Requests leave through :class:`AiohttpTargetTransport`, httpx-aiohttp's transport with a
shorter path per request and a way to send a request to a given address of its host.

Not covered: proxies (the client built here ignores proxy variables; a proxy would resolve
names itself), and what a target does with the request once it has it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from crucible.core.targets.policy import (
    CheckedTarget,
    Resolver,
    TargetPolicy,
    TargetRefused,
    _bracket,
    system_resolver,
)
from crucible.core.targets.recent import Recent

#: How long a host's resolution is reused; each request is still judged against its own policy.
DEFAULT_DNS_CACHE_S = 10.0
DEFAULT_TIMEOUT = httpx.Timeout(30.0)
MAX_CONNECTIONS = 200

_POLICY: ContextVar[TargetPolicy | None] = ContextVar("crucible_target_policy", default=None)


@contextmanager
def using_policy(policy: TargetPolicy) -> Iterator[None]:
    """Judge every request made inside the block (in this task and tasks it starts) by ``policy``."""
    token = _POLICY.set(policy)
    try:
        yield
    finally:
        _POLICY.reset(token)


class CachingResolver:
    """Reuses a host's addresses for ``ttl_s`` seconds, like a client's own DNS cache.

    The addresses connected to are always the ones judged, so caching cannot let an
    unchecked address through; it only saves a ``getaddrinfo`` per request.
    """

    def __init__(self, resolver: Resolver = system_resolver, *, ttl_s: float = DEFAULT_DNS_CACHE_S) -> None:
        self._resolver = resolver
        self._cache: Recent[tuple[str, int], Sequence[str]] = Recent(ttl_s)

    @property
    def ttl_s(self) -> float:
        return self._cache.ttl_s

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        key = (host.lower(), port)
        addresses = self._cache.get(key)
        if addresses is None:
            addresses = tuple(await self._resolver(host, port))
            self._cache.put(key, addresses)
        return addresses


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


class AiohttpTargetTransport(AiohttpTransport):
    """httpx over aiohttp, with a request's URL handed to aiohttp as it is (already encoded),
    and :meth:`send_to` for sending a request to one address of its host."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.send_to(request, None, sni_hostname=request.extensions.get("sni_hostname"))

    async def send_to(
        self, request: httpx.Request, address: str | None, *, sni_hostname: str | None = None
    ) -> httpx.Response:
        """Send ``request`` to ``address`` (an IP address), or to its URL's host when None.

        Its ``Host`` header (the original name) goes as it is, and TLS checks the certificate
        against ``sni_hostname``.
        """
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        url = request.url
        host = url.raw_host.decode("ascii") if address is None else address
        if ":" in host:  # IPv6, and its zone if any
            host = "[" + host.replace("%", "%25") + "]"
        path, _, query = url.raw_path.decode("ascii").partition("?")
        # The credentials a URL may hold are in the Authorization header already (httpx put them).
        target = yarl.URL.build(
            scheme=url.scheme, host=host, port=url.port, path=path, query_string=query, encoded=True
        )
        timeout = request.extensions.get("timeout", {})
        with map_aiohttp_exceptions():
            data: Any = request.stream
            if isinstance(data, httpx.ByteStream):  # a body in memory (a redirect hop's too) goes as bytes
                data = b"".join(data) or None
            else:
                request.headers.pop("transfer-encoding", None)  # aiohttp frames the body itself
            response = await self.client.request(
                request.method,
                target,
                headers=request.headers.multi_items(),
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=_client_timeout(timeout.get("connect"), timeout.get("read"), timeout.get("pool")),
                server_hostname=sni_hostname,
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )


def _not_connected(error: httpx.TransportError) -> bool:
    """Whether the connection itself failed, so nothing was sent. httpx-aiohttp reports a refused
    connection as ConnectTimeout, and a server that hung up mid-request the same way: look deeper."""
    return isinstance(error, httpx.ConnectError) or isinstance(error.__cause__, aiohttp.ClientConnectorError)


class GuardedTransport(httpx.AsyncBaseTransport):
    """Checks each request against the target policy, then sends it to a checked address only.

    Args:
        inner: the transport that really sends, to the checked addresses.
        policy: the policy for requests made outside :func:`using_policy`; None refuses them.
        resolver: how host names are resolved; the default caches ``getaddrinfo`` answers.
        owns_inner: whether closing this transport closes ``inner`` (not when it is shared).
    """

    def __init__(
        self,
        inner: AiohttpTargetTransport,
        policy: TargetPolicy | None = None,
        *,
        resolver: Resolver | None = None,
        owns_inner: bool = True,
    ) -> None:
        self._inner = inner
        self._owns_inner = owns_inner
        self._policy = policy
        self._resolver = resolver or CachingResolver()
        # A target's verdict under a policy, reused as long as its addresses are: the check
        # parses the host and classifies each address, a tenth of a millisecond per request.
        ttl_s = self._resolver.ttl_s if isinstance(self._resolver, CachingResolver) else 0.0
        self._verdicts: Recent[tuple[Any, ...], tuple[TargetPolicy, CheckedTarget]] = Recent(ttl_s)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        policy = _POLICY.get() or self._policy
        if policy is None:
            raise TargetRefused(
                f"{request.url.scheme}://{_bracket(request.url.host)}",
                "no target policy is in force",
                rule="policy",
            )
        target = await self._check(policy, request.url)
        # Another address is tried only when the connection failed, so nothing was sent, and
        # only when the body can be sent again.
        replayable = isinstance(request.stream, httpx.ByteStream)
        addresses = target.addresses if replayable else target.addresses[:1]
        sni_hostname = target.host.rstrip(".") if target.scheme == "https" and not target.literal else None
        for index, address in enumerate(addresses):
            try:
                response = await self._inner.send_to(request, address, sni_hostname=sni_hostname)
            except httpx.TransportError as error:
                if index == len(addresses) - 1 or not _not_connected(error):
                    raise
                continue
            return response
        raise AssertionError("unreachable: a target has at least one address")

    async def _check(self, policy: TargetPolicy, url: httpx.URL) -> CheckedTarget:
        """``policy``'s verdict on ``url``'s target (its scheme, credentials, host and port)."""
        key = (id(policy), url.scheme, url.userinfo, url.raw_host, url.port)
        hit = self._verdicts.get(key)
        if hit is not None and hit[0] is policy:  # not another policy that reused the id
            return hit[1]
        target = await policy.check_url(url, resolver=self._resolver)
        self._verdicts.put(key, (policy, target))
        return target

    async def aclose(self) -> None:
        if self._owns_inner:
            await self._inner.aclose()


def _session() -> aiohttp.ClientSession:
    # aiohttp only ever sees IP addresses here; its own DNS cache is not used.
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=5, use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)


class TargetClient(httpx.AsyncClient):
    """An httpx client with a short path for a request that follows no redirect: :meth:`send_single`."""

    def __init__(self, transport: httpx.AsyncBaseTransport, **options: Any) -> None:
        super().__init__(transport=transport, **options)
        self._single = transport

    async def send_single(self, request: httpx.Request) -> httpx.Response:
        """``request`` sent as it is, its response streamed; close it with ``aclose``.

        It skips what :meth:`send` does around the transport: no redirects, auth, cookies,
        event hooks or timer, and none of the client's defaults (build the request with
        :attr:`headers` merged in). That is about half the client's CPU per request, which is
        what decides a QA run's speed against a fast target. A guarded client still judges the
        request by the policy in force: the guard is the transport.
        """
        return await self._single.handle_async_request(request)


def guarded_client(
    policy: TargetPolicy | None = None,
    *,
    resolver: Resolver | None = None,
    inner: AiohttpTargetTransport | None = None,
    owns_inner: bool = True,
    **options: Any,
) -> TargetClient:
    """An httpx client whose every request and redirect hop passes the target policy.

    Build one per worker process, like :func:`crucible.core.http.target_client` (it runs on the
    same aiohttp transport), and pick the policy per run with :func:`using_policy`; ``policy``
    is the one used outside such a block. ``options`` go to ``httpx.AsyncClient``; proxies from
    the environment are ignored, since a proxy would resolve target names itself.
    """
    transport = GuardedTransport(
        inner or AiohttpTargetTransport(client=_session), policy, resolver=resolver, owns_inner=owns_inner
    )
    options.setdefault("timeout", DEFAULT_TIMEOUT)
    options.setdefault("follow_redirects", False)
    return TargetClient(transport, trust_env=False, **options)

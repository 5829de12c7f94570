"""The pooled HTTP client a worker uses to reach targets, spec URLs and the LLM endpoint.

:func:`target_client` builds it. A worker builds one per process and calls Crucible's own
services and the ones its operator configured (Prometheus, the chaos proxy, the LLM endpoint)
through it; requests to URLs that runs name go through a guarded view of the same pool
(``target_client(guarded=True, pool=…)``), which judges each by the target policy in force
(:mod:`crucible.core.targets`) and sends it on the same transport.
"""

from __future__ import annotations

from http.cookiejar import CookieJar

import aiohttp
import httpx

from crucible.core.targets.policy import Resolver, TargetPolicy
from crucible.core.targets.transport import AiohttpTargetTransport, TargetClient, guarded_client

#: Connections kept per worker; a QA run's concurrency stays well below it.
MAX_CONNECTIONS = 200
DEFAULT_TIMEOUT = httpx.Timeout(30.0)
#: Only what the checks can decode, with a bounded inflater (no brotli).
ACCEPT_ENCODING = "gzip, deflate"
DEFAULT_HEADERS = {"user-agent": "crucible-qa", "accept-encoding": ACCEPT_ENCODING}
#: The header that carries the key of a request a target must apply once, however often it arrives.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: What a request raises when it got no answer: a transport error, a URL httpx refuses, the OS.
#: Not a :class:`~crucible.core.targets.TargetRefused`: a refused target is no network error,
#: and sending the request again would be refused again.
REQUEST_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    aiohttp.ClientError,
    OSError,
)
#: Characters of a response body that :func:`excerpt` keeps.
EXCERPT_CHARS = 200


class _NoCookies(CookieJar):
    """Keeps nothing: one run's session cookie must never reach the next run's requests."""

    def set_cookie(self, cookie: object) -> None:
        return None

    def extract_cookies(self, response: object, request: object) -> None:
        return None


def _session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=5)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


def target_client(
    *,
    guarded: bool = False,
    policy: TargetPolicy | None = None,
    resolver: Resolver | None = None,
    pool: TargetClient | None = None,
) -> TargetClient:
    """One client per worker process, never one per call: building one costs ~85 ms of CPU.

    It runs on the aiohttp transport, several times faster than httpx's default one here.
    It keeps no cookies, so runs (and the scenarios of one run) do not share sessions.
    Redirects are not followed unless a request asks.

    Args:
        guarded: judge every request and redirect hop by the target policy in force
            (:func:`~crucible.core.targets.using_policy`), else by ``policy``; with neither,
            a request is refused. Proxies from the environment are ignored.
        policy: the policy outside ``using_policy`` blocks; implies ``guarded``.
        resolver: how the guard resolves host names; unset: ``getaddrinfo``, cached 10 s.
        pool: a client to send through (only with a guard): its connections are shared, and
            closing the guarded client leaves it open.
    """
    if not guarded and policy is None:
        if pool is not None:
            raise ValueError("pool is only for a guarded client")
        return TargetClient(
            AiohttpTargetTransport(client=_session),
            timeout=DEFAULT_TIMEOUT,
            follow_redirects=False,
            cookies=_NoCookies(),
            headers=DEFAULT_HEADERS,
        )
    inner = AiohttpTargetTransport(client=_session) if pool is None else pool._transport
    if not isinstance(inner, AiohttpTargetTransport):
        raise ValueError("pool must be a client target_client() built")
    return guarded_client(
        policy,
        resolver=resolver,
        inner=inner,
        owns_inner=pool is None,
        timeout=DEFAULT_TIMEOUT,
        follow_redirects=False,
        cookies=_NoCookies(),
        headers=DEFAULT_HEADERS,
    )


def excerpt(response: httpx.Response, limit: int = EXCERPT_CHARS) -> str:
    """The start of a response's text on one line, for error messages: ``limit`` characters and ``…``."""
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")

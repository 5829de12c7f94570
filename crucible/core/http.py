"""The pooled HTTP client a worker uses to reach targets, spec URLs and the LLM endpoint."""

from __future__ import annotations

from http.cookiejar import CookieJar

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

#: Connections kept per worker; a QA run's concurrency stays well below it.
MAX_CONNECTIONS = 200
DEFAULT_TIMEOUT = httpx.Timeout(30.0)
#: Only what the checks can decode, with a bounded inflater (no brotli).
ACCEPT_ENCODING = "gzip, deflate"
#: The header that carries the key of a request a target must apply once, however often it arrives.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: What a request raises when it got no answer: a transport error, a URL httpx refuses, the OS.
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


def target_client() -> httpx.AsyncClient:
    """One client per worker process, never one per call: building one costs ~85 ms of CPU.

    It runs on the aiohttp transport, several times faster than httpx's default one here.
    It keeps no cookies, so runs (and the scenarios of one run) do not share sessions.
    Redirects are not followed unless a request asks.
    """
    return httpx.AsyncClient(
        transport=AiohttpTransport(client=_session),
        timeout=DEFAULT_TIMEOUT,
        follow_redirects=False,
        cookies=_NoCookies(),
        headers={"user-agent": "crucible-qa", "accept-encoding": ACCEPT_ENCODING},
    )


def excerpt(response: httpx.Response, limit: int = EXCERPT_CHARS) -> str:
    """The start of a response's text on one line, for error messages: ``limit`` characters and ``…``."""
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")

"""Failed logins, counted per email and per client address, so passwords cannot be guessed
at speed.

Past ``per_email`` failures for one email, or ``per_address`` from one address, within
``window_s`` seconds, a login is refused before its password is checked, until the oldest
counted failure is ``window_s`` old. A successful login forgets its email's failures. The
counts live in the API process: each replica counts its own.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from crucible.core.errors import TooManyRequestsError

#: Keys a throttle remembers at most; past this the oldest are forgotten.
CAPACITY = 100_000


class LoginThrottle:
    def __init__(
        self,
        *,
        per_email: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = {"email": per_email, "address": per_address}
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def check(self, email: str, address: str) -> None:
        """Raise if a login for ``email`` from ``address`` must wait.

        Raises:
            TooManyRequestsError: too many failures; says when to try again.
        """
        now = self.clock()
        for kind, key in (("email", email.casefold()), ("address", address)):
            if (kind, key) not in self._failures:
                continue
            failures = self._recent((kind, key), now)
            if len(failures) >= self.limits[kind]:
                wait = failures[0] + self.window_s - now
                raise TooManyRequestsError(
                    f"too many failed logins for this {kind}; try again later",
                    retry_after_s=max(1, math.ceil(wait)),
                )

    def failed(self, email: str, address: str) -> None:
        now = self.clock()
        for key in (("email", email.casefold()), ("address", address)):
            self._recent(key, now).append(now)
        while len(self._failures) > CAPACITY:
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, email: str) -> None:
        self._failures.pop(("email", email.casefold()), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

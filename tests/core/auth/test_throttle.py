"""Failed logins are counted per email and per address, and make later logins wait."""

from __future__ import annotations

import pytest

from crucible.core.auth.throttle import LoginThrottle
from crucible.core.errors import TooManyRequestsError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_failures_for_one_email_make_it_wait_until_the_oldest_ages_out() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_email=3, per_address=100, window_s=60, clock=clock)
    for _ in range(3):
        throttle.check("Ann@Example.com", "10.0.0.1")
        throttle.failed("ann@example.com", "10.0.0.1")
        clock.now += 10
    # The email is the same whatever its case, and whichever address tries it.
    with pytest.raises(TooManyRequestsError, match="this email") as waiting:
        throttle.check("ANN@example.com", "10.0.0.2")
    assert waiting.value.retry_after_s == 30  # the first failure, at 1000 s, counts until 1060 s
    throttle.check("bob@example.com", "10.0.0.1")  # another email is not held up
    clock.now += 30
    throttle.check("ann@example.com", "10.0.0.1")


def test_a_successful_login_forgets_its_emails_failures() -> None:
    throttle = LoginThrottle(per_email=2, per_address=100, window_s=60, clock=Clock())
    throttle.failed("ann@example.com", "10.0.0.1")
    throttle.succeeded("ann@example.com")
    throttle.failed("ann@example.com", "10.0.0.1")
    throttle.check("ann@example.com", "10.0.0.1")


def test_failures_from_one_address_across_emails_make_it_wait() -> None:
    throttle = LoginThrottle(per_email=100, per_address=3, window_s=60, clock=Clock())
    for n in range(3):
        throttle.failed(f"user{n}@example.com", "10.0.0.9")
    with pytest.raises(TooManyRequestsError, match="this address"):
        throttle.check("someone-else@example.com", "10.0.0.9")
    throttle.check("someone-else@example.com", "10.0.0.10")

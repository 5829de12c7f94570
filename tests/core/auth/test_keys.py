"""The signing key ring: secrets long enough, rotation with a deadline, the dev secret."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from crucible.core.auth import AuthConfigError, key_ring
from crucible.core.auth.keys import MIN_SECRET_BYTES, parse_previous_keys
from crucible.core.config import load_settings

GOOD = "s" * MIN_SECRET_BYTES


def test_outside_dev_mode_a_missing_or_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="CRUCIBLE_JWT_SECRET is not set"):
        key_ring(load_settings(use_stack_env=False, home=tmp_path))
    with pytest.raises(AuthConfigError, match="at least 32"):
        key_ring(load_settings(use_stack_env=False, home=tmp_path, jwt_secret="s" * 31))
    ring = key_ring(load_settings(use_stack_env=False, home=tmp_path, jwt_secret=GOOD, jwt_key_id="k7"))
    assert (ring.current.kid, ring.current.secret) == ("k7", GOOD.encode())
    assert not (tmp_path / "jwt.key").exists()


def test_dev_mode_makes_its_own_secret_once_and_keeps_it_private(tmp_path: Path) -> None:
    settings = load_settings(use_stack_env=False, home=tmp_path / "home", dev_mode=True)
    first = key_ring(settings)
    path = tmp_path / "home" / "jwt.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.current.secret) >= MIN_SECRET_BYTES
    assert key_ring(settings).current.secret == first.current.secret


def test_previous_keys_carry_the_time_until_which_they_are_accepted() -> None:
    until = datetime(2026, 12, 1, 12, tzinfo=UTC)
    [old, older] = parse_previous_keys(f"j1={GOOD}@2026-12-01T12:00:00Z, j0={GOOD}x@2026-11-01T00:00:00")
    assert (old.kid, old.secret, old.valid_until) == ("j1", GOOD.encode(), until)
    assert older.valid_until == datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [f"j1={GOOD}", f"={GOOD}@2026-12-01", f"j1={GOOD}@soon", "j1=short@2026-12-01", "j1"],
)
def test_unreadable_previous_keys_are_refused(text: str) -> None:
    with pytest.raises(AuthConfigError):
        parse_previous_keys(text)


def test_a_previous_key_is_accepted_only_until_its_deadline(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    settings = load_settings(
        use_stack_env=False,
        home=tmp_path,
        jwt_key_id="j2",
        jwt_secret=SecretStr(GOOD),
        jwt_previous_keys=SecretStr(f"j1={GOOD}1@{(now + timedelta(minutes=1)).isoformat()}"),
    )
    ring = key_ring(settings)
    assert ring.verification_key("j2", now=now) is ring.current
    assert ring.verification_key("j1", now=now) is not None
    assert ring.verification_key("j1", now=now + timedelta(minutes=2)) is None
    assert ring.verification_key("nope", now=now) is None


def test_the_current_key_id_cannot_also_be_a_previous_one(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="both current and previous"):
        key_ring(
            load_settings(
                use_stack_env=False, home=tmp_path, jwt_secret=GOOD, jwt_previous_keys=f"j1={GOOD}@2099-01-01"
            )
        )

"""The dev stack's accounts: made once, reused after, and the token file private."""

from __future__ import annotations

import stat
from pathlib import Path

from crucible.core.auth import AccountStore, Role, bootstrap_dev, verify_password
from crucible.core.store import RunStore


async def test_bootstrap_makes_an_admin_of_the_default_team_and_a_working_token(
    store: RunStore, tmp_path: Path
) -> None:
    email = f"admin-{tmp_path.name}@crucible.local"
    first = await bootstrap_dev(store.engine, tmp_path, email=email)
    assert (first.org_id, first.team_id) == ("default", "default")
    assert first.token.startswith("crc_")
    for name in ("dev-token", "dev-password"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert (tmp_path / "dev-token").read_text().strip() == first.token

    accounts = AccountStore(store.engine)
    user = await accounts.user_by_email(email)
    assert user is not None and verify_password(first.password, user.password_hash)
    token = await accounts.use_api_token(first.token, now=user.created_at)
    assert token.user_id == user.user_id
    [membership] = await accounts.memberships(user.user_id)
    assert (membership.org_id, membership.team_id, membership.role) == ("default", "default", Role.admin)

    again = await bootstrap_dev(store.engine, tmp_path, email=email)
    assert (again.token, again.password) == (first.token, first.password)


async def test_a_token_file_that_no_longer_works_is_replaced(store: RunStore, tmp_path: Path) -> None:
    email = f"admin2-{tmp_path.name}@crucible.local"
    (tmp_path / "dev-token").write_text("crc_from-an-old-database\n")
    account = await bootstrap_dev(store.engine, tmp_path, email=email)
    assert account.token != "crc_from-an-old-database"
    assert (tmp_path / "dev-token").read_text().strip() == account.token


async def test_a_lost_password_file_gets_a_new_password_that_works(store: RunStore, tmp_path: Path) -> None:
    email = f"admin3-{tmp_path.name}@crucible.local"
    first = await bootstrap_dev(store.engine, tmp_path, email=email)
    (tmp_path / "dev-password").unlink()
    again = await bootstrap_dev(store.engine, tmp_path, email=email)
    assert again.password != first.password
    assert (tmp_path / "dev-password").read_text().strip() == again.password
    user = await AccountStore(store.engine).user_by_email(email)
    assert user is not None and verify_password(again.password, user.password_hash)
    assert not verify_password(first.password, user.password_hash)

"""`crucible targets`: an operator sets, shows and clears an organisation's target lists."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from crucible.cli import app
from crucible.core.auth import AccountStore
from crucible.core.config import Settings
from crucible.core.store import RunStore
from crucible.core.targets.orgs import OrgLists, OrgTargetPolicies

pytestmark = pytest.mark.timeout(60)


async def test_an_operator_sets_shows_and_clears_an_orgs_lists(
    store: RunStore, settings: Settings, tmp_path: Path
) -> None:
    org = f"org-{uuid.uuid4().hex[:10]}"
    await AccountStore(store.engine).ensure_org(org, name=org, now=datetime.now(UTC))
    env = {"DATABASE_URL": settings.effective_database_url, "CRUCIBLE_HOME": str(tmp_path)}

    async def crucible(*args: str) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, app, ["targets", *args], env=env)

    done = await crucible("set", org, "--networks", "10.20.0.0/16", "--ports", "443,8443", "--no-defaults")
    assert done.exit_code == 0, done.output
    assert f"{org}: its own lists, production mode" in done.output and "10.20.0.0/16" in done.output
    stored = await OrgTargetPolicies(store.engine, settings).lists_of(org)
    assert stored == OrgLists("", "10.20.0.0/16", "443,8443", include_defaults=False)

    wrong = await crucible("set", org, "--networks", "10.0.0.1/8")
    assert wrong.exit_code == 2 and "10.0.0.1/8" in wrong.output
    unknown = await crucible("set", "no-such-org", "--ports", "443")
    assert unknown.exit_code == 1 and "no organisation 'no-such-org'" in unknown.output

    shown = await crucible("show", org)
    assert shown.exit_code == 0 and "defaults  off" in shown.output
    cleared = await crucible("clear", org)
    assert cleared.exit_code == 0 and "the installation's lists" in cleared.output
    assert await OrgTargetPolicies(store.engine, settings).lists_of(org) is None

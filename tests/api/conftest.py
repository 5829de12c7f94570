"""What the API tests of accounts share: the account store and a fresh account per test."""

from __future__ import annotations

import pytest

from crucible.core.auth import AccountStore
from crucible.core.store import RunStore
from tests.core.auth.accounts import Account, make_account


@pytest.fixture(scope="module")
async def accounts(store: RunStore) -> AccountStore:
    return AccountStore(store.engine)


@pytest.fixture
async def account(accounts: AccountStore) -> Account:
    return await make_account(accounts)

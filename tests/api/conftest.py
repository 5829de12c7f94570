"""What the API tests of accounts share: the account store and a fresh account per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from crucible.core.auth import AccountStore
from crucible.core.store import RunStore
from tests.core.auth.accounts import Account, make_account
from tests.support.servers import ApiServer


@pytest.fixture(scope="module")
async def accounts(store: RunStore) -> AccountStore:
    return AccountStore(store.engine)


@pytest.fixture
async def account(accounts: AccountStore) -> Account:
    return await make_account(accounts)


@pytest.fixture
async def anonymous(api_server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session's API with no credentials."""
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as http:
        yield http

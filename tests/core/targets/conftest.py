"""The loopback target and canaries, shared by the tests of this package."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.core.targets.servers import Servers


@pytest.fixture(scope="module")
async def servers() -> AsyncIterator[Servers]:
    running = Servers()
    await running.start()
    yield running
    await running.stop()

"""A worker parses a spec once for every run of the same document, and never mixes documents."""

from __future__ import annotations

import copy
from typing import Any

from crucible.activities.http import SPEC_CACHE_SIZE, QaHttpActivities
from tests.support.targets import simple_spec


async def test_runs_of_the_same_document_share_its_parse() -> None:
    unused: Any = None  # parsing touches neither the database, the secrets nor the network
    activities = QaHttpActivities(unused, unused, unused)
    doc = simple_spec(["/a", "/b"])

    first = await activities._parsed(doc)
    again = await activities._parsed(copy.deepcopy(doc))  # equal, not the same object: a later run's
    other = await activities._parsed(simple_spec(["/a", "/c"]))

    assert again is first
    assert other is not first and [op.key for op in other.operations] == ["GET /a", "GET /c"]
    for n in range(SPEC_CACHE_SIZE):  # older documents make way: memory stays bounded
        await activities._parsed(simple_spec([f"/x{n}"]))
    assert await activities._parsed(doc) is not first

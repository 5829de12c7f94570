"""QA results in PostgreSQL: a retried write replaces rows, and no value is refused or lost."""

from __future__ import annotations

from crucible.core.qa.store import QaStore, StoredResult
from crucible.core.runs import new_run_id
from crucible.core.store import RunStore


async def test_results_are_upserted_and_read_back_as_written(store: RunStore) -> None:
    qa = QaStore(store.engine)
    run_id = new_run_id("qa")
    await qa.create(run_id, request={"base_url": "http://target"}, spec=None)
    scenario = {"name": "positive", "body": {"name": "é\x00nul", "tags": [1, 2.5, None, True]}}
    first = StoredResult("GET /x", 0, scenario, {"status": 500, "body_excerpt": "a\x00b"}, False)
    waiting = StoredResult("GET /x", 1, {"name": "negative"}, None, None)
    await qa.save_results(run_id, [first, waiting])
    # A retried batch writes the same keys again, with what it found this time.
    await qa.save_results(run_id, [StoredResult("GET /x", 0, scenario, {"status": 200}, True)])
    await qa.save_results(run_id, [StoredResult("POST /y", 0, {"name": "back\\u0000slash"}, {}, True)])

    rows = await qa.results(run_id)
    assert [(r.operation, r.idx, r.passed) for r in rows] == [
        ("GET /x", 0, True),
        ("GET /x", 1, None),
        ("POST /y", 0, True),
    ]
    # JSONB holds no NUL: it becomes U+FFFD; everything else comes back as it went.
    assert rows[0].scenario["body"] == {"name": "é\ufffdnul", "tags": [1, 2.5, None, True]}
    assert rows[0].result == {"status": 200}
    assert rows[1].result is None
    assert rows[2].scenario == {"name": "back\\u0000slash"}

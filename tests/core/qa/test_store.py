"""QA results in PostgreSQL: a retried write replaces rows, no value is refused or lost, and an
evaluation reads what it needs summed up by operation."""

from __future__ import annotations

from crucible.core.qa.evaluate import evaluate
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


async def test_an_evaluation_reads_each_operations_results_summed_up(store: RunStore) -> None:
    qa = QaStore(store.engine)
    run_id = new_run_id("qa")
    await qa.create(run_id, request={"base_url": "http://target"}, spec=None)
    assert await qa.operations(run_id) is None
    operations = [{"key": "GET /a", "responses": ["200"]}, {"key": "POST /b", "responses": ["201"]}]
    await qa.save_spec(run_id, spec={"openapi": "3.1.0"}, version="3.1.0", operations=operations)
    server_error = {"check": "not_a_server_error", "message": "500", "expected": "< 500", "actual": 500}
    schema = {"check": "response_schema_conformance", "message": "no id", "path": "$.id"}
    await qa.save_results(
        run_id,
        [
            StoredResult("GET /a", 0, {"name": "positive"}, {"status": 200, "failures": []}, True),
            StoredResult("GET /a", 1, {"name": "bad id"}, {"status": 500, "failures": [server_error]}, False),
            StoredResult("GET /a", 2, {"name": "twice"}, {"status": 200, "failures": [schema] * 2}, False),
            StoredResult("GET /a", 3, {"name": "cut"}, {"status": None, "failures": [server_error]}, False),
            StoredResult("POST /b", 0, {"name": "not run yet"}, None, None),
        ],
    )

    assert await qa.operations(run_id) == operations
    found = await qa.operation_results(run_id)
    assert list(found) == ["GET /a"]  # a scenario that has not run is no result
    assert (found["GET /a"].scenarios, found["GET /a"].statuses) == (4, {200, 500})
    assert [(f["scenario"], f["check"]) for f in found["GET /a"].failures] == [
        ("bad id", "not_a_server_error"),
        ("twice", "response_schema_conformance"),
        ("twice", "response_schema_conformance"),
        ("cut", "not_a_server_error"),
    ]
    assert found["GET /a"].failures[1] == {**schema, "scenario": "twice"}

    evaluation = evaluate(operations, found, min_pass_rate=0.5)
    assert [(e["operation"], e["status"], e["scenarios"]) for e in evaluation["endpoints"]] == [
        ("GET /a", "FAILED", 4),
        ("POST /b", "NOT_RUN", 0),
    ]
    assert evaluation["endpoints"][0]["coverage"]["seen"] == [200, 500]
    assert evaluation["checks_failed"] == {"not_a_server_error": 1, "response_schema_conformance": 1}

"""Checks name the check, the expected and actual values and the JSON path; reports carry them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import junitparser

from crucible.core.qa.checks import Response, check_response
from crucible.core.qa.evaluate import evaluate
from crucible.core.qa.report import report_html, report_junit
from crucible.core.qa.scenarios import ACCEPT, REJECT, Scenario
from crucible.core.qa.spec import Spec, parse_document
from crucible.core.qa.store import OperationResults
from crucible.core.qa.values import ValueBuilder
from tests.support.qa import DEMO_SPEC

SPEC = Spec(parse_document(DEMO_SPEC.read_bytes()))
GET_PRODUCT = next(o for o in SPEC.operations if o.key == "GET /products/{product_id}")


def _response(status: int, body: object, content_type: str = "application/json", ms: float = 5) -> Response:
    return Response(status, content_type, json.dumps(body).encode(), ms)


def test_each_check_reports_what_it_expected_and_what_it_saw() -> None:
    good = ValueBuilder(SPEC).value({"$ref": "#/components/schemas/Product"})
    positive = Scenario("positive", ACCEPT, path_params={"product_id": 1})
    negative = Scenario("negative: x", REJECT, path_params={"product_id": "x"}, target="$.path.product_id")

    assert check_response(SPEC, GET_PRODUCT, positive, _response(200, good)) == []
    wrong = check_response(SPEC, GET_PRODUCT, positive, _response(200, {**good, "price": "12.50"}))
    assert [(f.check, f.path, f.actual) for f in wrong] == [
        ("response_schema_conformance", "$.price", "12.50")
    ]
    assert wrong[0].expected == {"type": "number"}

    by_check = {f.check: f for f in check_response(SPEC, GET_PRODUCT, negative, _response(200, good))}
    assert by_check["negative_data_rejection"].path == "$.path.product_id"
    checks = {f.check for f in check_response(SPEC, GET_PRODUCT, positive, _response(503, {}, "text/plain"))}
    assert checks == {"not_a_server_error", "status_code_conformance"}
    checks = {f.check for f in check_response(SPEC, GET_PRODUCT, positive, _response(200, good, "text/html"))}
    assert checks == {"content_type_conformance"}
    slow = check_response(SPEC, GET_PRODUCT, positive, _response(200, good, ms=900), max_response_time_ms=300)
    assert [f.check for f in slow] == ["max_response_time"]


def test_bodies_are_judged_alike_whether_their_schema_compiles_or_not() -> None:
    """A response schema is checked by a compiled validator; one with a regex only Python reads
    (``\\Z``) falls back to the Python validator, and reports the same failure at the same path."""

    def spec(pattern: str) -> Spec:
        response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Code"}}}}
        return Spec(
            {
                "openapi": "3.0.3",
                "info": {"title": "codes", "version": "1"},
                "paths": {"/code": {"get": {"responses": {"200": {"description": "ok", **response}}}}},
                "components": {
                    "schemas": {
                        "Code": {
                            "type": "object",
                            "required": ["code"],
                            "properties": {"code": {"type": "string", "pattern": pattern}},
                        }
                    }
                },
            }
        )

    positive = Scenario("positive", ACCEPT)
    for pattern, compiles in (("^[A-Z]{3}$", True), ("^[A-Z]{3}\\Z", False)):
        codes = spec(pattern)
        [op] = codes.operations
        pointer = op.responses["200"].pointer
        assert pointer is not None
        assert codes.conforms(pointer, {"code": "ABC"}) is (True if compiles else None)
        assert check_response(codes, op, positive, _response(200, {"code": "ABC"})) == []
        wrong = check_response(codes, op, positive, _response(200, {"code": "abc"}))
        assert [(f.check, f.path, f.actual) for f in wrong] == [
            ("response_schema_conformance", "$.code", "abc")
        ]
        missing = check_response(codes, op, positive, _response(200, {}))
        assert [(f.check, f.path) for f in missing] == [("response_schema_conformance", "$")]


def test_a_known_failure_does_not_fail_the_verdict_and_junit_parses() -> None:
    operations = [{"key": "GET /a", "responses": ["200"]}, {"key": "GET /b", "responses": ["200"]}]
    failure = {
        "check": "not_a_server_error",
        "message": "server error 500",
        "expected": "< 500",
        "actual": 500,
    }
    results = {
        "GET /a": OperationResults(1, {200}, []),
        "GET /b": OperationResults(1, {500}, [{**failure, "scenario": "positive"}]),
    }
    strict = evaluate(operations, results, min_pass_rate=1.0)
    assert (strict["verdict"], strict["new_failures"]) == ("FAILED", ["GET /b not_a_server_error"])
    assert strict["endpoints"][1]["coverage"]["undeclared_seen"] == [500]
    baseline = evaluate(operations, results, min_pass_rate=1.0, known_failures=["GET  /b not_a_server_error"])
    assert (baseline["verdict"], baseline["known_failures_seen"]) == ("PASSED", ["GET /b not_a_server_error"])

    meta = {"run_id": "qa-1", "created_at": datetime.now(UTC).isoformat()}
    xml = junitparser.JUnitXml.fromstring(report_junit(meta, strict))
    cases = [case for suite in xml for case in suite]
    assert [c.is_passed for c in cases] == [True, False]
    assert "server error 500" in report_html(meta, strict)


def test_a_run_that_tested_nothing_does_not_pass() -> None:
    nothing = evaluate([], {}, min_pass_rate=0.0)
    assert (nothing["verdict"], nothing["pass_rate"]) == ("FAILED", 0.0)
    lower = evaluate(
        [{"key": "GET /b", "responses": ["200"]}],
        {"GET /b": OperationResults(1, {500}, [{"check": "not_a_server_error"}])},
        min_pass_rate=1.0,
        known_failures=["get /b not_a_server_error"],
    )
    assert lower["verdict"] == "PASSED"

"""The request checks that sagas and saga tests share, on both of their models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from crucible.api.qa_models import QaRunCreate
from crucible.api.saga_models import SagaCreate
from crucible.api.saga_test_models import SagaTestCreate


def saga(http: dict[str, Any], kafka: dict[str, Any] | None = None) -> dict[str, Any]:
    action = {"kafka": kafka} if kafka is not None else {"http": http}
    return {"name": "s", "steps": [{"name": "one", "action": action}]}


def saga_test(trigger: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "topics": ["shop.orders"],
        "trigger": trigger,
        "correlation_id": "o-1",
        "expected_events": ["OrderCreated"],
        **fields,
    }


def errors(model: type[SagaCreate | SagaTestCreate], body: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {tuple(e["loc"]): e["msg"] for e in caught.value.errors()}


SAGA_HTTP = ("steps", 0, "action", "http")
BAD_REQUESTS = [
    ({"url": "http://shop:99999/orders"}, "url", "the URL has an invalid port (1 to 65535)"),
    ({"url": "http://user:pw@shop/orders"}, "url", "put credentials in headers"),
    ({"url": "ftp://shop/orders"}, "url", "give an http or https URL"),
    (
        {"url": "http://shop/o", "headers": {"idempotency-key": "k"}},
        "headers",
        "Crucible sets Idempotency-Key",
    ),
    ({"url": "http://shop/o", "headers": {"bad name": "v"}}, "headers", "invalid header names"),
    ({"url": "http://shop/o", "body": "x" * 70_000}, "body", "at most 64 KiB of JSON"),
    ({"url": "http://shop/o", "method": "fetch"}, "method", "Input should be"),
]


@pytest.mark.parametrize(("request_", "field", "message"), BAD_REQUESTS)
def test_both_refuse_the_same_requests(request_: dict[str, Any], field: str, message: str) -> None:
    for model, body, loc in (
        (SagaCreate, saga(request_), (*SAGA_HTTP, field)),
        (SagaTestCreate, saga_test(request_), ("trigger", field)),
    ):
        found = errors(model, body)
        assert loc in found and message in found[loc], (model.__name__, found)


def test_both_upper_case_the_method() -> None:
    created = SagaCreate.model_validate(saga({"method": "delete", "url": "http://shop/orders/{{run_id}}"}))
    assert created.steps[0].action.http is not None and created.steps[0].action.http.method == "DELETE"
    tested = SagaTestCreate.model_validate(saga_test({"method": "put", "url": "http://shop:8080/orders"}))
    assert tested.trigger.method == "PUT"


def test_topics_and_json_paths_are_checked_alike() -> None:
    found = errors(SagaCreate, saga({}, kafka={"topic": "bad topic!", "value": {}}))
    assert "a Kafka topic name" in found[("steps", 0, "action", "kafka", "topic")]
    found = errors(SagaTestCreate, saga_test({"url": "http://shop/o"}, topics=["ok", "bad topic!"]))
    assert "a Kafka topic name" in found[("topics", 1)]

    found = errors(SagaTestCreate, saga_test({"url": "http://shop/o"}, type_path="type", event_id_path="$["))
    assert set(found) == {("type_path",), ("event_id_path",)}
    capture = saga({"url": "http://shop/o"})
    capture["steps"][0]["action"]["capture"] = {"order_id": "id"}
    assert ("steps", 0, "action", "capture") in errors(SagaCreate, capture)


def test_only_saga_urls_take_placeholders_and_never_in_the_host() -> None:
    found = errors(SagaCreate, saga({"url": "http://{{host}}/orders"}))
    assert "placeholders go in its path and query" in found[(*SAGA_HTTP, "url")]
    assert SagaCreate.model_validate(saga({"url": "http://shop:8080/orders/{{run_id}}"}))


def test_target_urls_may_name_an_ipv6_address() -> None:
    for url in ("http://[::1]:8080", "https://[2001:db8::1]/v1", "http://[::]/"):
        assert QaRunCreate(base_url=url, spec_url=f"{url}/openapi.json").base_url == url
    for url in ("http://[::g]/", "http://[1::2::3]/", "http://[::1"):
        with pytest.raises(ValidationError):
            QaRunCreate(base_url=url, spec_url="http://example.com/openapi.json")

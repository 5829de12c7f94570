"""Saga request templates: placeholders filled from captured variables."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from crucible.core.sagas.templates import MissingVariableError, placeholders, render_json, render_text

VARIABLES = {"run_id": "saga-1", "order_id": "o/1", "qty": 2, "items": [{"sku": "a"}]}


def test_text_takes_each_value_as_text() -> None:
    assert render_text("/orders/{{order_id}}?n={{ qty }}", VARIABLES) == "/orders/o/1?n=2"
    assert (
        render_text("/orders/{{order_id}}", VARIABLES, quote=lambda s: quote(s, safe="")) == "/orders/o%2F1"
    )
    assert render_text("{{items}}", VARIABLES) == '[{"sku": "a"}]'


def test_a_string_that_is_one_placeholder_keeps_the_type() -> None:
    template = {
        "qty": "{{qty}}",
        "items": "{{items}}",
        "label": "{{order_id}} x{{qty}}",
        "n": 1,
        "l": ["{{qty}}"],
    }
    assert render_json(template, VARIABLES) == {
        "qty": 2,
        "items": [{"sku": "a"}],
        "label": "o/1 x2",
        "n": 1,
        "l": [2],
    }


def test_two_placeholders_are_not_one() -> None:
    assert render_json("{{qty}}{{qty}}", VARIABLES) == "22"


def test_a_missing_variable_is_named() -> None:
    with pytest.raises(MissingVariableError, match="'payment_id'"):
        render_json({"a": ["{{payment_id}}"]}, VARIABLES)


def test_placeholders_are_found_with_where_they_are() -> None:
    found = list(placeholders({"a": ["x {{one}}", {"b": "{{ two }}"}], "c": 3}, ("body",)))
    assert found == [(("body", "a", 0), "one"), (("body", "a", 1, "b"), "two")]

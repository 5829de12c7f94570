"""Parameters are written the way the spec's style says: the OpenAPI 3 examples, and Swagger 2.0."""

from __future__ import annotations

from crucible.core.qa.params import Style, header_value, path_value, query_pairs, wire_style

ARRAY = ["blue", "black", "brown"]
OBJECT = {"R": 100, "G": 200, "B": 150}


def test_path_styles_follow_the_openapi_examples() -> None:
    cases = [
        (Style("simple", False), "blue,black,brown", "R,100,G,200,B,150"),
        (Style("simple", True), "blue,black,brown", "R=100,G=200,B=150"),
        (Style("label", False), ".blue,black,brown", ".R,100,G,200,B,150"),
        (Style("label", True), ".blue.black.brown", ".R=100.G=200.B=150"),
        (Style("matrix", False), ";color=blue,black,brown", ";color=R,100,G,200,B,150"),
        (Style("matrix", True), ";color=blue;color=black;color=brown", ";R=100;G=200;B=150"),
    ]
    for style, array, obj in cases:
        assert path_value("color", ARRAY, style) == array, style
        assert path_value("color", OBJECT, style) == obj, style
    assert path_value("color", "a/b c", Style("simple", False)) == "a%2Fb%20c"  # stays one segment
    assert path_value("color", "..", Style("simple", False)) == "%2E%2E"


def test_query_styles_follow_the_openapi_examples() -> None:
    assert query_pairs("color", ARRAY, Style("form", True)) == [("color", c) for c in ARRAY]
    assert query_pairs("color", ARRAY, Style("form", False)) == [("color", "blue,black,brown")]
    assert query_pairs("color", ARRAY, Style("spaceDelimited", False)) == [("color", "blue black brown")]
    assert query_pairs("color", ARRAY, Style("pipeDelimited", False)) == [("color", "blue|black|brown")]
    assert query_pairs("color", OBJECT, Style("form", True)) == [("R", "100"), ("G", "200"), ("B", "150")]
    assert query_pairs("color", OBJECT, Style("form", False)) == [("color", "R,100,G,200,B,150")]
    assert query_pairs("color", OBJECT, Style("deepObject", True)) == [
        ("color[R]", "100"),
        ("color[G]", "200"),
        ("color[B]", "150"),
    ]
    # A negative scenario's wrong type is written as it is, whatever the style.
    assert query_pairs("color", 12345, Style("pipeDelimited", False)) == [("color", "12345")]
    assert query_pairs("flag", True, Style("form", True)) == [("flag", "true")]
    assert query_pairs("filter", {"a": 1}, Style("simple", False, as_json=True)) == [("filter", '{"a": 1}')]


def test_headers_are_simple() -> None:
    assert header_value(ARRAY, Style("simple", False)) == "blue,black,brown"
    assert header_value(OBJECT, Style("simple", True)) == "R=100,G=200,B=150"
    assert header_value(OBJECT, Style("simple", False)) == "R,100,G,200,B,150"


def test_declared_styles_and_their_defaults() -> None:
    assert wire_style({"name": "q", "in": "query"}, "query", swagger=False) == Style("form", True)
    assert wire_style({"name": "q", "in": "query", "explode": False}, "query", swagger=False) == Style(
        "form", False
    )
    assert wire_style({"name": "id", "in": "path"}, "path", swagger=False) == Style("simple", False)
    assert wire_style({"name": "id", "in": "path", "style": "matrix"}, "path", swagger=False) == Style(
        "matrix", False
    )
    assert wire_style({"name": "f", "in": "query", "content": {}}, "query", swagger=False).as_json
    # Swagger 2.0: csv unless the parameter says otherwise; multi repeats the name.
    assert wire_style({"name": "t", "in": "query", "type": "array"}, "query", swagger=True) == Style(
        "form", False
    )
    assert wire_style(
        {"name": "t", "in": "query", "collectionFormat": "multi"}, "query", swagger=True
    ) == Style("form", True)
    assert wire_style(
        {"name": "t", "in": "query", "collectionFormat": "pipes"}, "query", swagger=True
    ) == Style("pipeDelimited", False)
    assert wire_style({"name": "t", "in": "path", "type": "array"}, "path", swagger=True) == Style(
        "simple", False
    )

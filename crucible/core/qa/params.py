"""Parameters on the wire, serialized as the spec says.

OpenAPI 3 names a parameter's ``style`` and ``explode``; Swagger 2.0 its
``collectionFormat``. :func:`wire_style` reads either into one :class:`Style`, and the
functions below write a value in it: arrays and objects by the style's delimiters, and
anything else (a scalar, or the wrong type a negative scenario sends) as plain text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

#: Swagger 2.0's collection formats, as the OpenAPI 3 styles that write them.
_COLLECTION_FORMATS = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "tsv": ("tabDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
}
_DELIMITERS = {"spaceDelimited": " ", "tabDelimited": "\t", "pipeDelimited": "|"}


@dataclass(frozen=True)
class Style:
    style: str
    explode: bool
    #: The value travels as JSON text (an OpenAPI 3 parameter with ``content``).
    as_json: bool = False


def wire_style(raw: dict[str, Any], location: str, *, swagger: bool) -> Style:
    """The serialization a raw parameter object asks for, with the specification's defaults."""
    if "content" in raw and "schema" not in raw:
        return Style("simple", False, as_json=True)
    if swagger:
        fmt = str(raw.get("collectionFormat") or "csv")
        style, explode = _COLLECTION_FORMATS.get(fmt, _COLLECTION_FORMATS["csv"])
        if location in ("path", "header") and style == "form" and not explode:
            style = "simple"
        return Style(style, explode)
    named = str(raw.get("style") or ("form" if location in ("query", "cookie") else "simple"))
    declared = raw.get("explode")
    return Style(named, declared if isinstance(declared, bool) else named == "form")


def default_style(location: str) -> Style:
    """How a parameter the spec does not declare (one an LLM added) is written."""
    return Style("form", True) if location in ("query", "cookie") else Style("simple", False)


def text(value: Any) -> str:
    """One value as text: ``true``/``false``, JSON for anything nested, empty for null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def query_pairs(name: str, value: Any, style: Style) -> list[tuple[str, str]]:
    """The query string's name/value pairs for one parameter (before percent-encoding)."""
    if style.as_json:
        return [(name, value if isinstance(value, str) else json.dumps(value))]
    if isinstance(value, list):
        if style.explode and style.style in ("form", *_DELIMITERS):
            return [(name, text(item)) for item in value]
        return [(name, _DELIMITERS.get(style.style, ",").join(text(item) for item in value))]
    if isinstance(value, dict):
        if style.style == "deepObject":
            return [(f"{name}[{key}]", text(item)) for key, item in value.items()]
        if style.explode and style.style == "form":
            return [(str(key), text(item)) for key, item in value.items()]
        return [(name, ",".join(part for key, item in value.items() for part in (str(key), text(item))))]
    return [(name, text(value))]


def path_value(name: str, value: Any, style: Style) -> str:
    """A path parameter's text, percent-encoded, with the style's delimiters left as they are."""
    if style.as_json:
        return _segment(value if isinstance(value, str) else json.dumps(value))
    prefix, joiner = "", ","
    if style.style == "label":
        prefix, joiner = ".", "." if style.explode else ","
    elif style.style == "matrix":
        prefix = f";{_segment(name)}="
        joiner = prefix if style.explode else ","
    if isinstance(value, list):
        return prefix + joiner.join(_segment(text(item)) for item in value)
    if isinstance(value, dict):
        if style.explode:
            pairs = [f"{_segment(str(key))}={_segment(text(item))}" for key, item in value.items()]
            if style.style == "matrix":  # each property is its own ;key=value
                return "".join(f";{pair}" for pair in pairs)
            return prefix + joiner.join(pairs)
        return prefix + ",".join(_segment(part) for k, v in value.items() for part in (str(k), text(v)))
    return prefix + _segment(text(value))


def header_value(value: Any, style: Style) -> str:
    """A header's (or a cookie's) value: arrays and objects comma-separated, as ``simple`` says."""
    if style.as_json:
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, list):
        return ",".join(text(item) for item in value)
    if isinstance(value, dict):
        joined = (f"{k}={text(v)}" if style.explode else f"{k},{text(v)}" for k, v in value.items())
        return ",".join(joined)
    return text(value)


def _segment(part: str) -> str:
    encoded = quote(part, safe="")
    # "." and ".." would be collapsed by the client into another endpoint.
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded

"""Saga request templates: ``{{name}}`` placeholders filled from the saga's variables.

Variables are ``run_id`` and every value an earlier action captured. In text (a URL, a
header value, a Kafka key, a string inside a body) a placeholder becomes the value's text:
a string as it is, anything else as JSON. A JSON string that is exactly one placeholder
becomes the value itself, with its JSON type. This module is imported by workflow code,
so it uses the standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Every saga can use it; captures may not take the name.
RUN_ID = "run_id"

Where = tuple[str | int, ...]


class MissingVariableError(LookupError):
    """A placeholder names a variable the saga does not have (yet)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no variable {name!r}: no earlier step captured it")
        self.name = name


def placeholders(value: Any, where: Where = ()) -> Iterator[tuple[Where, str]]:
    """Every placeholder's expression in a text or JSON template, with where it is."""
    if isinstance(value, str):
        for match in PLACEHOLDER.finditer(value):
            yield where, match.group(1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from placeholders(item, (*where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from placeholders(item, (*where, index))


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _value(name: str, variables: Mapping[str, Any]) -> Any:
    if name not in variables:
        raise MissingVariableError(name)
    return variables[name]


def render_text(text: str, variables: Mapping[str, Any], quote: Callable[[str], str] | None = None) -> str:
    """``text`` with each placeholder replaced by its value's text (``quote``d, for URLs)."""

    def replace(match: re.Match[str]) -> str:
        value = as_text(_value(match.group(1), variables))
        return quote(value) if quote else value

    return PLACEHOLDER.sub(replace, text)


def render_json(template: Any, variables: Mapping[str, Any]) -> Any:
    """The JSON value of a template; a string that is one placeholder keeps the value's type.

    Raises:
        MissingVariableError: a placeholder names a variable there is not.
    """
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        return _value(whole.group(1), variables) if whole else render_text(template, variables)
    if isinstance(template, dict):
        return {key: render_json(item, variables) for key, item in template.items()}
    if isinstance(template, list):
        return [render_json(item, variables) for item in template]
    return template

"""Request templates of the ``http`` processor: ``{{record.field}}`` and ``{{row}}`` placeholders.

Templates are compiled once, when the processor is built, and rendered once per record.
In text a placeholder becomes the value's text (JSON for anything but a string); a JSON
string that is one placeholder and nothing else becomes the value itself, typed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_FIELD_PREFIX = "record."


class MissingFieldError(Exception):
    """A placeholder names a field the record does not have."""

    def __init__(self, field: str) -> None:
        super().__init__(f"the record has no field {field!r}")
        self.field = field


@dataclass(frozen=True)
class Placeholder:
    """``{{row}}`` or ``{{record.<field>}}``."""

    #: The record field it stands for; None for the row number.
    field: str | None

    def value(self, row: int, record: dict[str, Any]) -> Any:
        """The field's value: a key of the record, else a dotted path into nested objects."""
        if self.field is None:
            return row
        if self.field in record:
            return record[self.field]
        value: Any = record
        for part in self.field.split("."):
            if not isinstance(value, dict) or part not in value:
                raise MissingFieldError(self.field)
            value = value[part]
        return value


@dataclass(frozen=True)
class Text:
    """A string with placeholders in it."""

    parts: tuple[str | Placeholder, ...]

    def render(self, row: int, record: dict[str, Any], quote: Callable[[str], str] | None = None) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                text = as_text(part.value(row, record))
                out.append(quote(text) if quote else text)
        return "".join(out)


def as_text(value: Any) -> str:
    """A value as it reads inside text: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def placeholder_errors(text: str) -> list[str]:
    """What is wrong with the placeholders in ``text``; empty if nothing."""
    return [
        f"unknown placeholder {{{{{expression}}}}}; use {{{{row}}}} or {{{{record.<field>}}}}"
        for expression in _PLACEHOLDER.findall(text)
        if _placeholder(expression) is None
    ]


def _placeholder(expression: str) -> Placeholder | None:
    if expression == "row":
        return Placeholder(None)
    if expression.startswith(_FIELD_PREFIX) and len(expression) > len(_FIELD_PREFIX):
        return Placeholder(expression[len(_FIELD_PREFIX) :])
    return None


def compile_text(text: str) -> Text | str:
    """``text`` as a :class:`Text`, or itself if it has no placeholders. Checked beforehand."""
    parts: list[str | Placeholder] = []
    at = 0
    for match in _PLACEHOLDER.finditer(text):
        placeholder = _placeholder(match.group(1))
        assert placeholder is not None, "placeholders are checked before they are compiled"
        parts += [text[at : match.start()], placeholder]
        at = match.end()
    if not parts:
        return text
    parts.append(text[at:])
    return Text(tuple(p for p in parts if p != ""))


def compile_json(value: Any) -> Any:
    """A JSON template: its strings compiled (keys stay as they are), a string that is one
    placeholder made a :class:`Placeholder`."""
    if isinstance(value, dict):
        return {key: compile_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [compile_json(item) for item in value]
    if isinstance(value, str):
        compiled = compile_text(value)
        if (
            isinstance(compiled, Text)
            and len(compiled.parts) == 1
            and isinstance(compiled.parts[0], Placeholder)
        ):
            return compiled.parts[0]
        return compiled
    return value


def render_json(template: Any, row: int, record: dict[str, Any]) -> Any:
    """The JSON value a compiled template makes for one record.

    Raises:
        MissingFieldError: a placeholder names a field the record does not have.
    """
    if isinstance(template, Placeholder):
        return template.value(row, record)
    if isinstance(template, Text):
        return template.render(row, record)
    if isinstance(template, dict):
        return {key: render_json(item, row, record) for key, item in template.items()}
    if isinstance(template, list):
        return [render_json(item, row, record) for item in template]
    return template


def json_placeholder_errors(
    value: Any, where: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], str]]:
    """Placeholder errors anywhere in a JSON template, with where they are."""
    if isinstance(value, dict):
        return [e for key, item in value.items() for e in json_placeholder_errors(item, (*where, key))]
    if isinstance(value, list):
        return [e for i, item in enumerate(value) for e in json_placeholder_errors(item, (*where, i))]
    if isinstance(value, str):
        return [(where, message) for message in placeholder_errors(value)]
    return []

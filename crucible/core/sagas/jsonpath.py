"""A small JSONPath subset for captures and checks: ``$``, ``.field``, ``['field']``, ``[index]``.

``$.items[0].sku`` reads ``doc["items"][0]["sku"]``. Nothing else of JSONPath (wildcards,
filters, slices, recursive descent) is supported: a saga captures one value per name.
This module is imported by workflow code, so it uses the standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# ASCII classes, not \s or \d, so that JSON_PATH means the same in JSON Schema's regexes.
_STEP = re.compile(
    r"""\.(?P<field>[^.\[\]\x00-\x20\x7f'"]+)"""
    r"""|\[(?P<index>-?[0-9]+)\]"""
    r"""|\[(?P<quote>['"])(?P<quoted>(?:(?!(?P=quote))[^\n])+)(?P=quote)\]"""
)
#: A whole path that :meth:`JsonPath.parse` reads, as one regular expression (for a JSON schema).
JSON_PATH = r"""^\$(\.[^.\[\]\x00-\x20\x7f'"]+|\[-?[0-9]+\]|\['[^'\n]+'\]|\["[^"\n]+"\])*$"""


class JsonPathError(ValueError):
    """A path outside the supported subset; the message says where."""


class PathNotFoundError(LookupError):
    """The document has nothing at the path."""

    def __init__(self, path: str, where: str) -> None:
        super().__init__(f"nothing at {path} ({where})")
        self.path = path


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Parse ``text``; raises :class:`JsonPathError` naming the first thing it cannot read."""
        if not text.startswith("$"):
            raise JsonPathError(f"a path starts with $, like $.id or $.items[0].sku: {text!r}")
        steps: list[str | int] = []
        at = 1
        while at < len(text):
            match = _STEP.match(text, at)
            if match is None:
                raise JsonPathError(
                    f"cannot read {text!r} from position {at} ({text[at:]!r}); "
                    "use .field, ['field'] or [index]"
                )
            if match["index"] is not None:
                steps.append(int(match["index"]))
            else:
                steps.append(match["field"] if match["field"] is not None else match["quoted"])
            at = match.end()
        return cls(text, tuple(steps))

    def find(self, doc: Any) -> Any:
        """The value at this path in ``doc``; raises :class:`PathNotFoundError` if there is none."""
        value = doc
        for depth, step in enumerate(self.steps):
            if isinstance(step, int):
                if not isinstance(value, list) or not -len(value) <= step < len(value):
                    raise PathNotFoundError(self.text, f"no item [{step}] at {self._prefix(depth)}")
            elif not isinstance(value, dict) or step not in value:
                raise PathNotFoundError(self.text, f"no field {step!r} at {self._prefix(depth)}")
            value = value[step]
        return value

    def _prefix(self, depth: int) -> str:
        return "$" + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in self.steps[:depth])

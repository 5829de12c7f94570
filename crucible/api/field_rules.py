"""Checks on request fields that are also their published JSON schema, so the two cannot drift.

Each rule is one regular expression, written to mean the same in Python's ``re`` (checked
with ``fullmatch``) and in the ECMA dialect JSON Schema uses: ASCII character classes and
``[0-9]`` rather than ``\\d`` or ``\\s``, whose meanings differ between the two. The check
raises a ``ValueError`` with our own message (never the value, which may be a secret), and
the schema carries the same expression as ``pattern``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema

#: A port from 0 to 65535, the range ``urllib.parse`` accepts.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
#: An IPv6 address in brackets, in every form ``ipaddress`` reads but those with an embedded
#: IPv4 address or a zone.
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"\[(({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}"
    rf"|({_H}:){{1,4}}(:{_H}){{1,3}}|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}"
    rf"|{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:))\]"
)
#: A host name or IPv4 address (dot-separated labels of letters, digits, '-' and '_', none
#: empty), or an IPv6 address in brackets.
_HOST = rf"([A-Za-z0-9_-]{{1,63}}(\.[A-Za-z0-9_-]{{1,63}})*\.?|{_IPV6})"
#: Printable ASCII but space, '#', '?' (a path), and the same with '?' (a path and its query).
_PATH = r"(/[\x21\x22\x24-\x3e\x40-\x7e]*)?"
PATH_QUERY = r"(/[\x21\x22\x24-\x7e]*)?(\?[\x21\x22\x24-\x7e]*)?"
#: Credentials: printable ASCII but '/', '?', '#', '@' and the brackets (urlsplit reads a
#: bracket in the netloc as an IPv6 address, and raises on one that is not).
_CREDENTIALS = r"([\x21\x22\x24-\x2e\x30-\x3e\x41-\x5a\x5c\x5e-\x7e]*@)?"

#: http or https, in any case (``urllib.parse`` lowers it).
SCHEME = r"[Hh][Tt][Tt][Pp][Ss]?://"
#: A URL's start up to its path: scheme, optional credentials, host and port.
URL_START = rf"{SCHEME}{_CREDENTIALS}{_HOST}(:{_PORT})?"
#: An absolute http(s) URL with a host, an optional port, path and query, and no fragment.
HTTP_URL = rf"^{URL_START}{PATH_QUERY}$"
#: An http(s) URL a run requests: no credentials (they go in headers, stored encrypted), a
#: fragment allowed; ``{{name}}`` placeholders fit its path and query, never its host.
REQUEST_URL = rf"^{SCHEME}{_HOST}(:{_PORT})?{PATH_QUERY}(#[\x21-\x7e]*)?$"
#: The same without a query: a base that operations' paths are appended to.
HTTP_BASE_URL = rf"^{URL_START}{_PATH}$"
#: An HTTP header name (RFC 9110 token) and a value that fits on one line.
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HEADER_VALUE = r"^[\x20-\x7e\t]*$"


#: The characters ``str.isspace`` calls whitespace (which ``str.strip`` removes), spelled out:
#: ``\s`` means a slightly different set in Python and in ECMA regexes.
PY_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: A text with something in it besides whitespace (``text.strip()`` is not empty).
NOT_BLANK = rf"[^{PY_SPACE}]"


def any_case(word: str) -> str:
    """``get`` as ``[Gg][Ee][Tt]``: JSON Schema's regexes have no case-insensitive flag."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


#: One of the methods a run's requests use, in any case (they are upper-cased).
HTTP_METHOD_ANY_CASE = (
    "^(" + "|".join(map(any_case, ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"))) + ")$"
)


def matches(pattern: str, message: str) -> Callable[[str], str]:
    """A check that ``value`` is all of ``pattern``; ``message`` when it is not."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(message)
        return value

    return check


def published(pattern: str) -> Any:
    """``pattern`` in a field's JSON schema; :func:`matches` is its check."""
    return Field(json_schema_extra={"pattern": pattern})


def given(name: str, json_type: str, *absent: str) -> dict[str, Any]:
    """A schema for: ``name`` is given and not null, and each of ``absent`` is unset or null.

    For the rules a model checks across fields ("give a or b, not both"), whose JSON schema
    says them with ``anyOf`` over such branches.
    """
    return {
        "required": [name],
        "properties": {name: {"type": json_type}, **{other: {"type": "null"} for other in absent}},
    }


_HEADER_NAME = re.compile(HEADER_NAME)
_HEADER_VALUE = re.compile(HEADER_VALUE)


def checked_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers a target can be sent; a wrong one is named, its value never shown (a secret)."""
    bad = [name for name in headers if not _HEADER_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"invalid header names: {bad}")
    unsendable = [name for name, value in headers.items() if not _HEADER_VALUE.fullmatch(value)]
    if unsendable:
        raise ValueError(f"header values must be printable ASCII on one line: {unsendable}")
    return headers


HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": HEADER_NAME},
    "additionalProperties": {"type": "string", "pattern": HEADER_VALUE},
}

#: Headers to send to a target: RFC 9110 names, printable one-line values.
Headers = Annotated[dict[str, str], AfterValidator(checked_headers), WithJsonSchema(HEADERS_SCHEMA)]
#: An absolute http(s) URL (see :data:`HTTP_URL`).
HttpUrl = Annotated[
    str,
    AfterValidator(matches(HTTP_URL, "must be an absolute http(s) URL, like http://127.0.0.1:8080")),
    published(HTTP_URL),
]

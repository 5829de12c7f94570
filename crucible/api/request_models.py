"""Field types that the saga and saga test request models share: how an outgoing HTTP request,
a Kafka topic and a JSONPath are checked.

Each is an ``Annotated`` type, so a model declares ``method: HttpMethod = "POST"`` and gets
the check; a failed check is a ``ValueError`` that names what to write instead, reported at
the field's own location like any other 422.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from crucible.api.field_rules import (
    HEADER_NAME,
    HEADERS_SCHEMA,
    HTTP_METHOD_ANY_CASE,
    REQUEST_URL,
    any_case,
    checked_headers,
    published,
)
from crucible.core.http import IDEMPOTENCY_HEADER
from crucible.core.sagas.jsonpath import JSON_PATH, JsonPath, JsonPathError

#: A body or message value larger than this (as JSON) is refused: it would sit in workflow history.
MAX_JSON_CHARS = 64 * 1024
MAX_URL_CHARS = 4096
TOPIC = r"^[A-Za-z0-9._-]{1,249}$"
_TOPIC = re.compile(TOPIC)
TOPIC_RULE = "1 to 249 letters, digits, '.', '_' or '-'"


def _upper(method: Any) -> Any:
    return method.upper() if isinstance(method, str) else method


def checked_request_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers Crucible may send for a run; the idempotency key is Crucible's own."""
    if any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in headers):
        raise ValueError(f"Crucible sets {IDEMPOTENCY_HEADER} itself, from the run id and the request")
    return checked_headers(headers)


def small_json(value: Any) -> Any:
    if len(json.dumps(value)) > MAX_JSON_CHARS:
        raise ValueError(f"at most {MAX_JSON_CHARS // 1024} KiB of JSON")
    return value


def checked_topic(topic: str) -> str:
    if not _TOPIC.fullmatch(topic):
        raise ValueError(f"a Kafka topic name: {TOPIC_RULE}")
    return topic


def checked_json_path(path: str) -> str:
    try:
        JsonPath.parse(path)
    except JsonPathError as exc:
        raise ValueError(str(exc)) from None
    return path


_REQUEST_URL = re.compile(REQUEST_URL)


def _url_check(example: str, *, templated: bool) -> Callable[[str], str]:
    """REQUEST_URL decides; what is wrong with a URL it refuses is only worked out for the message."""

    def check(url: str) -> str:
        if _REQUEST_URL.fullmatch(url):
            return url
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.scheme not in ("http", "https") or not netloc:
            raise ValueError(f"give an http or https URL, like {example}")
        if templated and "{{" in netloc:
            raise ValueError("write the URL's host out; placeholders go in its path and query")
        if "@" in netloc:
            raise ValueError("put credentials in headers, which are stored encrypted, not in the URL")
        port = netloc.rpartition(":")[2] if not netloc.endswith("]") else ""
        if ":" in netloc and not (port.isascii() and port.isdigit() and int(port) <= 65535):
            raise ValueError("the URL has an invalid port (1 to 65535)")
        raise ValueError(
            "give an http or https URL of printable ASCII characters, with a host of letters, digits, "
            f"'-', '_' and dots, like {example}"
        )

    return check


_REQUEST_HEADERS_SCHEMA = {
    **HEADERS_SCHEMA,
    "propertyNames": {"pattern": HEADER_NAME, "not": {"pattern": f"^{any_case(IDEMPOTENCY_HEADER)}$"}},
}

#: A method, in any case (it is upper-cased), as its schema says.
HttpMethod = Annotated[
    Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    BeforeValidator(_upper),
    WithJsonSchema({"type": "string", "pattern": HTTP_METHOD_ANY_CASE}),
]
#: An http(s) URL with a host, a valid port and no credentials.
RequestUrl = Annotated[
    str, AfterValidator(_url_check("http://orders.internal/orders", templated=False)), published(REQUEST_URL)
]
#: The same, with ``{{name}}`` placeholders allowed in its path and query, not its host.
TemplatedUrl = Annotated[
    str,
    AfterValidator(_url_check("http://orders.internal/orders/{{order_id}}", templated=True)),
    published(REQUEST_URL),
]
RequestHeaders = Annotated[
    dict[str, str], AfterValidator(checked_request_headers), WithJsonSchema(_REQUEST_HEADERS_SCHEMA)
]
SmallJson = Annotated[Any, AfterValidator(small_json)]
TopicName = Annotated[str, AfterValidator(checked_topic), published(TOPIC)]
JsonPathText = Annotated[str, AfterValidator(checked_json_path), published(JSON_PATH)]

"""The checks a QA run applies to each response.

Names follow Schemathesis's where the check is the same, so users moving over keep their
vocabulary. A failed check names the check, the expected and actual values and, for the
body, the JSON path.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from jsonschema.exceptions import SchemaError, UnknownType
from referencing.exceptions import Unresolvable

from crucible.core.qa.scenarios import ACCEPT, REJECT, Scenario
from crucible.core.qa.spec import Operation, ResponseSpec, Spec, is_json_media

NOT_A_SERVER_ERROR = "not_a_server_error"
STATUS_CODE_CONFORMANCE = "status_code_conformance"
CONTENT_TYPE_CONFORMANCE = "content_type_conformance"
RESPONSE_SCHEMA_CONFORMANCE = "response_schema_conformance"
NEGATIVE_DATA_REJECTION = "negative_data_rejection"
POSITIVE_DATA_ACCEPTANCE = "positive_data_acceptance"
RESPONSE_TIME = "max_response_time"
REQUEST_ERROR = "request_error"
SPEC_PROBLEM = "spec_problem"

ALL_CHECKS = (
    NOT_A_SERVER_ERROR,
    STATUS_CODE_CONFORMANCE,
    CONTENT_TYPE_CONFORMANCE,
    RESPONSE_SCHEMA_CONFORMANCE,
    NEGATIVE_DATA_REJECTION,
    POSITIVE_DATA_ACCEPTANCE,
    RESPONSE_TIME,
)
#: Schema errors reported per response; the rest are counted.
MAX_SCHEMA_ERRORS = 5
#: Statuses that say "your data is invalid"; valid data must not get them.
_REJECTIONS = {400, 422}


@dataclass
class CheckFailure:
    check: str
    message: str
    expected: Any = None
    actual: Any = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Response:
    """What came back, as the checks need it (the body is capped by the executor)."""

    status: int
    content_type: str | None
    body: bytes
    elapsed_ms: float
    truncated: bool = False


def declared_code(codes: Collection[str], status: int) -> str | None:
    """Which of the declared ``codes`` covers ``status``: the exact code, then ``4XX``, then ``DEFAULT``."""
    code = str(status)
    return next((c for c in (code, f"{code[0]}XX", "DEFAULT") if c in codes), None)


def declared(op: Operation, status: int) -> ResponseSpec | None:
    """The response the spec declares for ``status``."""
    code = declared_code(op.responses, status)
    return op.responses[code] if code is not None else None


def check_response(
    spec: Spec,
    op: Operation,
    scenario: Scenario,
    response: Response,
    *,
    max_response_time_ms: float | None = None,
) -> list[CheckFailure]:
    """Every check that fails for ``response`` to ``scenario``."""
    failures: list[CheckFailure] = []
    status = response.status
    expected_codes = sorted(op.responses)
    if status >= 500:
        failures.append(CheckFailure(NOT_A_SERVER_ERROR, f"server error {status}", "< 500", status))
    spec_response = declared(op, status)
    if spec_response is None:
        failures.append(
            CheckFailure(
                STATUS_CODE_CONFORMANCE,
                f"status {status} is not declared for {op.key}",
                expected_codes,
                status,
            )
        )
    if scenario.expect == REJECT and 200 <= status < 400:
        failures.append(
            CheckFailure(
                NEGATIVE_DATA_REJECTION,
                f"invalid data was accepted ({scenario.name.removeprefix('negative: ')})",
                "4xx",
                status,
                scenario.target,
            )
        )
    if scenario.expect == ACCEPT and status in _REJECTIONS:
        failures.append(
            CheckFailure(POSITIVE_DATA_ACCEPTANCE, f"valid data was rejected with {status}", "2xx", status)
        )
    if max_response_time_ms is not None and response.elapsed_ms > max_response_time_ms:
        failures.append(
            CheckFailure(
                RESPONSE_TIME,
                f"took {response.elapsed_ms:.0f} ms",
                f"<= {max_response_time_ms:g} ms",
                round(response.elapsed_ms, 1),
            )
        )
    if spec_response is not None and spec_response.media_types and response.body:
        failures.extend(_content_checks(spec, spec_response, response))
    return failures


def _content_checks(spec: Spec, declared_response: ResponseSpec, response: Response) -> list[CheckFailure]:
    media = (response.content_type or "").split(";")[0].strip().lower()
    if not _media_matches(media, declared_response.media_types):
        return [
            CheckFailure(
                CONTENT_TYPE_CONFORMANCE,
                f"content type {media or '(none)'} is not declared for status {response.status}",
                declared_response.media_types,
                media or None,
            )
        ]
    if declared_response.pointer is None or not is_json_media(media) or response.truncated:
        return []
    try:
        body = json.loads(response.body)
    except ValueError as exc:
        return [CheckFailure(RESPONSE_SCHEMA_CONFORMANCE, f"the body is not JSON: {exc}", "JSON", None, "$")]
    if spec.conforms(declared_response.pointer, body):
        return []
    try:
        validator = spec.validator_for(declared_response.pointer)
        errors = sorted(validator.iter_errors(body), key=lambda e: e.json_path)
    except (Unresolvable, SchemaError, UnknownType, RecursionError):
        return []  # the schema itself is broken: a spec problem the operation already reports
    failures = [
        CheckFailure(
            RESPONSE_SCHEMA_CONFORMANCE,
            error.message,
            _expected(error.validator, error.validator_value),
            _short(error.instance),
            error.json_path,
        )
        for error in errors[:MAX_SCHEMA_ERRORS]
    ]
    if len(errors) > MAX_SCHEMA_ERRORS:
        failures[-1].message += f" (and {len(errors) - MAX_SCHEMA_ERRORS} more schema errors)"
    return failures


def _media_matches(media: str, declared_types: list[str]) -> bool:
    for declared_type in declared_types:
        pattern = declared_type.split(";")[0].strip().lower()
        if pattern in ("*/*", media) or (pattern.endswith("/*") and media.startswith(pattern[:-1])):
            return True
    return False


def _expected(keyword: Any, value: Any) -> Any:
    if keyword in ("$ref", "allOf", "anyOf", "oneOf", "properties"):
        return keyword
    return {str(keyword): _short(value)}


def _short(value: Any, limit: int = 200) -> Any:
    """Values in a failure stay small: reports hold thousands of them."""
    text = json.dumps(value, default=str)
    return value if len(text) <= limit else text[:limit] + "…"

"""The batch processors, by name, and the checks and factory the API and the worker use.

anomaly-detection  flags numbers far from the whole input's (z-score, IQR)
schema-validation  checks each record against a JSON Schema
http               sends one request per record, from a template
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from crucible.core.batch.processors.anomaly import AnomalyDetector, AnomalyOptions
from crucible.core.batch.processors.base import (
    ChunkContext,
    ChunkOutput,
    InvalidOptionsError,
    OptionError,
    Processor,
    option_errors,
)
from crucible.core.batch.processors.http import HttpProcessor
from crucible.core.batch.processors.http import validate as validate_http
from crucible.core.batch.processors.schema import SchemaOptions, SchemaValidator

__all__ = [
    "PROCESSORS",
    "ChunkContext",
    "ChunkOutput",
    "InvalidOptionsError",
    "OptionError",
    "Processor",
    "build_processor",
    "validate_options",
]

PROCESSORS: tuple[str, ...] = (AnomalyDetector.name, SchemaValidator.name, HttpProcessor.name)

_VALIDATORS: dict[str, Callable[[Any], list[OptionError]]] = {
    AnomalyDetector.name: lambda options: option_errors(AnomalyOptions, options),
    SchemaValidator.name: lambda options: option_errors(SchemaOptions, options),
    HttpProcessor.name: validate_http,
}


def validate_options(name: str, options: dict[str, Any]) -> list[OptionError]:
    """What is wrong with a processor's options: (where inside the options, why). Empty if fine."""
    if name not in _VALIDATORS:
        return [((), _unknown(name))]
    return _VALIDATORS[name](options)


def build_processor(
    name: str,
    options: dict[str, Any],
    *,
    http: httpx.AsyncClient | None = None,
    headers: dict[str, str] | None = None,
) -> Processor:
    """The processor ``name`` with ``options``.

    Args:
        http: The worker's shared client; the ``http`` processor needs it.
        headers: Resolved header values the ``http`` processor sends with every request.

    Raises:
        InvalidOptionsError: unknown processor, or options :func:`validate_options` rejects.
        ValueError: the ``http`` processor without a client.
    """
    if name == AnomalyDetector.name:
        return AnomalyDetector(options)
    if name == SchemaValidator.name:
        return SchemaValidator(options)
    if name == HttpProcessor.name:
        if http is None:
            raise ValueError("the http processor needs the worker's shared httpx.AsyncClient")
        return HttpProcessor(options, client=http, headers=headers)
    raise InvalidOptionsError(name, [((), _unknown(name))])


def _unknown(name: str) -> str:
    return f"unknown processor {name!r}; expected one of {', '.join(PROCESSORS)}"

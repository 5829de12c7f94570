"""Sagas (seed 001 §3.3): ordered steps with actions, compensations and verify requests.

The pure parts, shared by the saga workflow, its activities and the API: the dataclasses
they exchange (:mod:`~crucible.core.sagas.models`), ``{{name}}`` request templates
(:mod:`~crucible.core.sagas.templates`) and the JSONPath subset that captures values and
checks responses (:mod:`~crucible.core.sagas.jsonpath`). These three are light enough for
the workflow to import (the standard library, ``temporalio``, and the idempotency header's
name from :mod:`crucible.core.http`); the Kafka publisher is apart
(:mod:`~crucible.core.sagas.publisher`).

JsonPathError (a ValueError)          a path outside the supported subset
PathNotFoundError (a LookupError)     a document has nothing at a path
MissingVariableError (a LookupError)  a placeholder names a variable the saga does not have
"""

"""Event-driven saga tests (seed 001 §1.4): watch Kafka while a business flow runs, then assert.

The pure parts, shared by the saga test workflow, its activities and the API: the dataclasses
they exchange (:mod:`~crucible.core.saga_tests.models`), the assertions over collected events
(:mod:`~crucible.core.saga_tests.assertions`; both standard library only, for the workflow's
sandbox) and how one Kafka message is read (:mod:`~crucible.core.saga_tests.records`).

NotJson (a ValueError)       a message's value is not JSON (counted, not collected)
Untyped (a LookupError)      a message carries the correlation id but no type (counted)
"""

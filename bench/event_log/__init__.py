"""Benchmark of the run event log: ``python -m bench.event_log``.

Write path: workflows that write their events with ``RunEventLog`` through the real
sink (PostgreSQL, then Kafka) against workflows that run the same activities
with the same batches and do nothing. Read path: the API's polling and SSE routes
against reading the same rows straight from PostgreSQL. The worker and the API run
as their own processes, so their peak memory is measured too.
"""

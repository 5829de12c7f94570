"""QA package runs: OpenAPI specs, scenario generation, checks, evaluation and reports.

Everything here is plain, deterministic Python shared by the API (which validates a
request's spec), the activities (which generate and execute scenarios) and the
reports. Nothing here does I/O.
"""

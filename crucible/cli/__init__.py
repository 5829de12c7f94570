"""The ``crucible`` command line."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from crucible.cli.accounts import accounts_app
from crucible.cli.batch import batch_app
from crucible.cli.chaos import chaos_app
from crucible.cli.login import login, logout
from crucible.cli.pipelines import pipelines_app
from crucible.cli.qa import qa_app
from crucible.cli.runs import runs_app
from crucible.cli.saga_tests import saga_tests_app
from crucible.cli.sagas import sagas_app
from crucible.cli.schedules import schedules_app
from crucible.cli.targets import targets_app
from crucible.core.exits import exit_without_teardown

app = typer.Typer(
    name="crucible",
    help="Durable test orchestration on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(runs_app, name="runs")
app.add_typer(qa_app, name="qa")
app.add_typer(batch_app, name="batch")
app.add_typer(pipelines_app, name="pipelines")
app.add_typer(schedules_app, name="schedules")
app.add_typer(sagas_app, name="sagas")
app.add_typer(saga_tests_app, name="saga-tests")
app.add_typer(chaos_app, name="chaos")
app.add_typer(targets_app, name="targets")
app.add_typer(accounts_app, name="accounts")
app.command()(login)
app.command()(logout)


@app.command()
def dev(
    demo: Annotated[
        bool, typer.Option("--demo", help="Also serve the demo target API (CRUCIBLE_DEMO_PORT, 8099).")
    ] = False,
) -> None:
    """Start the whole stack in the foreground: Temporal, PostgreSQL, Kafka, worker, API.

    Parts named by TEMPORAL_ADDRESS, DATABASE_URL or KAFKA_BOOTSTRAP_SERVERS are used as
    given instead of started. Ctrl-C stops everything.
    """
    from crucible.core.config import load_settings
    from crucible.core.logs import configure_logging
    from crucible.stack.dev import run_dev

    # The stack's processes inherit it: the API makes and keeps its own signing secret.
    os.environ.setdefault("CRUCIBLE_DEV_MODE", "true")
    settings = load_settings(use_stack_env=False)
    configure_logging(settings.log_level)
    exit_without_teardown(asyncio.run(run_dev(settings, demo=demo)))


@app.command()
def worker() -> None:
    """Run a worker. With the CRUCIBLE_HOME of a running `crucible dev`, it joins that stack."""
    from crucible.worker import main as worker_main

    worker_main()


@app.command()
def api() -> None:
    """Serve the HTTP API (CRUCIBLE_API_HOST, CRUCIBLE_API_PORT)."""
    import uvicorn

    from crucible.core.config import load_settings
    from crucible.core.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        "crucible.api.app:app",
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=None,
        timeout_graceful_shutdown=3,
    )
    exit_without_teardown(0)


@app.command()
def migrate() -> None:
    """Bring the database (DATABASE_URL) up to the latest schema."""
    from crucible.core import migrate as migrations
    from crucible.core.config import load_settings
    from crucible.core.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    migrations.upgrade(settings.effective_database_url)
    typer.echo("database is up to date")


def main() -> None:
    app()

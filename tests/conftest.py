"""Session-wide real parts: Temporal dev server, PostgreSQL, the Kafka broker, the API."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crucible.api.app import create_app
from crucible.api.kinds import register_kind
from crucible.core.auth import ALL_SCOPES, AccountStore, Role, hash_password
from crucible.core.auth.bootstrap import bootstrap_dev
from crucible.core.chaos.metrics import serve_probe_metrics, stop_probe_metrics
from crucible.core.codec import PayloadEncryption
from crucible.core.config import Settings, load_settings
from crucible.core.db import create_engine
from crucible.core.exits import exit_without_teardown
from crucible.core.http import target_client
from crucible.core.kafka import EventPublisher
from crucible.core.runs import DEFAULT_TEAM
from crucible.core.secrets import SecretBox, new_key
from crucible.core.store import RunStore
from crucible.core.targets import TargetClient
from crucible.core.temporal import SEARCH_ATTRIBUTES
from crucible.stack.prometheus import INSTALL_HINT as PROMETHEUS_INSTALL_HINT
from crucible.stack.prometheus import ScrapeJob, prometheus_binary
from crucible.stack.services import temporal_cli
from crucible.worker import WorkerDeps, build_batch_worker, build_worker
from tests.support import schemathesis_run
from tests.support.probe import PROBE_KIND, ProbeWorkflow
from tests.support.prometheus import PrometheusServer
from tests.support.servers import ApiServer, KafkaBroker, PostgresServer

EVENTS_TOPIC = "crucible.events"
#: The second admin of the default team (the first is the dev admin).
REVIEWER = "reviewer@crucible.local"
#: The session's secrets key: it seals stored secrets and encrypts Temporal payloads.
SECRETS_KEY = new_key()
_EXIT_STATUS = pytest.StashKey[int]()

register_kind(PROBE_KIND, {"proceed": ProbeWorkflow.proceed})


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def client(temporal_env: WorkflowEnvironment) -> Client:
    """A client that encrypts payloads as Crucible's own clients do, with the session's key."""
    return await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=dataclasses.replace(
            DataConverter.default, payload_codec=PayloadEncryption(SecretBox(SECRETS_KEY))
        ),
    )


@pytest.fixture(scope="session")
async def postgres(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PostgresServer]:
    pg = await PostgresServer.launch(tmp_path_factory.mktemp("postgres"))
    yield pg
    await pg.stop()


@pytest.fixture(scope="session")
async def kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KafkaBroker]:
    broker = await KafkaBroker.launch(tmp_path_factory.mktemp("kafka"), topic=EVENTS_TOPIC)
    yield broker
    await broker.stop()


def make_settings(
    *, home: object, temporal: Client, postgres: PostgresServer, kafka: KafkaBroker
) -> Settings:
    return load_settings(
        use_stack_env=False,
        home=home,
        temporal_address=temporal.service_client.config.target_host,
        database_url=postgres.url,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_idempotence=False,
        kafka_events_topic=EVENTS_TOPIC,
        sse_poll_interval_s=0.05,
        temporal_ui_url="http://127.0.0.1:8233",
        secrets_key=SECRETS_KEY,
        jwt_secret=new_key(),
        batch_segment_s=0.5,
        batch_heartbeat_timeout_s=3,
        # The session's tests start hundreds of runs in the default team.
        quota_concurrent_runs=None,
        quota_runs_per_day=None,
        # The session's targets are loopback servers; its own services stay refused.
        target_mode="dev",
    )


@pytest.fixture(scope="session")
def settings(
    tmp_path_factory: pytest.TempPathFactory,
    client: Client,
    postgres: PostgresServer,
    kafka: KafkaBroker,
) -> Settings:
    return make_settings(
        home=tmp_path_factory.mktemp("home"), temporal=client, postgres=postgres, kafka=kafka
    )


@pytest.fixture(scope="session")
async def store(settings: Settings) -> AsyncIterator[RunStore]:
    engine = create_engine(settings.effective_database_url)
    yield RunStore(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def publisher(settings: Settings) -> AsyncIterator[EventPublisher]:
    pub = EventPublisher(settings.effective_kafka_bootstrap_servers, topic=EVENTS_TOPIC, idempotence=False)
    yield pub
    await pub.stop()


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[TargetClient]:
    """The worker's pooled client for targets, spec URLs and the LLM endpoint."""
    client = target_client()
    yield client
    await client.aclose()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def worker(
    client: Client,
    store: RunStore,
    publisher: EventPublisher,
    settings: Settings,
    http: TargetClient,
    task_queue: str,
) -> AsyncIterator[Worker]:
    """A worker with Crucible's real activities and the probe workflow, on its own queue."""
    w = build_worker(
        client,
        WorkerDeps(store=store, publisher=publisher, settings=settings, http=http),
        task_queue=task_queue,
        workflows=[ProbeWorkflow],
        shutdown_grace=timedelta(seconds=1),
    )
    async with w:
        yield w


@pytest.fixture(scope="session")
async def crucible_worker(
    client: Client, store: RunStore, publisher: EventPublisher, settings: Settings, http: TargetClient
) -> AsyncIterator[Worker]:
    """Workers on the task queues the API starts runs on, with every Crucible workflow and activity."""
    deps = WorkerDeps(store=store, publisher=publisher, settings=settings, http=http)
    w = build_worker(client, deps, task_queue=settings.task_queue, shutdown_grace=timedelta(seconds=1))
    batch = build_batch_worker(
        client, deps, task_queue=settings.effective_batch_task_queue, shutdown_grace=timedelta(seconds=1)
    )
    async with w, batch:
        yield w


@pytest.fixture(scope="session")
async def api_server(settings: Settings) -> AsyncIterator[ApiServer]:
    server = ApiServer(create_app(settings))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def auth_headers(store: RunStore, settings: Settings) -> dict[str, str]:
    """Credentials of the default team's admin: the API token `crucible dev` gives its user.

    Every API server of the session shares the database, so these work on each of them.
    """
    account = await bootstrap_dev(store.engine, settings.home_dir)
    return {"Authorization": f"Bearer {account.token}"}


@pytest.fixture(scope="session")
async def reviewer_headers(store: RunStore, auth_headers: dict[str, str]) -> dict[str, str]:
    """Credentials of a second admin of the default team: who approves what the first submits."""
    accounts = AccountStore(store.engine)
    now = datetime.now(UTC)
    user = await accounts.user_by_email(REVIEWER) or await accounts.create_user(
        REVIEWER, password_hash=hash_password(new_key()), now=now
    )
    await accounts.set_membership(user.user_id, DEFAULT_TEAM, Role.admin, now=now)
    _, token = await accounts.create_api_token(
        user.user_id, name="reviewer", scopes=list(ALL_SCOPES), team_id=None, expires_at=None, now=now
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(api_server: ApiServer, auth_headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session's API, signed in as the default team's admin."""
    async with httpx.AsyncClient(base_url=api_server.url, headers=auth_headers, timeout=30) as http:
        yield http


def pytest_collection_finish(session: pytest.Session) -> None:
    # The Schemathesis run takes minutes: it starts now and goes on beside the other tests.
    if any(item.name == schemathesis_run.TEST_NAME for item in session.items):
        folder = session.config._tmp_path_factory.mktemp("schemathesis")  # type: ignore[attr-defined]
        session.config.stash[schemathesis_run.RUN] = schemathesis_run.BackgroundRun(folder)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if schemathesis_run.RUN in session.config.stash:
        session.config.stash[schemathesis_run.RUN].stop()
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # Leave without interpreter teardown, where the Temporal SDK's threads can abort the
    # process after every test passed (see crucible.core.exits). The status is pytest's own.
    if _EXIT_STATUS in config.stash:
        exit_without_teardown(config.stash[_EXIT_STATUS])


#: The job name the dev stack's Prometheus scrapes a worker's steady probes under.
PROBES_JOB = "crucible-probes"


@pytest.fixture(scope="session")
async def prometheus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrometheusServer]:
    """A real Prometheus (Debian's package) on a free port: 1 s scrapes and rule evaluations.

    It scrapes the steady probes' metrics of this process (see `probe_metrics_port`) from the
    start, since a target added later takes Prometheus up to 5 s to pick up.
    """
    if prometheus_binary() is None:
        pytest.fail(f"the prometheus binary is missing; {PROMETHEUS_INSTALL_HINT}", pytrace=False)
    port = serve_probe_metrics(0)
    probes = f"127.0.0.1:{port}"
    try:
        server = await PrometheusServer.launch(
            tmp_path_factory.mktemp("prometheus"), jobs=[ScrapeJob(PROBES_JOB, [probes])]
        )
        yield server
        await server.stop()
    finally:
        stop_probe_metrics(port)


@pytest.fixture(scope="session")
def probe_metrics_port(prometheus: PrometheusServer) -> int:
    """Where this process serves the steady probes' metrics, scraped by `prometheus` as `crucible-probes`."""
    [job] = [job for job in prometheus.jobs if job.name == PROBES_JOB]
    return int(job.targets[0].rsplit(":", 1)[1])

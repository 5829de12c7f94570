"""The worker: registers every workflow and activity and polls Crucible's task queue.

Clients (database engine, Kafka producer, the pooled HTTP client) are built once here and
injected into the activity classes. Requests to URLs that runs name go through a guarded view
of the HTTP client, and every activity runs under its run's organisation's target policy
(:mod:`crucible.core.targets.runs`).

On SIGTERM or SIGINT the worker stops polling and gives in-flight activities
``CRUCIBLE_WORKER_SHUTDOWN_GRACE_S`` seconds to finish before cancelling them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import Interceptor, Worker

from crucible.activities.ai import AiActivities
from crucible.activities.batch import BatchActivities
from crucible.activities.chaos import ChaosActivities
from crucible.activities.chaos_actions import ChaosActionActivities
from crucible.activities.chaos_kubernetes import ChaosKubernetesActivities
from crucible.activities.chaos_process import ChaosProcessActivities
from crucible.activities.chaos_proxy import ChaosProxyActivities
from crucible.activities.db import QaDbActivities
from crucible.activities.events import EventActivities
from crucible.activities.http import QaHttpActivities
from crucible.activities.kafka_watch import KafkaWatchActivities
from crucible.activities.pipelines import PipelineActivities
from crucible.activities.quotas import QuotaActivities
from crucible.activities.retention import RetentionActivities
from crucible.activities.saga import SagaActivities
from crucible.activities.saga_test import SagaTestActivities
from crucible.activities.steady_probes import SteadyProbeActivities
from crucible.core.chaos.calls import CommandAllowlist
from crucible.core.chaos.metrics import serve_probe_metrics
from crucible.core.chaos.store import ChaosStore
from crucible.core.config import Settings, load_settings
from crucible.core.db import create_engine
from crucible.core.exits import exit_without_teardown
from crucible.core.http import target_client
from crucible.core.kafka import EventPublisher
from crucible.core.logs import configure_logging
from crucible.core.pipelines.store import PipelineStore
from crucible.core.qa.store import QaStore
from crucible.core.quotas import QuotaStore
from crucible.core.reconcile import RunReconciler
from crucible.core.saga_tests.processes import markers_of
from crucible.core.sagas.publisher import MessagePublisher
from crucible.core.schedules import ensure_retention_schedule
from crucible.core.secrets import SecretStore, secret_box
from crucible.core.store import RunStore
from crucible.core.targets import CachingResolver, TargetClient
from crucible.core.targets.orgs import OrgTargetPolicies
from crucible.core.targets.runs import TargetPolicyInterceptor
from crucible.core.temporal import connect, ensure_search_attributes
from crucible.workflows.admission import ScheduledAdmission
from crucible.workflows.batch_job import BatchJobWorkflow
from crucible.workflows.chaos_experiment import ChaosExperimentWorkflow
from crucible.workflows.pipeline import PipelineRunWorkflow, PipelineStepWorkflow
from crucible.workflows.qa_package import QaPackageRunWorkflow
from crucible.workflows.retention import RetentionWorkflow
from crucible.workflows.saga import SagaWorkflow
from crucible.workflows.saga_test import SagaTestWorkflow

log = logging.getLogger("crucible.worker")

#: The first sweep for ended runs looks this far back; later ones overlap a little.
SWEEP_FIRST_LOOKBACK = timedelta(days=1)
SWEEP_OVERLAP = timedelta(minutes=1)

#: Every workflow Crucible runs. Each kind of run adds its class here.
WORKFLOWS: list[type] = [
    QaPackageRunWorkflow,
    BatchJobWorkflow,
    PipelineRunWorkflow,
    PipelineStepWorkflow,
    RetentionWorkflow,
    SagaWorkflow,
    SagaTestWorkflow,
    ChaosExperimentWorkflow,
]


@dataclass
class WorkerDeps:
    """The long-lived clients that activities use, one of each per worker process.

    Without ``settings`` and ``http`` only the event activities are registered (tests of
    the event log need nothing else).
    """

    store: RunStore
    publisher: EventPublisher
    settings: Settings | None = None
    #: The pooled client (:func:`~crucible.core.http.target_client`), unguarded: for Crucible's
    #: own services and the ones the operator configured. URLs that runs name go through
    #: :attr:`targets`, a guarded view of it.
    http: TargetClient | None = None
    #: Publishes sagas' Kafka messages; unset: one like ``publisher``, started on first use.
    messages: MessagePublisher | None = None

    @cached_property
    def targets(self) -> TargetClient:
        """``http``'s connections, each request judged by the target policy in force: the run's
        organisation's, which :func:`policy_interceptors` puts around every activity. It has no
        policy of its own, so a request made outside an activity is refused."""
        if self.settings is None or self.http is None:
            raise ValueError("a guarded client needs settings and an HTTP client")
        resolver = CachingResolver(ttl_s=self.settings.target_dns_cache_s)
        return target_client(guarded=True, resolver=resolver, pool=self.http)


#: Activities that make no target requests and run without a target policy: every run writes
#: its event log, and every scheduled run is admitted, so these skip the look-up of the
#: run's organisation.
POLICY_EXEMPT = ("record_events", "prune_runs", "admit_scheduled_run")


def policy_interceptors(client: Client, deps: WorkerDeps) -> list[Interceptor]:
    """The interceptor that runs each activity under its run's organisation's target policy."""
    if deps.settings is None:
        return []
    policies = OrgTargetPolicies(deps.store.engine, deps.settings)
    return [TargetPolicyInterceptor(client, policies, exempt=POLICY_EXEMPT)]


def build_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    """Every activity, bound to the worker's clients."""
    events = EventActivities(deps.store, deps.publisher)
    work_dir = deps.settings.effective_batch_work_dir if deps.settings is not None else None
    retention = RetentionActivities(deps.store.engine, batch_work_dir=work_dir)
    activities: list[Callable[..., Any]] = [events.record_events, retention.prune_runs]
    if deps.settings is not None and deps.http is not None:
        settings, targets = deps.settings, deps.targets
        qa = QaStore(deps.store.engine)
        secrets = SecretStore(deps.store.engine, secret_box(settings))
        http = QaHttpActivities(qa, secrets, targets)
        ai = AiActivities(qa, deps.http, settings)  # the operator's LLM endpoint
        pipelines = PipelineActivities(PipelineStore(deps.store.engine), secrets, targets)
        saga = SagaActivities(secrets, targets, deps.messages or MessagePublisher.like(deps.publisher))
        saga_test = SagaTestActivities(secrets, targets, fault_processes=markers_of(settings.fault_processes))
        kafka_watch = KafkaWatchActivities(settings.effective_kafka_bootstrap_servers)
        quotas = QuotaActivities(QuotaStore.configured(deps.store.engine, settings))
        activities += chaos_activities(deps.store, settings, deps.http, targets)
        activities += [
            pipelines.load_pipeline,
            pipelines.post_webhook,
            http.fetch_spec,
            http.execute_operations,
            ai.generate_scenarios,
            QaDbActivities(qa).evaluate_qa,
            saga.perform_saga_action,
            saga.compensate_saga_step,
            saga.verify_saga_step,
            saga_test.send_trigger,
            saga_test.inspect_process,
            saga_test.signal_process,
            saga_test.send_fault_request,
            kafka_watch.mark_topic_ends,
            kafka_watch.collect_correlated_events,
            quotas.admit_scheduled_run,
        ]
    return activities


def chaos_activities(
    store: RunStore, settings: Settings, http: httpx.AsyncClient, targets: httpx.AsyncClient
) -> list[Callable[..., Any]]:
    """What chaos experiments run: SLO measuring, steady probes, and each fault provider.

    Prometheus and the configured chaos proxy are the operator's (``http``); the experiment's
    own URLs go through ``targets``.
    """
    allowlist = CommandAllowlist.parse(settings.chaos_commands)
    chaos = ChaosActivities(
        ChaosStore(store.engine),
        http,
        prometheus_url=settings.prometheus_url,
        allowlist=allowlist,
        targets=targets,
    )
    proxy = ChaosProxyActivities(http, targets=targets, configured_url=settings.chaos_proxy_url)
    process = ChaosProcessActivities(
        markers_of(settings.fault_processes), settings.home_dir / "chaos-processes"
    )
    kubernetes = ChaosKubernetesActivities(settings.kubeconfig)
    actions = ChaosActionActivities(targets, allowlist)
    return [
        chaos.measure_slos,
        chaos.firing_alerts,
        chaos.record_chaos_results,
        SteadyProbeActivities(targets).run_steady_probes,
        proxy.inject_proxy_fault,
        proxy.roll_back_proxy_fault,
        process.inject_process_fault,
        process.roll_back_process_fault,
        kubernetes.delete_pods,
        kubernetes.await_pods_ready,
        actions.run_chaos_action,
    ]


def build_batch_worker(
    client: Client,
    deps: WorkerDeps,
    *,
    task_queue: str,
    shutdown_grace: timedelta = timedelta(seconds=30),
) -> Worker:
    """A worker for the batch task queue: chunk work, apart from the HTTP-bound QA work."""
    settings, http = deps.settings, deps.http
    if settings is None or http is None:
        raise ValueError("a batch worker needs settings and an HTTP client")
    settings.effective_batch_work_dir.mkdir(parents=True, exist_ok=True)
    secrets = SecretStore(deps.store.engine, secret_box(settings))
    batch = BatchActivities(
        settings.effective_batch_work_dir, deps.targets, secrets, paths=settings.batch_paths
    )
    return Worker(
        client,
        task_queue=task_queue,
        activities=[batch.prepare_batch_input, batch.process_batch_chunks, batch.combine_batch_output],
        max_concurrent_activities=settings.batch_concurrency,
        graceful_shutdown_timeout=shutdown_grace,
        interceptors=policy_interceptors(client, deps),
    )


def build_worker(
    client: Client,
    deps: WorkerDeps,
    *,
    task_queue: str,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
    shutdown_grace: timedelta = timedelta(seconds=30),
) -> Worker:
    """A worker with every Crucible workflow and activity, plus any given here."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, *workflows],
        activities=[*build_activities(deps), *activities],
        graceful_shutdown_timeout=shutdown_grace,
        interceptors=[
            *policy_interceptors(client, deps),
            # Admission runs an activity registered only with the settings (build_activities).
            *([ScheduledAdmission()] if deps.settings is not None and deps.http is not None else []),
        ],
    )


def _metrics_port(requested: int) -> int:
    """``requested`` if it is free, else a free port (a second worker on one machine)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", requested))
        except OSError:
            log.warning("metrics port %d is taken; choosing a free one", requested)
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def sweep_ended_runs(reconciler: RunReconciler, interval_s: float, stop: asyncio.Event) -> None:
    """Every ``interval_s``, close the logs of runs Temporal ended without them (0: never)."""
    if interval_s <= 0:
        return
    since = datetime.now(UTC) - SWEEP_FIRST_LOOKBACK
    while not stop.is_set():
        started = datetime.now(UTC)
        try:
            closed = await reconciler.sweep(since=since)
            if closed:
                log.info("closed the logs of %d runs that Temporal ended", closed)
            since = started - SWEEP_OVERLAP  # visibility lags a little behind
        except Exception as exc:
            log.warning("could not look for runs that Temporal ended: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
) -> None:
    """Run a worker until ``stop`` is set (or SIGTERM/SIGINT arrives).

    ``workflows`` and ``activities`` are registered besides Crucible's own.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    port = _metrics_port(settings.worker_metrics_port)
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"127.0.0.1:{port}",
                counters_total_suffix=True,
                durations_as_seconds=True,
            )
        )
    )
    log.info("worker metrics at http://127.0.0.1:%d/metrics", port)
    serve_probe_metrics(settings.probe_metrics_port)
    client = await connect(settings, runtime=runtime, wait_s=60)
    await ensure_search_attributes(client, settings.temporal_namespace)
    try:
        await ensure_retention_schedule(
            client, task_queue=settings.task_queue, days=settings.retention_days, cron=settings.retention_cron
        )
    except RPCError as exc:
        log.warning("could not create or update the retention schedule: %s", exc.message)

    async with AsyncExitStack() as stack:
        engine = create_engine(settings.effective_database_url)
        stack.push_async_callback(engine.dispose)
        publisher = EventPublisher(
            settings.effective_kafka_bootstrap_servers,
            topic=settings.kafka_events_topic,
            idempotence=settings.kafka_idempotence,
        )
        stack.push_async_callback(publisher.stop)
        messages = MessagePublisher.like(publisher)
        stack.push_async_callback(messages.stop)
        http = target_client()
        stack.push_async_callback(http.aclose)
        deps = WorkerDeps(
            store=RunStore(engine), publisher=publisher, settings=settings, http=http, messages=messages
        )
        worker = build_worker(
            client,
            deps,
            task_queue=settings.task_queue,
            workflows=workflows,
            activities=activities,
            shutdown_grace=timedelta(seconds=settings.worker_shutdown_grace_s),
        )
        log.info(
            "worker polling task queues %r and %r on %s (namespace %s)",
            settings.task_queue,
            settings.effective_batch_task_queue,
            settings.effective_temporal_address,
            settings.temporal_namespace,
        )
        batch_worker = build_batch_worker(
            client,
            deps,
            task_queue=settings.effective_batch_task_queue,
            shutdown_grace=timedelta(seconds=settings.worker_shutdown_grace_s),
        )
        reconciler = RunReconciler(deps.store, client, publisher)
        sweeping = asyncio.create_task(sweep_ended_runs(reconciler, settings.reconcile_interval_s, stop))
        async with worker, batch_worker:
            await stop.wait()
            log.info(
                "shutting down: in-flight activities have %.0f s to finish",
                settings.worker_shutdown_grace_s,
            )
        await sweeping
    log.info("worker stopped")


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    asyncio.run(run_worker(settings))
    exit_without_teardown(0)

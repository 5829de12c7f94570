"""Settings: the only place in Crucible that reads the environment.

Every option is an environment variable. Those that name an outside system keep
the names its own tools use (``TEMPORAL_ADDRESS``, ``DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS``); the rest start with ``CRUCIBLE_``.

A process started with ``CRUCIBLE_HOME`` pointing at the state folder of a running
``crucible dev`` also reads ``$CRUCIBLE_HOME/stack.env``, which that stack writes,
so a worker started by hand joins it. Variables set in the environment win over
the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crucible.core.paths import PathPolicy

DEFAULT_HOME = Path(".crucible")
STACK_ENV_FILE = "stack.env"


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Crucible's configuration, read from the environment once per process."""

    model_config = SettingsConfigDict(
        env_prefix="CRUCIBLE_", extra="ignore", populate_by_name=True, frozen=True
    )

    home: Path = Field(DEFAULT_HOME, description="State folder: databases, logs, stack.env.")
    log_level: str = Field("INFO", description="Log level of the worker, API and dev stack.")

    # API
    api_host: str = Field("127.0.0.1", description="Address the API binds to.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port of the API.")
    api_url: str | None = Field(None, description="Where the CLI reaches the API.")
    sse_poll_interval_s: float = Field(0.5, gt=0, description="How often a live stream looks for new events.")

    # Temporal
    temporal_address: str | None = Field(
        None,
        validation_alias=_alias("TEMPORAL_ADDRESS", "CRUCIBLE_TEMPORAL_ADDRESS"),
        description="host:port of an existing Temporal frontend; unset starts the dev server.",
    )
    temporal_namespace: str = Field(
        "default", validation_alias=_alias("TEMPORAL_NAMESPACE", "CRUCIBLE_TEMPORAL_NAMESPACE")
    )
    temporal_port: int = Field(7233, ge=1, le=65535)
    temporal_ui_port: int = Field(8233, ge=1, le=65535)
    temporal_metrics_port: int = Field(7235, ge=1, le=65535)
    temporal_ui_url: str | None = Field(None, description="Base URL of the Temporal Web UI.")
    task_queue: str = Field("crucible", description="Task queue the worker polls.")

    # PostgreSQL
    database_url: SecretStr | None = Field(
        None,
        validation_alias=_alias("DATABASE_URL", "CRUCIBLE_DATABASE_URL"),
        description="SQLAlchemy URL (postgresql+psycopg://…); unset starts the embedded server.",
    )
    postgres_port: int = Field(55432, ge=1, le=65535)

    # Kafka
    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias=_alias("KAFKA_BOOTSTRAP_SERVERS", "CRUCIBLE_KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated brokers; unset starts the embedded broker.",
    )
    kafka_port: int = Field(19092, ge=1, le=65535)
    kafka_events_topic: str = Field("crucible.events")
    kafka_idempotence: bool = Field(True, description="Use Kafka's idempotent producer.")

    # Worker
    worker_metrics_port: int = Field(9464, ge=0, le=65535, description="0 picks a free port.")
    worker_shutdown_grace_s: float = Field(30.0, ge=0, description="Grace for in-flight activities.")
    reconcile_interval_s: float = Field(
        30.0, ge=0, description="How often a worker looks for runs Temporal ended (0: never)."
    )

    # Batch jobs
    batch_task_queue: str | None = Field(
        None, description="Task queue of batch work (CPU-bound); unset: the task queue + `-batch`."
    )
    batch_work_dir: Path | None = Field(
        None,
        description="Folder for chunk outputs, shared by every batch worker; unset: $CRUCIBLE_HOME/batch.",
    )
    batch_roots: str | None = Field(
        None, description="Comma-separated folders batch jobs may read and write; unset: any path."
    )

    @field_validator("batch_roots")
    @classmethod
    def _absolute_roots(cls, value: str | None) -> str | None:
        relative = [
            root.strip()
            for root in (value or "").split(",")
            if root.strip() and not os.path.isabs(root.strip())
        ]
        if relative:
            raise ValueError(f"batch roots must be absolute folders: {relative}")
        return value

    batch_concurrency: int = Field(2, ge=1, le=64, description="Batch activities one worker runs at once.")
    batch_segment_s: float = Field(
        5.0, gt=0, description="How long one activity works through chunks before progress is recorded."
    )
    batch_heartbeat_timeout_s: float = Field(
        10.0, gt=0, description="How soon a batch activity on a dead worker is retried elsewhere."
    )

    # Sagas
    saga_heartbeat_timeout_s: float = Field(
        10.0, gt=0, description="How soon a saga's call on a worker that died is given to another."
    )
    fault_processes: str = Field(
        "examples.shop",
        description="Comma-separated: a saga test's or chaos experiment's process fault may signal "
        "only a process whose command line holds one of these; empty: process faults are refused.",
    )

    # Chaos experiments
    prometheus_url: str | None = Field(
        None,
        description="Prometheus that SLO and alert queries go to; `crucible dev` sets it when it "
        "starts Prometheus.",
    )
    prometheus_port: int = Field(9090, ge=1, le=65535, description="Port of the dev stack's Prometheus.")
    chaos_proxy_url: str | None = Field(
        None, description="Control API of the chaos proxy (`python -m crucible.chaos_proxy`)."
    )
    chaos_proxy_port: int = Field(8474, ge=1, le=65535, description="Control port of the dev chaos proxy.")
    probe_metrics_port: int = Field(
        9465, ge=0, le=65535, description="Where a worker serves its steady probes' metrics (0: a free port)."
    )
    chaos_auto_approve: bool = Field(
        False, description="Approve chaos experiments when they are created (dev use only)."
    )
    chaos_commands: str = Field(
        "",
        description="Comma-separated executables that chaos process actions and probes may run "
        "(absolute paths or names on PATH); empty: none.",
    )
    kubeconfig: Path | None = Field(
        None,
        validation_alias=_alias("KUBECONFIG", "CRUCIBLE_KUBECONFIG"),
        description="kubeconfig for `kubernetes` faults; unset: in-cluster config, then ~/.kube/config.",
    )

    # Target policy (crucible.core.targets): the installation's; an organisation's own lists replace these
    target_mode: str | None = Field(
        None,
        description="What runs may call when nothing is listed: `dev` allows loopback, private and "
        "public addresses, `production` public ones only; unset: `dev` in dev mode, else `production`.",
    )
    target_hosts: str = Field(
        "", description="Comma-separated host names (or addresses) runs may call, whatever they resolve to."
    )
    target_networks: str = Field(
        "",
        description="Comma-separated CIDR ranges runs may call (10.0.0.0/8, fd00::/8). Link-local and "
        "metadata addresses need a range inside theirs (169.254.169.254/32) to be reached.",
    )
    target_ports: str = Field("", description="Comma-separated ports runs may call; empty: any port.")
    target_defaults: bool = Field(
        True, description="Allow the mode's default addresses as well as those listed; false: only those."
    )
    target_dns_cache_s: float = Field(
        10.0, ge=0, description="How long a target host's addresses are reused."
    )

    @field_validator("target_mode")
    @classmethod
    def _target_mode(cls, value: str | None) -> str | None:
        if value is not None and value not in ("dev", "production"):
            raise ValueError("target mode is `dev` or `production`")
        return value

    @field_validator("target_hosts", "target_networks", "target_ports")
    @classmethod
    def _target_lists(cls, value: str, info: Any) -> str:
        from crucible.core.targets.policy import TargetPolicy

        # target_hosts -> hosts=…: the policy's own parser names the first wrong entry.
        lists: dict[str, Any] = {info.field_name.removeprefix("target_"): value.split(",")}
        TargetPolicy.build(**lists)
        return value

    # Retention
    retention_days: int = Field(
        30, ge=0, description="Delete runs closed more than this many days ago (0: never)."
    )
    retention_cron: str = Field("17 3 * * *", description="When the retention schedule prunes (cron, UTC).")

    # Demo target (`crucible dev --demo`)
    demo_port: int = Field(8099, ge=1, le=65535, description="Port of the demo target API.")
    demo_proxy_port: int = Field(
        8199, ge=1, le=65535, description="Where the chaos proxy `demo` forwards to the demo target."
    )
    shop_order_port: int = Field(8101, ge=1, le=65535, description="Port of the demo shop's order service.")
    shop_inventory_port: int = Field(8102, ge=1, le=65535, description="Port of its inventory service.")
    shop_payment_port: int = Field(8103, ge=1, le=65535, description="Port of its payment service.")

    # Auth (see crucible.core.auth.keys for the key ring and rotation)
    dev_mode: bool = Field(
        False,
        description="Dev stack: without CRUCIBLE_JWT_SECRET the API makes its own and keeps it in "
        "$CRUCIBLE_HOME (0600). `crucible dev` sets it; never set it in production.",
    )
    jwt_secret: SecretStr | None = Field(
        None,
        description="HS256 signing secret of access tokens, at least 32 bytes; the API refuses "
        "to start without one unless in dev mode.",
    )
    jwt_key_id: str = Field("j1", min_length=1, description="`kid` of the current signing key.")
    jwt_previous_keys: SecretStr | None = Field(
        None,
        description="Keys rotated out, as kid=secret@until,… (until: ISO 8601, UTC if no offset): "
        "tokens they signed are accepted until then.",
    )
    jwt_issuer: str = Field("crucible", description="`iss` of access tokens, checked on every request.")
    jwt_audience: str = Field("crucible-api", description="`aud` of access tokens, checked too.")
    jwt_leeway_s: float = Field(10.0, ge=0, le=300, description="Clock skew allowed on `exp` and `iat`.")
    access_token_ttl_s: int = Field(900, ge=10, le=86_400, description="Lifetime of an access token.")
    refresh_token_ttl_s: int = Field(
        30 * 86_400, ge=60, description="Lifetime of a refresh token; each refresh issues a new one."
    )
    login_failures_per_email: int = Field(
        5, ge=1, description="Failed logins for one email, within the window, before logins must wait."
    )
    login_failures_per_address: int = Field(
        50, ge=1, description="Failed logins from one client address, within the window, before it must wait."
    )
    login_failure_window_s: float = Field(
        900, gt=0, description="How long a failed login counts against its email and address."
    )

    # Team quotas (a team's own row in team_quotas replaces both)
    quota_concurrent_runs: int | None = Field(
        50, ge=1, description="Runs a team may have going at once; empty for no limit."
    )
    quota_runs_per_day: int | None = Field(
        2_000, ge=1, description="Runs a team may start in 24 hours; empty for no limit."
    )

    @field_validator("quota_concurrent_runs", "quota_runs_per_day", mode="before")
    @classmethod
    def _no_limit(cls, value: object) -> object:
        return (
            None if isinstance(value, str) and value.strip().lower() in ("", "none", "unlimited") else value
        )

    # Secrets
    secrets_key: SecretStr | None = Field(
        None, description="32 bytes, base64: encrypts target headers and credentials at rest."
    )
    secrets_key_id: str = Field("k1", description="Id stored with each secret, to rotate keys.")
    secrets_previous_keys: SecretStr | None = Field(
        None, description="Keys rotated out, as id=key,…: secrets sealed with them still open."
    )

    # LLM scenario generation (an OpenAI-compatible chat-completions endpoint)
    llm_base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1")
    llm_model: str = Field("gpt-4o-mini", description="Model name sent with each request.")
    llm_api_key: SecretStr | None = Field(None, description="Bearer token for the LLM endpoint.")
    llm_timeout_s: float = Field(30.0, gt=0, description="How long one LLM request may take.")
    llm_attempts: int = Field(3, ge=1, le=10, description="Attempts per operation before the fallback.")
    llm_max_input_chars: int = Field(12_000, ge=500, description="Cap on what the LLM sees per operation.")
    llm_token_budget: int = Field(200_000, ge=0, description="Tokens one QA run may spend on the LLM.")

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def stack_env_path(self) -> Path:
        return self.home_dir / STACK_ENV_FILE

    @property
    def effective_batch_task_queue(self) -> str:
        return self.batch_task_queue or f"{self.task_queue}-batch"

    @property
    def batch_paths(self) -> PathPolicy:
        """What batch jobs may read and write: inside ``batch_roots``, never in Crucible's folders."""
        roots = [root.strip() for root in (self.batch_roots or "").split(",")]
        return PathPolicy(
            roots=[os.path.realpath(root) for root in roots if root],
            forbidden=[str(self.home_dir), str(self.effective_batch_work_dir)],
        )

    @property
    def effective_batch_work_dir(self) -> Path:
        return (self.batch_work_dir or self.home_dir / "batch").expanduser().resolve()

    @property
    def effective_api_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host
        return (self.api_url or f"http://{host}:{self.api_port}").rstrip("/")

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def effective_temporal_ui_url(self) -> str:
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.postgres_port}/crucible"

    @property
    def effective_kafka_bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"


def load_settings(*, use_stack_env: bool = True, **overrides: Any) -> Settings:
    """Read the settings from the environment (and, by default, ``stack.env``).

    Args:
        use_stack_env: also read ``$CRUCIBLE_HOME/stack.env`` (variables set in the
            environment still win). ``crucible dev`` itself turns this off, since it
            writes that file.
        overrides: values that win over everything else, for tests and the dev stack.
    """
    env_file: Path | None = None
    if use_stack_env:
        home = Path(os.environ.get("CRUCIBLE_HOME", str(DEFAULT_HOME))).expanduser()
        candidate = home / STACK_ENV_FILE
        env_file = candidate if candidate.is_file() else None
    return Settings(_env_file=env_file, **overrides)


def environment() -> dict[str, str]:
    """A copy of this process's environment, for starting child processes."""
    return dict(os.environ)

"""A small real HTTP server speaking the part of the Kubernetes API a pod-delete fault uses.

It serves what the official Python client sends for ``list_namespaced_pod`` and
``delete_namespaced_pod`` (``/api/v1/namespaces/{ns}/pods``), with bearer-token auth, label
selectors (equality and set-based), Status objects for errors, graceful deletion
(``deletionTimestamp``), and simulated ReplicaSets: a deleted pod's replacement, with a new
name, appears ``replace_after_s`` later, Pending, and turns Running and Ready ``ready_after_s``
after that. A kubeconfig written by `write_kubeconfig` points the client at it.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.support.servers import ApiServer

SERVICE_ACCOUNT = "system:serviceaccount:crucible:chaos"


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    owner: str
    #: Monotonic times: when it shows in lists, and when it is Running and Ready.
    visible_at: float
    ready_at: float
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=lambda: _timestamp())
    deleting_since: str | None = None
    gone_at: float | None = None

    def manifest(self, now: float) -> dict[str, Any]:
        running = now >= self.ready_at
        ready = running and self.deleting_since is None
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "labels": self.labels,
            "creationTimestamp": self.created,
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": self.owner, "uid": self.owner,
                 "controller": True}
            ],
        }  # fmt: skip
        if self.deleting_since is not None:
            metadata["deletionTimestamp"] = self.deleting_since
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": {"containers": [{"name": "app", "image": "crucible/demo:1"}]},
            "status": {
                "phase": "Running" if running else "Pending",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }


class KubeApi:
    """The cluster's state, and the FastAPI app that serves it."""

    def __init__(self, token: str, *, replace_after_s: float = 0.2, ready_after_s: float = 0.2) -> None:
        self.token = token
        self.replace_after_s = replace_after_s
        #: ``float('inf')``: replacements never become Ready (a broken rollout).
        self.ready_after_s = ready_after_s
        self.pods: dict[tuple[str, str], Pod] = {}
        self.forbidden_namespaces: set[str] = set()
        #: Every DELETE, as ``(pod name, status answered)``.
        self.deletes: list[tuple[str, int]] = []
        self._names = random.Random(0)
        self.app = self._build()

    def replica_set(self, namespace: str, name: str, labels: dict[str, str], replicas: int) -> list[str]:
        """``replicas`` Ready pods owned by a ReplicaSet ``name``; their names, sorted."""
        now = time.monotonic()
        created = [self._add(namespace, name, labels, visible_at=now, ready_at=now) for _ in range(replicas)]
        return sorted(created)

    def live(self, namespace: str = "default") -> list[str]:
        """Names of the pods that exist and are not being deleted."""
        self._tidy()
        now = time.monotonic()
        return sorted(
            p.name
            for p in self.pods.values()
            if p.namespace == namespace and p.visible_at <= now and p.deleting_since is None
        )

    def _add(
        self, namespace: str, owner: str, labels: dict[str, str], *, visible_at: float, ready_at: float
    ) -> str:
        suffix = "".join(self._names.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        name = f"{owner}-{suffix}"
        self.pods[(namespace, name)] = Pod(name, namespace, dict(labels), owner, visible_at, ready_at)
        return name

    def _tidy(self) -> None:
        now = time.monotonic()
        for key, pod in list(self.pods.items()):
            if pod.gone_at is not None and pod.gone_at <= now:
                del self.pods[key]

    def _delete(self, namespace: str, name: str, grace_s: int) -> Response:
        self._tidy()
        pod = self.pods.get((namespace, name))
        if pod is None or pod.visible_at > time.monotonic():
            self.deletes.append((name, 404))
            return status(404, "NotFound", f'pods "{name}" not found', name=name)
        self.deletes.append((name, 200))
        answer = pod.manifest(time.monotonic())
        if pod.deleting_since is not None:  # being deleted already: the same answer again
            return JSONResponse(answer)
        now = time.monotonic()
        pod.deleting_since = _timestamp()
        pod.gone_at = now + grace_s
        # The ReplicaSet notices the pod is going and replaces it at once.
        visible = now + self.replace_after_s
        self._add(namespace, pod.owner, pod.labels, visible_at=visible, ready_at=visible + self.ready_after_s)
        if grace_s == 0:
            del self.pods[(namespace, name)]
        return JSONResponse(pod.manifest(now) if grace_s else answer)

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def authenticate(request: Request, call_next: Any) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return status(401, "Unauthorized", "Unauthorized")
            response: Response = await call_next(request)
            return response

        @app.get("/api/v1/namespaces/{namespace}/pods")
        async def list_pods(namespace: str, labelSelector: str = "") -> Response:
            if namespace in self.forbidden_namespaces:
                return forbidden("list", namespace)
            try:
                wanted = parse_selector(labelSelector)
            except ValueError as exc:
                return status(400, "BadRequest", f"unable to parse requirement: {exc}")
            self._tidy()
            now = time.monotonic()
            items = [
                pod.manifest(now)
                for pod in sorted(self.pods.values(), key=lambda p: p.name)
                if pod.namespace == namespace and pod.visible_at <= now and wanted(pod.labels)
            ]
            meta = {"resourceVersion": str(len(self.deletes) + 1)}
            return JSONResponse({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items})

        @app.delete("/api/v1/namespaces/{namespace}/pods/{name}")
        async def delete_pod(namespace: str, name: str, gracePeriodSeconds: int = 30) -> Response:
            if namespace in self.forbidden_namespaces:
                return forbidden("delete", namespace)
            return self._delete(namespace, name, gracePeriodSeconds)

        return app


def status(code: int, reason: str, message: str, *, name: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if name is not None:
        body["details"] = {"name": name, "kind": "pods"}
    return JSONResponse(body, status_code=code)


def forbidden(verb: str, namespace: str) -> JSONResponse:
    return status(
        403,
        "Forbidden",
        f'pods is forbidden: User "{SERVICE_ACCOUNT}" cannot {verb} resource "pods" in API group "" '
        f'in the namespace "{namespace}"',
    )


_TERM = re.compile(r"^\s*(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)|\s+(?P<set>in|notin)\s*"
                   r"\((?P<values>[^)]*)\))?\s*$")  # fmt: skip


def parse_selector(selector: str) -> Any:
    """A label selector as a predicate on a pod's labels; ValueError when it does not parse."""
    terms = [t for t in re.split(r",(?![^(]*\))", selector) if t.strip()]
    checks = []
    for term in terms:
        negated = term.strip().startswith("!")
        found = _TERM.match(term.strip().lstrip("!"))
        if found is None or (negated and (found["op"] or found["set"])):
            raise ValueError(repr(term))
        key, op, value = found["key"], found["op"], found["value"]
        values = {v.strip() for v in (found["values"] or "").split(",") if v.strip()}
        if op in ("=", "=="):
            checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif op == "!=":
            checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif found["set"] == "in":
            checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
        elif found["set"] == "notin":
            checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        else:
            checks.append(lambda labels, k=key, n=negated: (k in labels) != n)
    return lambda labels: all(check(labels) for check in checks)


def write_kubeconfig(path: Path, server: str, token: str) -> Path:
    """A kubeconfig with one context: ``server`` over plain HTTP, with a bearer token."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "chaos", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "chaos"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


@contextlib.asynccontextmanager
async def kube_api_server(api: KubeApi) -> AsyncIterator[str]:
    """Serve ``api`` on a free loopback port; yields its URL."""
    server = ApiServer(api.app)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""Pod-delete faults through the official Kubernetes client, against a local API server."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crucible.activities.chaos_kubernetes import (
    KUBERNETES_ACCESS_DENIED,
    KUBERNETES_UNAVAILABLE,
    POD_DELETE_REFUSED,
    PODS_NOT_RECOVERED,
    ChaosKubernetesActivities,
    PodDeleteInput,
    PodDeleteParams,
    PodDeleteResult,
    PodsReadyInput,
    PodsReadyResult,
    pod_params_from_dict,
)
from crucible.core.errors import InvalidRequestError
from crucible.stack.services import free_port
from tests.support.kube_api import KubeApi, kube_api_server, parse_selector, write_kubeconfig

pytestmark = pytest.mark.timeout(30)

TOKEN = "chaos-token"
WEB = {"app": "web", "tier": "front"}


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[KubeApi, str]]:
    api = KubeApi(TOKEN, replace_after_s=0.2, ready_after_s=0.3)
    api.replica_set("default", "web", WEB, 3)
    api.replica_set("default", "db", {"app": "db"}, 1)
    async with kube_api_server(api) as url:
        yield api, url


def activities(tmp_path: Path, url: str, token: str = TOKEN) -> ChaosKubernetesActivities:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, token)
    return ChaosKubernetesActivities(kubeconfig, poll_interval_s=0.05)


def environment(*, attempt: int = 1, details: list[Any] | None = None) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt, heartbeat_details=details or [])
    return env


async def failure(method: Callable[..., Any], arg: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await environment().run(method, arg)
    return caught.value


async def test_a_deleted_pod_is_replaced_and_the_rollback_waits_for_it(
    tmp_path: Path, cluster: tuple[KubeApi, str]
) -> None:
    api, url = cluster
    before = api.live()
    chaos = activities(tmp_path, url)
    params = pod_params_from_dict({"label_selector": "app=web,tier in (front, back)", "count": 2})
    deleted: PodDeleteResult = await environment().run(chaos.delete_pods, PodDeleteInput("chaos-1", params))
    web = [name for name in before if name.startswith("web-")]
    assert deleted == PodDeleteResult(web[:2], 3)
    assert api.deletes == [(name, 200) for name in web[:2]]
    assert [name for name in api.live() if name.startswith("web-")] == web[2:], "not replaced yet"

    started = time.monotonic()
    ready: PodsReadyResult = await environment().run(
        chaos.await_pods_ready, PodsReadyInput("chaos-1", params, deleted.replicas_before)
    )
    assert ready.ready == 3 and time.monotonic() - started >= 0.4 and ready.waited_s >= 0.4
    assert len([name for name in api.live() if name.startswith("web-")]) == 3
    assert not set(web[:2]) & set(api.live())


async def test_a_retried_deletion_deletes_the_same_pods(tmp_path: Path, cluster: tuple[KubeApi, str]) -> None:
    api, url = cluster
    chaos = activities(tmp_path, url)
    request = PodDeleteInput("chaos-2", PodDeleteParams("app=web"))
    first = environment()
    beats: list[Any] = []
    first.on_heartbeat = lambda *details: beats.extend(details)
    deleted = await first.run(chaos.delete_pods, request)
    assert beats == [{"deleted": deleted.deleted, "replicas_before": 3}]

    # The worker died before reporting: the retry reads the heartbeat, and the pod is gone (404).
    again = await environment(attempt=2, details=beats).run(chaos.delete_pods, request)
    assert again == deleted
    assert api.deletes == [(deleted.deleted[0], 200), (deleted.deleted[0], 404)]


async def test_a_retry_without_a_heartbeat_takes_the_pod_being_deleted(
    tmp_path: Path, cluster: tuple[KubeApi, str]
) -> None:
    api, url = cluster
    chaos = activities(tmp_path, url)
    request = PodDeleteInput("chaos-3", PodDeleteParams("app=web", grace_period_s=5))
    deleted = await environment().run(chaos.delete_pods, request)
    again = await environment(attempt=2).run(chaos.delete_pods, request)
    assert again == deleted and {name for name, _ in api.deletes} == set(deleted.deleted)


async def test_pods_that_never_get_ready_fail_the_rollback(
    tmp_path: Path, cluster: tuple[KubeApi, str]
) -> None:
    api, url = cluster
    api.ready_after_s = float("inf")
    chaos = activities(tmp_path, url)
    params = PodDeleteParams("app=web", ready_timeout_s=0.5)
    deleted = await environment().run(chaos.delete_pods, PodDeleteInput("chaos-4", params))
    failed = await failure(chaos.await_pods_ready, PodsReadyInput("chaos-4", params, deleted.replicas_before))
    assert failed.type == PODS_NOT_RECOVERED and failed.non_retryable
    assert "2 of 3 pods matching 'app=web' in namespace 'default' are Ready after 0.5s" in str(failed)

    # A retry on another worker keeps the first attempt's start: the timeout is not restarted.
    since = time.time() - 10
    with pytest.raises(ApplicationError, match=r"Ready after 0\.5s"):
        await environment(attempt=2, details=[{"since": since}]).run(
            chaos.await_pods_ready, PodsReadyInput("chaos-4", params, 3)
        )


async def test_without_the_deletion_result_every_matching_pod_must_be_ready(
    tmp_path: Path, cluster: tuple[KubeApi, str]
) -> None:
    _, url = cluster
    chaos = activities(tmp_path, url)
    ready = await environment().run(
        chaos.await_pods_ready, PodsReadyInput("chaos-5", PodDeleteParams("app=db"), None)
    )
    assert ready.ready == 1


async def test_access_refused_is_not_retried(tmp_path: Path, cluster: tuple[KubeApi, str]) -> None:
    api, url = cluster
    request = PodDeleteInput("chaos-6", PodDeleteParams("app=web"))
    bad_token = await failure(activities(tmp_path, url, "wrong").delete_pods, request)
    assert bad_token.type == KUBERNETES_ACCESS_DENIED and bad_token.non_retryable
    assert "answered 401" in str(bad_token) and "Unauthorized" in str(bad_token)

    api.forbidden_namespaces.add("payments")
    other = PodDeleteInput("chaos-6", PodDeleteParams("app=web", namespace="payments"))
    forbidden = await failure(activities(tmp_path, url).delete_pods, other)
    assert forbidden.type == KUBERNETES_ACCESS_DENIED and forbidden.non_retryable
    assert 'cannot list resource "pods" in API group "" in the namespace "payments"' in str(forbidden)
    assert api.deletes == []


async def test_an_unreachable_api_server_is_retried(tmp_path: Path) -> None:
    chaos = activities(tmp_path, f"http://127.0.0.1:{free_port()}")
    failed = await failure(chaos.delete_pods, PodDeleteInput("chaos-7", PodDeleteParams("app=web")))
    assert failed.type == KUBERNETES_UNAVAILABLE and not failed.non_retryable


async def test_too_few_running_pods_are_refused(tmp_path: Path, cluster: tuple[KubeApi, str]) -> None:
    api, url = cluster
    request = PodDeleteInput("chaos-8", PodDeleteParams("app=db", count=2))
    refused = await failure(activities(tmp_path, url).delete_pods, request)
    assert refused.type == POD_DELETE_REFUSED and refused.non_retryable
    assert "1 Running pods match 'app=db'" in str(refused) and api.deletes == []


def test_params_from_a_dict() -> None:
    assert pod_params_from_dict({"label_selector": " app=web ", "count": 2}) == PodDeleteParams(
        "app=web", count=2
    )
    # JSON has one kind of number: a whole 2.0 is the integer 2.
    assert pod_params_from_dict({"label_selector": "app=web", "count": 2.0}).count == 2
    with pytest.raises(InvalidRequestError) as caught:
        pod_params_from_dict(
            {"namespace": "", "count": 0, "grace_period_s": 1.5, "ready_timeout_s": True, "x": 1}
        )
    assert {(e.loc, e.type) for e in caught.value.errors} == {
        (("body", "fault", "params", "x"), "extra_forbidden"),
        (("body", "fault", "params", "label_selector"), "missing"),
        (("body", "fault", "params", "namespace"), "missing"),
        (("body", "fault", "params", "count"), "value_error"),
        (("body", "fault", "params", "grace_period_s"), "type_error"),
        (("body", "fault", "params", "ready_timeout_s"), "type_error"),
    }


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("app=web", True),
        ("app==web,tier!=back", True),
        ("app in (web, db),!canary", True),
        ("tier notin (front)", False),
        ("canary", False),
    ],
)
def test_the_servers_label_selectors(selector: str, matches: bool) -> None:
    assert parse_selector(selector)(WEB) is matches

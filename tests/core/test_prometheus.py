"""The PromQL client against a real Prometheus scraping a real exporter."""

from __future__ import annotations

import itertools
import math
import time

import httpx
import pytest

from crucible.core.errors import DependencyUnavailableError
from crucible.core.prometheus import (
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailableError,
    PromSample,
)
from crucible.stack.services import free_port
from tests.support.prometheus import TEST_JOB, PrometheusServer

pytestmark = pytest.mark.timeout(60)


async def test_instant_vector_values_and_labels(prometheus: PrometheusServer) -> None:
    await prometheus.set_value("latency", 0.25)
    [sample] = await prometheus.client.instant('crucible_test_value{name="latency"}')
    assert sample.value == 0.25
    assert sample.labels == {
        "__name__": "crucible_test_value",
        "name": "latency",
        "job": TEST_JOB,
        "instance": f"127.0.0.1:{prometheus.exporter.port}",
    }
    assert abs(sample.at - time.time()) < 5

    [doubled] = await prometheus.client.instant('2 * crucible_test_value{name="latency"}')
    assert doubled.value == 0.5 and "__name__" not in doubled.labels


async def test_scalars_nan_and_infinity(prometheus: PrometheusServer) -> None:
    assert [s.value for s in await prometheus.client.instant("scalar(vector(3))")] == [3.0]
    [scalar] = await prometheus.client.instant("1 / 0")
    assert scalar.labels == {} and scalar.value == math.inf
    assert math.isnan((await prometheus.client.instant("0 / 0"))[0].value)

    await prometheus.set_value("undefined", math.nan)
    [nan] = await prometheus.client.instant('crucible_test_value{name="undefined"}')
    assert math.isnan(nan.value)
    await prometheus.set_value("unbounded", -math.inf)
    [inf] = await prometheus.client.instant('crucible_test_value{name="unbounded"}')
    assert inf.value == -math.inf


async def test_no_data_is_an_empty_list(prometheus: PrometheusServer) -> None:
    assert await prometheus.client.instant('crucible_test_value{name="never-set"}') == []
    assert await prometheus.client.instant('crucible_test_value{name="latency"}', at=1.0) == []


async def test_a_query_at_a_past_moment(prometheus: PrometheusServer) -> None:
    await prometheus.set_value("moving", 1)
    before = time.time()
    await prometheus.set_value("moving", 2)
    [now] = await prometheus.client.instant('crucible_test_value{name="moving"}')
    [then] = await prometheus.client.instant('crucible_test_value{name="moving"}', at=before)
    assert (then.value, now.value) == (1.0, 2.0)
    assert then.at == pytest.approx(before, abs=0.001)


async def test_range_query(prometheus: PrometheusServer) -> None:
    await prometheus.set_value("ranged", 7)
    end = time.time()
    [series] = await prometheus.client.range('crucible_test_value{name="ranged"}', end - 2, end, 0.5)
    assert series.labels["name"] == "ranged"
    assert series.points[-1] == (pytest.approx(end, abs=0.001), 7.0)
    assert all(b - a == pytest.approx(0.5) for (a, _), (b, _) in itertools.pairwise(series.points))


async def test_bad_promql_names_the_problem(prometheus: PrometheusServer) -> None:
    with pytest.raises(PrometheusQueryError) as parse:
        await prometheus.client.instant("sum(rate(crucible_test_value[1m])")
    assert "unclosed left parenthesis" in parse.value.message
    assert parse.value.error_type == "bad_data"
    assert "sum(rate(" in str(parse.value)

    with pytest.raises(PrometheusQueryError) as typed:
        await prometheus.client.validate("rate(crucible_test_value)")
    assert "range vector" in typed.value.message

    with pytest.raises(PrometheusQueryError) as matrix:
        await prometheus.client.instant("crucible_test_value[1m]")
    assert "matrix" in matrix.value.message


async def test_validate_accepts_good_queries_without_data(prometheus: PrometheusServer) -> None:
    for query in (
        "vector(1)",
        'sum(rate(crucible_probe_requests_total{experiment="x",outcome="error"}[30s]))',
        "histogram_quantile(0.99, sum by (le) (rate(crucible_probe_request_duration_seconds_bucket[1m])))",
        'ALERTS{alertstate="firing"}',
    ):
        await prometheus.client.validate(query)


async def test_an_alert_fires_and_resolves(prometheus: PrometheusServer) -> None:
    firing = 'ALERTS{alertname="CrucibleTestAlarm",alertstate="firing"}'
    assert await prometheus.query(firing) == []
    async with prometheus.alarm():
        [alert] = await prometheus.query(firing)
        assert alert.labels["severity"] == "test"
    assert await prometheus.query(firing) == []


async def test_an_unreachable_prometheus_is_unavailable() -> None:
    async with httpx.AsyncClient() as http:
        client = PrometheusClient(http, f"http://127.0.0.1:{free_port()}")
        with pytest.raises(PrometheusUnavailableError) as refused:
            await client.instant("up")
        assert isinstance(refused.value, DependencyUnavailableError)
        assert "ConnectError" in str(refused.value)
        assert not await client.ready()


async def test_something_else_than_prometheus_is_unavailable(prometheus: PrometheusServer) -> None:
    async with httpx.AsyncClient() as http:
        wrong = PrometheusClient(http, f"{prometheus.url}/not-here")
        with pytest.raises(PrometheusUnavailableError, match="without Prometheus' JSON"):
            await wrong.instant("up")
        assert await PrometheusClient(http, prometheus.url).ready()


def test_samples_are_plain_values() -> None:
    assert PromSample({"a": "b"}, 1.0) == PromSample({"a": "b"}, 1.0, 0.0)

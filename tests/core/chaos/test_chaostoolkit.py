"""Importing Chaos Toolkit experiments: documents we run (the parts we cannot: *_unsupported.py)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from temporalio.converter import DataConverter

from crucible.core.chaos.chaostoolkit import from_chaostoolkit
from crucible.core.chaos.model import (
    ACTIONS,
    HTTP_SLO,
    PROCESS_SLO,
    ChaosAction,
    ExperimentSpec,
    HttpCall,
    PreflightChecks,
    ProcessCall,
    Slo,
    SteadyProbe,
)
from tests.support.chaostoolkit import EXAMPLE, URL, E, action, errors_of, experiment, probe

pytestmark = pytest.mark.timeout(10)

# Documents we run -----------------------------------------------------------------------


def test_the_example_file_imports() -> None:
    spec = from_chaostoolkit(json.loads(EXAMPLE.read_text()))
    assert (spec.name, spec.target, spec.duration_s, spec.source) == (
        "The demo shop keeps answering while an operator step runs",
        "127.0.0.1:8099",
        10.0,
        "chaostoolkit",
    )
    assert spec.description.startswith("Import with POST")
    assert spec.slos == [
        Slo("shop-is-healthy", HTTP_SLO, http=HttpCall(f"{URL}/health", timeout_s=3, expected_status=[200])),
        Slo(
            "products-are-listed",
            HTTP_SLO,
            http=HttpCall(f"{URL}/products?limit=5", timeout_s=3, expected_status=[200]),
        ),
    ]
    assert spec.fault.provider == ACTIONS and spec.fault.params == {}
    announce, check = spec.fault.method
    assert announce == ChaosAction(
        "announce-the-fault",
        process=ProcessCall(["echo", "chaos", "experiment:", "fault", "window", "opens"], timeout_s=5),
        pause_after_s=10,
    )
    assert check == ChaosAction("shop-is-healthy", http=spec.slos[0].http, is_probe=True)
    assert check.http is not spec.slos[0].http  # a copy
    assert spec.fault.rollbacks == [
        ChaosAction(
            "announce-the-rollback", process=ProcessCall(["echo", "chaos experiment:", "fault window closes"])
        )
    ]


def test_a_spec_survives_temporal_payloads() -> None:
    spec = from_chaostoolkit(json.loads(EXAMPLE.read_text()))
    converter = DataConverter.default.payload_converter
    assert converter.from_payloads(converter.to_payloads([spec]), [ExperimentSpec]) == [spec]


def test_yaml_documents_read_the_same() -> None:
    document = yaml.safe_load(yaml.safe_dump(json.loads(EXAMPLE.read_text())))
    assert from_chaostoolkit(document) == from_chaostoolkit(json.loads(EXAMPLE.read_text()))


@pytest.mark.parametrize(
    ("tolerance", "statuses", "exits"),
    [
        (200, [200], [200]),
        ([200, 204], [200, 204], [200, 204]),
        (True, [], [0]),
        ({"type": "range", "range": [200, 204]}, [200, 201, 202, 203, 204], [200, 201, 202, 203, 204]),
        (
            {"type": "range", "range": [-1000, 1e9], "target": "status"},
            list(range(100, 600)),
            list(range(-64, 256)),
        ),
        ({"type": "range", "range": [99.5, 101.5]}, [100, 101], [100, 101]),
    ],
)
def test_tolerances_become_statuses_and_exit_codes(
    tolerance: Any, statuses: list[int], exits: list[int]
) -> None:
    process_probe = {
        "type": "probe",
        "name": "p",
        "tolerance": tolerance,
        "provider": {"type": "process", "path": "true"},
    }
    hypothesis = {"title": "t", "probes": [probe("h", tolerance, url=f"{URL}/health"), process_probe]}
    spec = from_chaostoolkit(experiment(**{"steady-state-hypothesis": hypothesis}))
    http_slo, process_slo = spec.slos
    assert http_slo.http is not None and http_slo.http.expected_status == statuses
    assert process_slo.kind == PROCESS_SLO and process_slo.process is not None
    assert process_slo.process.expected_exit == exits


def test_false_tolerates_failure() -> None:
    process_probe = {
        "type": "probe",
        "name": "p",
        "tolerance": False,
        "provider": {"type": "process", "path": "x"},
    }
    hypothesis = {"title": "t", "probes": [probe("h", False, url=f"{URL}/gone"), process_probe]}
    http_slo, process_slo = from_chaostoolkit(experiment(**{"steady-state-hypothesis": hypothesis})).slos
    assert http_slo.http is not None and http_slo.http.expected_status == list(range(400, 600))
    assert process_slo.process is not None and 0 not in process_slo.process.expected_exit
    assert {1, 255, -9} <= set(process_slo.process.expected_exit)


def test_process_arguments_as_chaos_toolkit_passes_them() -> None:
    spec = from_chaostoolkit(
        experiment(
            action("s", arguments="-c 'kill -STOP 1' --now", pauses={"before": 1, "after": 2}),
            action("l", arguments=["a", "", None, 3]),
            action("d", arguments={"--force": "", "-n": 3, "--name": "shop"}, timeout=2),
        )
    )
    commands = [a.process.command for a in spec.fault.method if a.process is not None]
    assert commands == [
        ["echo", "-c", "kill -STOP 1", "--now"],
        ["echo", "a", "3"],
        ["echo", "--force", "-n", "3", "--name", "shop"],
    ]
    assert spec.duration_s == 3.0
    assert [a.process.timeout_s for a in spec.fault.method if a.process] == [30.0, 30.0, 30.0]


def test_http_steps_send_what_chaos_toolkit_sends() -> None:
    form = {
        "type": "action",
        "name": "form",
        "provider": {
            "type": "http",
            "url": f"{URL}/x",
            "method": "post",
            "arguments": {"a": 1},
            "expected_status": 202,
        },
    }
    as_json: dict[str, Any] = copy.deepcopy(form)
    as_json["name"] = "json"
    as_json["provider"]["headers"] = {"content-type": "application/json"}
    as_json["provider"]["expected_status"] = [200, 201]
    spec = from_chaostoolkit(experiment(form, as_json, action("wait", pauses={"after": 1})))
    form_call, json_call = (a.http for a in spec.fault.method[:2])
    assert form_call == HttpCall(
        f"{URL}/x", "POST", "a=1", {"Content-Type": "application/x-www-form-urlencoded"}, 30.0, [202]
    )
    assert json_call == HttpCall(
        f"{URL}/x", "POST", {"a": 1}, {"content-type": "application/json"}, 30.0, [200, 201]
    )


def test_configuration_values_are_substituted() -> None:
    document = experiment(
        action("a", arguments=["--pid", "${pid}", "${who}-x"], pauses={"after": "${pause}"}),
        configuration={"pid": 42, "who": "me", "pause": 7, "host": "shop.local:8443"},
    )
    document["steady-state-hypothesis"]["probes"][0]["provider"]["url"] = "https://${host}/health"
    spec = from_chaostoolkit(document)
    assert spec.fault.method[0].process == ProcessCall(["echo", "--pid", "42", "me-x"])
    assert spec.fault.method[0].pause_after_s == 7.0
    assert spec.target == "shop.local:8443"


def test_overrides() -> None:
    extra = Slo("p99", query="histogram_quantile(0.99, x)", threshold=0.3)
    probes = [SteadyProbe("load", HttpCall(f"{URL}/health"))]
    spec = from_chaostoolkit(
        experiment(),
        overrides={
            "target": "shop",
            "duration_s": 60,
            "monitoring_interval_s": 2,
            "recovery_timeout_s": 30,
            "baseline_window_s": 5,
            "preflight": PreflightChecks(alerts_query=""),
            "steady_probes": probes,
            "slos": [extra],
            "created_by": "ada",
        },
    )
    assert (spec.target, spec.duration_s, spec.monitoring_interval_s) == ("shop", 60, 2)
    assert (spec.recovery_timeout_s, spec.baseline_window_s, spec.created_by) == (30, 5, "ada")
    assert spec.preflight.alerts_query == "" and spec.steady_probes == probes
    assert [s.name for s in spec.slos] == ["up", "p99"]


def test_overrides_fill_what_the_file_lacks() -> None:
    document = experiment(action("poke"))
    del document["steady-state-hypothesis"]
    assert errors_of(document) == {
        ("body", "overrides", "target"): "no step calls a URL to take the target from",
        ("body", "overrides", "duration_s"): "the method does not pause: give a duration",
        (*E, "steady-state-hypothesis"): "give the experiment steady-state probes (or SLOs in the overrides) "
        "to judge it by",
    }
    spec = from_chaostoolkit(
        document,
        overrides={"target": "t", "duration_s": 5, "slos": [Slo("q", query="up", op=">", threshold=0)]},
    )
    assert (spec.target, spec.duration_s) == ("t", 5)
    assert errors_of(document, overrides={"target": "t", "duration_s": 5}) == {
        (*E, "steady-state-hypothesis"): "give the experiment steady-state probes (or SLOs in the overrides) "
        "to judge it by"
    }
    assert errors_of(experiment(), overrides={"name": "x", "fault": {}}) == {
        ("body", "overrides", "fault"): "cannot be overridden",
        ("body", "overrides", "name"): "cannot be overridden",
    }

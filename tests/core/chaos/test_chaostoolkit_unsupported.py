"""Importing Chaos Toolkit experiments: every part we cannot run is named, all at once."""

from __future__ import annotations

from typing import Any

import pytest

from crucible.core.chaos.chaostoolkit import from_chaostoolkit
from crucible.core.errors import InvalidRequestError
from tests.support.chaostoolkit import URL, E, action, errors_of, experiment, probe

pytestmark = pytest.mark.timeout(10)


def test_invalid_documents() -> None:
    documents: list[Any] = [[], "chaos", None, 3]
    for document in documents:
        assert errors_of(document) == {E: "a Chaos Toolkit experiment is a JSON or YAML object"}
    assert errors_of({"title": "t"}) == {(*E, "method"): "the method must be a list of at least one step"}
    assert errors_of({"method": [], "title": ""}) == {
        (*E, "title"): "give the experiment a title",
        (*E, "method"): "the method must be a list of at least one step",
    }
    assert errors_of({"title": "t", "method": {"a": 1}}) == {
        (*E, "method"): "the method must be a list of at least one step"
    }
    assert errors_of(experiment(rollbacks={})) == {(*E, "rollbacks"): "the rollbacks must be a list"}


def test_every_unsupported_part_is_named_at_once() -> None:
    document = {
        "title": "everything at once",
        "controls": [{"name": "tracing", "provider": {"type": "python", "module": "chaostracing.control"}}],
        "secrets": {"k8s": {"token": {"type": "env", "key": "K8S_TOKEN"}}},
        "configuration": {"vault_addr": {"type": "env", "key": "VAULT_ADDR"}, "ok": "fine"},
        "runtime": {"rollbacks": {"strategy": "deviated"}},
        "steady-state-hypothesis": {
            "title": "t",
            "controls": [],
            "probes": [
                probe(
                    "body-says-ok",
                    {"type": "jsonpath", "path": "$.status", "expect": "ok"},
                    url=f"{URL}/health",
                ),
                probe("regex", {"type": "regex", "pattern": "ok"}, url=f"{URL}/health"),
                probe(
                    "by-probe", {"type": "probe", "name": "x", "provider": {"type": "python"}}, url=f"{URL}/"
                ),
                probe("text", "OK", url=f"{URL}/health"),
                {
                    "type": "probe",
                    "name": "pods-running",
                    "tolerance": True,
                    "provider": {"type": "python", "module": "chaosk8s.pod.probes", "func": "pods_in_phase"},
                },
                probe("body-range", {"type": "range", "range": [1, 2], "target": "body"}, url=f"{URL}/"),
            ],
        },
        "method": [
            {
                "type": "action",
                "name": "terminate-pods",
                "provider": {"type": "python", "module": "chaosk8s.pod.actions", "func": "terminate_pods"},
            },
            {
                "type": "action",
                "name": "stop-instance",
                "provider": {"module": "chaosaws.ec2.actions", "func": "stop_instance"},
            },
            action("load", background=True),
            action("piped", arguments="-e foo | grep bar > /tmp/out"),
            action("expanded", arguments="$HOME"),
            action("uses-vault", arguments=["${vault_addr}", "${ok}"]),
            action("uses-secret", arguments=["${token}"]),
            action("undefined", arguments="${nowhere}", controls=[]),
            {
                "type": "action",
                "name": "insecure",
                "provider": {"type": "http", "url": f"{URL}/", "verify_tls": False},
            },
            {"ref": "nothing-by-that-name"},
        ],
    }
    with pytest.raises(InvalidRequestError) as raised:
        from_chaostoolkit(document)
    got = {e.loc: (e.type, e.msg) for e in raised.value.errors}
    hypothesis, method = (
        (
            *E,
            "steady-state-hypothesis",
        ),
        (*E, "method"),
    )
    tolerance_msg = "is not supported: Crucible judges a probe by its status or exit code"
    expected = {
        (*E, "controls"): "controls are not supported",
        (*E, "secrets"): "secrets are not imported: an experiment never carries secret values",
        (*E, "runtime", "rollbacks", "strategy"): "rollback strategy 'deviated' is not supported",
        (*hypothesis, "controls"): "controls are not supported",
        (*hypothesis, "probes", 0, "tolerance", "type"): f"tolerance type 'jsonpath' {tolerance_msg}",
        (*hypothesis, "probes", 1, "tolerance", "type"): f"tolerance type 'regex' {tolerance_msg}",
        (*hypothesis, "probes", 2, "tolerance", "type"): f"tolerance type 'probe' {tolerance_msg}",
        (*hypothesis, "probes", 3, "tolerance"): "Crucible judges a probe by its status or exit code",
        (*hypothesis, "probes", 4, "provider", "type"): "provider type 'python' (module chaosk8s.pod.probes) "
        "is not supported; use http or process",
        (*hypothesis, "probes", 5, "tolerance", "target"): "a range applies to the status or exit code only",
        (
            *method,
            0,
            "provider",
            "type",
        ): "provider type 'python' (module chaosk8s.pod.actions) is not supported",
        (
            *method,
            1,
            "provider",
            "type",
        ): "provider type 'python' (module chaosaws.ec2.actions) is not supported",
        (*method, 2, "background"): "background activities are not supported",
        (*method, 3, "provider", "arguments"): "these arguments need a shell",
        (*method, 4, "provider", "arguments"): "these arguments need a shell",
        (*method, 5, "provider", "arguments", 0): "${vault_addr} comes from configuration of type 'env', "
        "which Crucible does not resolve; give its value inline",
        (*method, 6, "provider", "arguments", 0): "${token} is a secret, and secrets are not imported",
        (*method, 7, "controls"): "controls are not supported",
        (*method, 7, "provider", "arguments"): "${nowhere} is not in the experiment's configuration",
        (*method, 8, "provider", "verify_tls"): "TLS verification cannot be turned off",
        (*method, 9, "ref"): "no activity of this experiment is named 'nothing-by-that-name'",
    }
    assert set(got) == set(expected)
    for loc, start in expected.items():
        assert got[loc][1].startswith(start), (loc, got[loc][1])
    types = {loc: t for loc, (t, _) in got.items()}
    assert types[(*method, 9, "ref")] == "value_error"
    assert types[(*method, 0, "provider", "type")] == "unsupported"


def test_the_errors_follow_the_location_given() -> None:
    assert errors_of(experiment(action("x", background=True)), loc=("experiment",)) == {
        ("experiment", "method", 0, "background"): "background activities are not supported"
    }


def test_malformed_activities() -> None:
    document = experiment(
        "not an object",  # type: ignore[arg-type]
        {"type": "action", "provider": {"type": "process", "path": "echo"}},
        {"type": "task", "name": "t", "provider": {"type": "process", "path": "echo"}},
        {"type": "action", "name": "no-provider"},
        action("bad-pauses", pauses=[1]),
        action("negative-pause", pauses={"before": -1, "after": "soon"}),
        action("bad-args", arguments=3),
        action("", path=""),
        {
            "type": "action",
            "name": "h",
            "provider": {
                "type": "http",
                "url": "ftp://x/",
                "method": "GE T",
                "headers": {"a": 1},
                "timeout": [1, "2"],
                "expected_status": "200",
            },
        },
    )
    method = (*E, "method")
    assert errors_of(document) == {
        (
            *method,
            0,
        ): "an activity is an object with a type, a name and a provider",
        (*method, 1, "name"): "give the activity a name",
        (*method, 2, "type"): "activity type 'task' is not one of probe, action",
        (*method, 3, "provider"): "give the activity a provider of type http or process",
        (*method, 4, "pauses"): "must be an object with before and after, in seconds",
        (*method, 5, "pauses", "before"): "must be a number of seconds, 0 or more",
        (*method, 5, "pauses", "after"): "must be a number of seconds, 0 or more",
        (*method, 6, "provider", "arguments"): "must be a string, a list or an object",
        (*method, 7, "name"): "give the activity a name",
        (*method, 7, "provider", "path"): "give the path or name of the executable",
        (*method, 8, "provider", "url"): "give an http:// or https:// URL",
        (*method, 8, "provider", "method"): "must be an HTTP method such as GET or POST",
        (*method, 8, "provider", "headers"): "must be an object of header names to string values",
        (*method, 8, "provider", "timeout"): "must be a number of seconds, or [connect, read] seconds",
        (*method, 8, "provider", "expected_status"): "must be a status code or a list of them",
    }


def test_the_hypothesis_holds_probes_with_tolerances() -> None:
    no_tolerance = probe("loose", url=f"{URL}/")
    del no_tolerance["tolerance"]
    hypothesis = {
        "title": "t",
        "probes": [
            action("act"),
            no_tolerance,
            probe("twice", url=f"{URL}/a"),
            probe("twice", url=f"{URL}/b"),
        ],
    }
    probes = (*E, "steady-state-hypothesis", "probes")
    assert errors_of(experiment(**{"steady-state-hypothesis": hypothesis})) == {
        (*probes, 0, "type"): "the steady-state hypothesis holds probes only",
        (*probes, 1, "tolerance"): "a steady-state probe needs a tolerance",
        (*probes, 3, "name"): "another steady-state probe has this name",
    }
    assert errors_of(experiment(**{"steady-state-hypothesis": []})) == {
        (*E, "steady-state-hypothesis"): "must be an object with a title and probes"
    }


def test_a_broken_activity_is_reported_once_however_often_it_is_referenced() -> None:
    broken = action("broken", background=True)
    document = experiment(broken, {"ref": "broken"}, {"ref": "broken"}, rollbacks=[{"ref": "broken"}])
    assert errors_of(document) == {(*E, "method", 0, "background"): "background activities are not supported"}


def test_refs_may_point_anywhere_in_the_experiment() -> None:
    document = experiment({"ref": "restart"}, rollbacks=[action("restart", pauses={"after": 2})])
    spec = from_chaostoolkit(document)
    assert spec.fault.method == spec.fault.rollbacks
    assert spec.fault.method[0] is not spec.fault.rollbacks[0]
    assert spec.duration_s == 2


def test_a_range_must_hold_a_code() -> None:
    process_probe = {
        "type": "probe",
        "name": "p",
        "tolerance": {"type": "range", "range": [300, 400]},
        "provider": {"type": "process", "path": "true"},
    }
    probes = [
        probe("h", {"type": "range", "range": [0.5, 2.5]}, url=f"{URL}/"),
        process_probe,
        probe("r", {"type": "range", "range": [1]}, url=f"{URL}/"),
    ]
    at = (*E, "steady-state-hypothesis", "probes")
    assert errors_of(experiment(**{"steady-state-hypothesis": {"title": "t", "probes": probes}})) == {
        (*at, 0, "tolerance", "range"): "holds none of the codes from 100 to 599",
        (*at, 1, "tolerance", "range"): "holds none of the codes from -64 to 255",
        (*at, 2, "tolerance", "range"): "must be [lower, upper], two numbers",
    }

"""The built-in generator: deterministic per seed, valid positives, really-invalid negatives."""

from __future__ import annotations

from crucible.core.qa.scenarios import ACCEPT, REJECT, schema_scenarios
from crucible.core.qa.spec import Spec, parse_document
from crucible.core.qa.values import from_pattern
from tests.support.qa import DEMO_SPEC, SPECS


def _spec(path: object = DEMO_SPEC) -> Spec:
    return Spec(parse_document(path.read_bytes()))  # type: ignore[attr-defined]


def test_the_same_seed_makes_the_same_scenarios_and_another_seed_other_values() -> None:
    spec = _spec(SPECS / "openapi-3.0-petstore.yaml")
    op = next(o for o in spec.operations if o.key == "POST /pet")
    first = [s.to_dict() for s in schema_scenarios(spec, op, seed=1)]
    assert first == [s.to_dict() for s in schema_scenarios(spec, op, seed=1)]
    minimal = [s for s in schema_scenarios(spec, op, seed=2) if s.name.endswith("required data only")]
    assert (
        minimal
        and minimal[0].body != next(s for s in first if s["name"].endswith("required data only"))["body"]
    )


def test_positive_bodies_conform_and_negative_bodies_do_not() -> None:
    spec = _spec()
    for op in spec.operations:
        if op.body is None:
            continue
        validator = spec.validator_for(op.body.pointer)
        scenarios = schema_scenarios(spec, op, seed=3)
        for scenario in scenarios:
            if scenario.expect == ACCEPT:
                assert validator.is_valid(scenario.body), (op.key, scenario.name, scenario.body)
            elif scenario.has_body:
                assert not validator.is_valid(scenario.body), (op.key, scenario.name)
        kinds = {s.name.split("'")[0] for s in scenarios if s.expect == REJECT}
        assert "negative: required field " in kinds and "negative: field " in kinds


def test_examples_from_the_spec_are_used_first() -> None:
    spec = _spec()
    op = next(o for o in spec.operations if o.key == "GET /products/{product_id}")
    assert schema_scenarios(spec, op, seed=0)[0].path_params == {"product_id": 1}


def test_patterns_produce_matching_strings() -> None:
    import random
    import re

    rng = random.Random(0)
    for pattern in (r"^[A-Z]{3}-\d{4}$", r"^(foo|bar)_[a-z0-9]+$", r"^\w+@example\.com$"):
        assert re.fullmatch(pattern, from_pattern(pattern, rng)), pattern

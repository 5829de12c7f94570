"""How an experiment's measurements become its results and verdict, and how it is shown.

Per SLO: the baseline value is the mean of the baseline samples; the chaos value is the
worst chaos sample; the recovery value is the last recovery sample, the one at which
every SLO was met again (or the last before the recovery timed out).
Imported by workflow code: standard library only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from crucible.core.chaos.model import (
    BASELINE,
    CHAOS,
    PROMETHEUS_SLO,
    RECOVERY,
    ExperimentSpec,
    Slo,
    SloMeasurement,
    SloResult,
    worst,
)

CONFIRMED, REJECTED = "HypothesisConfirmed", "HypothesisRejected"
#: A manual abort tests no hypothesis: the experiment was stopped before it could.
INCONCLUSIVE = "Inconclusive"


def _values(measurements: list[SloMeasurement], slo: str, phase: str) -> list[float]:
    return [m.value for m in measurements if m.slo == slo and m.phase == phase and m.value is not None]


def _worst(values: list[float], slo: Slo) -> float | None:
    if not values:
        return None
    if slo.kind != PROMETHEUS_SLO:  # a check's value is a status: the last one tells
        return values[-1]
    return worst(values, slo.op)


def results_of(spec: ExperimentSpec, measurements: list[SloMeasurement]) -> list[SloResult]:
    results = []
    for slo in spec.slos:
        baseline = _values(measurements, slo.name, BASELINE)
        chaos = [m for m in measurements if m.slo == slo.name and m.phase == CHAOS]
        recovery = _values(measurements, slo.name, RECOVERY)
        results.append(
            SloResult(
                slo=slo.name,
                target=slo.target(),
                unit=slo.unit,
                baseline=round(sum(baseline) / len(baseline), 6) if baseline else None,
                chaos=_worst([m.value for m in chaos if m.value is not None], slo),
                recovery=recovery[-1] if recovery else None,
                chaos_met=all(m.met for m in chaos),
            )
        )
    return results


def shown_spec(spec: ExperimentSpec) -> dict[str, Any]:
    """The experiment as its ``REQUESTED`` event shows it: everything but header values."""
    shown = dataclasses.asdict(spec)
    shown["fault"] = spec.fault.shown()
    for probe in shown["steady_probes"]:
        probe["http"]["headers"] = sorted(probe["http"]["headers"])
    for slo in shown["slos"]:
        if slo.get("http"):
            slo["http"]["headers"] = sorted(slo["http"]["headers"])
    return shown

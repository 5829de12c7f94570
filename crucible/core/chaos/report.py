"""A chaos experiment's report: JSON, JUnit XML (one case per SLO, the rollback and the recovery)
and one self-contained HTML page with each SLO's values over time as an inline SVG chart."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET

from crucible.core.chaos.model import BASELINE, CHAOS, PREFLIGHT, RECOVERY, SloResult
from crucible.core.chaos.store import StoredMeasurement

PHASE_COLOURS = {PREFLIGHT: "#8a8a8a", BASELINE: "#2b6cb0", CHAOS: "#c53030", RECOVERY: "#2f855a"}
CHART_W, CHART_H, PAD_L, PAD_R, PAD_T, PAD_B = 640, 220, 60, 16, 16, 34


def _measurement(m: StoredMeasurement) -> dict[str, Any]:
    return {
        "slo": m.slo,
        "phase": m.phase,
        "sample": m.sample,
        "at": m.at.isoformat(),
        "value": m.value,
        "met": m.met,
        "note": m.note,
    }


def report_json(
    meta: dict[str, Any], results: Sequence[SloResult], measurements: Sequence[StoredMeasurement]
) -> dict[str, Any]:
    return {
        **meta,
        "results": [r.__dict__ for r in results],
        "measurements": [_measurement(m) for m in measurements],
    }


def report_junit(meta: dict[str, Any], results: Sequence[SloResult]) -> str:
    """One suite for the experiment: a case per SLO (failed if it broke under chaos), the rollback
    and the recovery."""
    summary = meta.get("summary") or {}
    cases: list[tuple[str, str | None]] = [
        (f"slo {r.slo} {r.target}", None if r.chaos_met else f"worst value under chaos: {r.chaos}")
        for r in results
    ]
    fault = summary.get("fault")
    if fault not in (None, "none"):
        cases.append(("fault rolled back", None if fault == "rolled back" else f"the fault is {fault}"))
    if results:
        recovered = summary.get("recovery_time_s")
        cases.append(
            ("recovered", None if recovered is not None else str(summary.get("reason") or "no recovery"))
        )
    failures = sum(1 for _, failure in cases if failure)
    suites = ET.Element("testsuites", name="crucible", tests=str(len(cases)), failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"chaos {meta.get('name') or meta['run_id']}",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        timestamp=str(meta.get("created_at") or ""),
    )
    properties = ET.SubElement(suite, "properties")
    for name in ("run_id", "state", "verdict"):
        ET.SubElement(properties, "property", name=name, value=str(meta.get(name) or ""))
    for name, failure in cases:
        case = ET.SubElement(suite, "testcase", classname="chaos", name=name)
        if failure:
            ET.SubElement(case, "failure", message=failure)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def slo_chart(
    slo: str, threshold: float | None, measurements: Sequence[StoredMeasurement], *, start: datetime
) -> str:
    """An SVG line chart of one SLO's values over time, coloured by phase, with its threshold."""
    points = [m for m in measurements if m.slo == slo]
    values = [m.value for m in points if m.value is not None]
    span_t = max(((m.at - start).total_seconds() for m in points), default=1.0) or 1.0
    lo = min([*values, threshold] if threshold is not None else values, default=0.0)
    hi = max([*values, threshold] if threshold is not None else values, default=1.0)
    lo, hi = min(lo, 0.0), hi if hi > lo else lo + 1.0
    hi += (hi - lo) * 0.08
    plot_w, plot_h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B

    def x(m: StoredMeasurement) -> float:
        return PAD_L + (m.at - start).total_seconds() / span_t * plot_w

    def y(value: float) -> float:
        return PAD_T + (1 - (value - lo) / (hi - lo)) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{html.escape(slo)} over time" '
        f'width="{CHART_W}" height="{CHART_H}" viewBox="0 0 {CHART_W} {CHART_H}">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    for tick in (lo, (lo + hi) / 2, hi):
        parts.append(
            f'<text x="{PAD_L - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">{tick:.3g}</text>'
        )
    parts.append(
        f'<text x="{PAD_L + plot_w}" y="{CHART_H - 8}" font-size="11" text-anchor="end">{span_t:.0f} s</text>'
    )
    if threshold is not None:
        parts.append(
            f'<line class="threshold" x1="{PAD_L}" x2="{PAD_L + plot_w}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" stroke="#d69e2e" stroke-dasharray="6 4"/>'
        )
    drawn = [m for m in points if m.value is not None]
    if len(drawn) > 1:
        path = " ".join(f"{x(m):.1f},{y(m.value):.1f}" for m in drawn if m.value is not None)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#555" stroke-width="1.5"/>')
    for m in points:
        colour = PHASE_COLOURS.get(m.phase, "#555")
        cy = y(m.value) if m.value is not None else PAD_T + plot_h
        title = f"{m.phase} #{m.sample}: {_fmt(m.value)} ({'met' if m.met else 'breached'}) {m.note}"
        shape = "circle" if m.met else "rect"
        if shape == "circle":
            parts.append(f'<circle cx="{x(m):.1f}" cy="{cy:.1f}" r="3.5" fill="{colour}">')
        else:
            parts.append(f'<rect x="{x(m) - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" fill="{colour}">')
        parts.append(f"<title>{html.escape(title.strip())}</title></{shape}>")
    parts.append("</svg>")
    return "".join(parts)


def report_html(
    meta: dict[str, Any],
    thresholds: dict[str, float | None],
    results: Sequence[SloResult],
    measurements: Sequence[StoredMeasurement],
) -> str:
    esc = html.escape
    summary = meta.get("summary") or {}
    start = min((m.at for m in measurements), default=None)
    charts = "".join(
        f"<h3>{esc(name)}</h3>{slo_chart(name, threshold, measurements, start=start)}"
        for name, threshold in thresholds.items()
        if start is not None
    )
    rows = "".join(
        f"<tr><td>{esc(r.slo)}</td><td>{esc(r.target)}</td><td>{_fmt(r.baseline)}</td>"
        f"<td>{_fmt(r.chaos)}</td><td>{_fmt(r.recovery)}</td><td>{'yes' if r.chaos_met else 'no'}</td></tr>"
        for r in results
    )
    legend = " ".join(
        f'<span style="color:{colour}">● {phase}</span>' for phase, colour in PHASE_COLOURS.items()
    )
    facts = [
        ("Run", meta["run_id"]),
        ("Target", meta.get("target")),
        ("State", meta.get("state")),
        ("Verdict", meta.get("verdict") or "—"),
        ("Reason", summary.get("reason") or "—"),
        (
            "Recovery time",
            f"{summary['recovery_time_s']} s" if summary.get("recovery_time_s") is not None else "—",
        ),
        ("Fault", summary.get("fault") or "—"),
        ("Approved by", summary.get("approved_by") or "—"),
    ]
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts)
    ui = meta.get("temporal_ui_url")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chaos experiment {esc(meta.get("name") or "")}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}
td,th{{border:1px solid #ddd;padding:.3rem .6rem;text-align:left}} th{{background:#f4f4f4}}
</style></head><body>
<h1>Chaos experiment: {esc(meta.get("name") or meta["run_id"])}</h1>
<table>{fact_rows}</table>
{f'<p><a href="{esc(ui)}">Open in the Temporal Web UI</a></p>' if ui else ""}
<h2>SLOs: baseline, chaos and recovery</h2>
<table><tr><th>SLO</th><th>Target</th><th>Baseline</th><th>Chaos (worst)</th><th>Recovery</th>
<th>Met under chaos</th></tr>{rows}</table>
<h2>SLO values over time</h2><p>{legend}; squares breached the SLO; the dashed line is its threshold.</p>
{charts or "<p>No measurements yet.</p>"}
</body></html>
"""

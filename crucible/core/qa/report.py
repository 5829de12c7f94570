"""A QA run's report as JSON, JUnit XML (for CI) and one self-contained HTML page."""

from __future__ import annotations

import html
import json
from typing import Any
from xml.etree import ElementTree as ET

FORMATS = ("json", "junit", "html")


def report_json(meta: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
    """The whole report: the run's facts, then its evaluation (per-operation results and coverage)."""
    return {**meta, **evaluation}


def report_junit(meta: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """One test suite for the run, one test case per operation, one failure per failing operation."""
    endpoints = evaluation.get("endpoints") or []
    failures = sum(1 for e in endpoints if e["status"] == "FAILED")
    skipped = sum(1 for e in endpoints if e["status"] == "NOT_RUN")
    suites = ET.Element("testsuites", name="crucible", tests=str(len(endpoints)), failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"QA {meta.get('title') or meta['run_id']}",
        tests=str(len(endpoints)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        timestamp=str(meta.get("created_at") or ""),
    )
    properties = ET.SubElement(suite, "properties")
    for name in ("run_id", "base_url", "spec_version", "verdict", "pass_rate"):
        ET.SubElement(properties, "property", name=name, value=str(evaluation.get(name, meta.get(name, ""))))
    for endpoint in endpoints:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=(endpoint["tags"][0] if endpoint["tags"] else "api"),
            name=endpoint["operation"],
        )
        if endpoint["status"] == "NOT_RUN":
            ET.SubElement(case, "skipped", message="not run (the run was cancelled before it)")
        elif endpoint["status"] == "FAILED":
            failure = ET.SubElement(
                case,
                "failure",
                message=", ".join(endpoint["failed_checks"]),
                type=endpoint["failed_checks"][0] if endpoint["failed_checks"] else "failure",
            )
            failure.text = "\n".join(_failure_line(f) for f in endpoint["failures"])
        if endpoint["coverage"]["seen"]:
            out = ET.SubElement(case, "system-out")
            out.text = (
                f"statuses declared {endpoint['coverage']['declared']}, seen {endpoint['coverage']['seen']}"
            )
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _failure_line(failure: dict[str, Any]) -> str:
    where = f" at {failure['path']}" if failure.get("path") else ""
    scenario = f" [{failure['scenario']}]" if failure.get("scenario") else ""
    expected = (
        f"; expected {json.dumps(failure.get('expected'))}" if failure.get("expected") is not None else ""
    )
    actual = f", got {json.dumps(failure.get('actual'))}" if failure.get("actual") is not None else ""
    return f"{failure['check']}{where}: {failure['message']}{expected}{actual}{scenario}"


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330}
h1{margin:0 0 .25rem}table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{border-bottom:1px solid #e3e6ec;padding:.4rem .5rem;text-align:left;vertical-align:top}
.PASSED{color:#137333;font-weight:600}.FAILED{color:#b3261e;font-weight:600}.NOT_RUN{color:#777}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;color:#fff}
.badge.PASSED{background:#137333}.badge.FAILED{background:#b3261e}
code{background:#f3f4f7;padding:0 .2rem;border-radius:3px}ul{margin:.2rem 0;padding-left:1.1rem}
.meta{color:#555}details summary{cursor:pointer}
"""


def report_html(meta: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """A single page with no outside resources: it can be mailed or archived as is."""
    e = html.escape
    verdict = evaluation.get("verdict") or "NONE"
    rows = "".join(_html_row(endpoint) for endpoint in evaluation.get("endpoints") or [])
    new = "".join(f"<li><code>{e(k)}</code></li>" for k in evaluation.get("new_failures") or [])
    new_section = f"<h2>New failures</h2><ul>{new}</ul>" if new else ""
    facts = " · ".join(
        [
            f"Run <code>{e(meta['run_id'])}</code>",
            e(str(meta.get("title") or "")),
            f"spec {e(str(meta.get('spec_version')))}",
            f"target <code>{e(str(meta.get('base_url')))}</code>",
            f"status {e(str(meta.get('status')))}",
        ]
    )
    pass_rate = float(evaluation.get("pass_rate") or 0)
    minimum = float(evaluation.get("min_pass_rate") or 0)
    totals = (
        f"{evaluation.get('passed', 0)} of {evaluation.get('operations', 0)} operations passed, "
        f"{evaluation.get('scenarios', 0)} scenarios"
    )
    head = "".join(
        f"<th>{h}</th>" for h in ("Operation", "Result", "Scenarios", "Declared statuses", "Seen", "Failures")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Crucible QA report {e(meta["run_id"])}</title>
<style>{_STYLE}</style></head><body>
<h1>QA report <span class="badge {e(verdict)}">{e(verdict)}</span></h1>
<p class="meta">{facts}</p>
<p>Pass rate <b>{pass_rate:.1%}</b> (minimum {minimum:.0%}): {totals}.</p>
{new_section}
<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
</body></html>
"""


def _html_row(endpoint: dict[str, Any]) -> str:
    e = html.escape
    coverage = endpoint["coverage"]
    failures = "".join(f"<li><code>{e(_failure_line(f))}</code></li>" for f in endpoint["failures"][:50])
    details = (
        f"<details><summary>{len(endpoint['failures'])} failures</summary><ul>{failures}</ul></details>"
        if failures
        else ""
    )
    cells = [
        f"<code>{e(endpoint['operation'])}</code>",
        str(endpoint["scenarios"]),
        e(", ".join(coverage["declared"])),
        e(", ".join(map(str, coverage["seen"]))),
        details,
    ]
    status = e(endpoint["status"])
    return (
        f'<tr><td>{cells[0]}</td><td class="{status}">{status}</td>'
        + "".join(f"<td>{c}</td>" for c in cells[1:])
        + "</tr>"
    )

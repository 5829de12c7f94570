"""Import a Chaos Toolkit experiment (https://chaostoolkit.org/reference/api/experiment/).

What maps onto an `ExperimentSpec`:

- the steady-state hypothesis's probes become ``http``/``process`` SLOs; a probe's tolerance
  (an integer, a list of integers, ``true``/``false`` or ``{"type": "range"}``) becomes the
  statuses or exit codes that count as success. ``true`` means the call succeeds (a status
  below 400, exit code 0); ``false`` that it fails (4xx/5xx, a non-zero exit code);
- the method becomes an ``actions`` fault whose steps are the method's actions and probes;
  the rollbacks become its rollbacks. Pauses are slept by the workflow on durable timers;
- ``ref`` steps are copies of the activity they name; ``${name}`` takes a plain
  ``configuration`` value;
- the title is the name, the host of the first HTTP URL the target, and the method's pauses,
  added up, the duration, unless overrides say otherwise.

Process arguments given as a string, which Chaos Toolkit hands to a shell, are split like a
shell would split them; one that needs a shell (pipes, redirections, ``$`` expansions) is
refused, since no shell runs here. Everything else that cannot run here (Python providers,
controls, secrets, background activities, jsonpath/regex/probe tolerances, …) is reported
at once, each part at its location, as one `InvalidRequestError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from crucible.core.chaos.chaostoolkit_providers import Loc, ProviderReader
from crucible.core.chaos.model import (
    ACTIONS,
    HTTP_SLO,
    PROCESS_SLO,
    ChaosAction,
    ExperimentSpec,
    FaultSpec,
    Slo,
)
from crucible.core.errors import InvalidRequestError

#: Spec fields an override may set; ``slos`` adds to the imported ones instead.
OVERRIDABLE = {f.name for f in dataclasses.fields(ExperimentSpec)} - {"name", "fault", "source", "slos"}


def from_chaostoolkit(
    document: Any, *, overrides: Mapping[str, Any] | None = None, loc: Loc = ("body", "experiment")
) -> ExperimentSpec:
    """The experiment ``document`` (parsed JSON or YAML) describes, with ``overrides`` applied.

    Raises `InvalidRequestError` listing every part that is invalid or cannot run here.
    Commands are not checked against the allowlist: that is the settings' business.
    """
    return _Importer(loc).experiment(document, dict(overrides or {}))


@dataclasses.dataclass
class _Step:
    action: ChaosAction
    kind: str  # "probe" or "action"
    has_tolerance: bool


class _Importer(ProviderReader):
    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc
        #: Fully declared activities by name, with where they stand: what ``ref`` steps name.
        self.declared: dict[str, tuple[Any, Loc]] = {}
        #: Activities read so far by where they stand, so a referenced one is read (and faulted) once.
        self.parsed: dict[Loc, _Step | None] = {}

    def experiment(self, doc: Any, overrides: dict[str, Any]) -> ExperimentSpec:
        if not isinstance(doc, Mapping):
            raise InvalidRequestError.one(self.loc, "a Chaos Toolkit experiment is a JSON or YAML object")
        title = doc.get("title")
        if not isinstance(title, str) or not title.strip():
            self.fail((*self.loc, "title"), "give the experiment a title")
        description = doc.get("description", "")
        if not isinstance(description, str):
            self.fail((*self.loc, "description"), "must be a string")
        if "controls" in doc:
            self.unsupported((*self.loc, "controls"), "controls are not supported")
        if "secrets" in doc:
            self.unsupported(
                (*self.loc, "secrets"), "secrets are not imported: an experiment never carries secret values"
            )
        self.read_configuration(
            doc.get("configuration", {}), doc.get("secrets", {}), (*self.loc, "configuration")
        )
        self._runtime(doc.get("runtime"))
        self._declare(doc)
        slos = self._hypothesis(doc.get("steady-state-hypothesis"))
        method = self._steps(doc, "method", required=True)
        rollbacks = self._steps(doc, "rollbacks", required=False)
        spec = self._spec(title, description, slos, method, rollbacks, overrides)
        if self.errors:
            raise InvalidRequestError(self.errors)
        assert spec is not None
        return spec

    def _spec(
        self,
        title: Any,
        description: Any,
        slos: list[Slo],
        method: list[ChaosAction],
        rollbacks: list[ChaosAction],
        overrides: dict[str, Any],
    ) -> ExperimentSpec | None:
        overridden = {k: v for k, v in overrides.items() if k in OVERRIDABLE}
        for key in sorted(set(overrides) - OVERRIDABLE - {"slos"}):
            self.fail((*self.loc[:-1], "overrides", key), "cannot be overridden")
        # What is derived from the steps is only known when every step could be read.
        derived = not self.errors
        target = urlsplit(self.first_url).netloc.rpartition("@")[2]
        if "target" not in overridden and derived and not target:
            self.fail((*self.loc[:-1], "overrides", "target"), "no step calls a URL to take the target from")
        duration = sum(a.pause_before_s + a.pause_after_s for a in method)
        if "duration_s" not in overridden and derived and duration <= 0:
            self.fail(
                (*self.loc[:-1], "overrides", "duration_s"), "the method does not pause: give a duration"
            )
        slos = [*slos, *overrides.get("slos", [])]
        if not slos and derived:
            self.fail(
                (*self.loc, "steady-state-hypothesis"),
                "give the experiment steady-state probes (or SLOs in the overrides) to judge it by",
            )
        if self.errors:
            return None
        fault = FaultSpec(ACTIONS, method=method, rollbacks=rollbacks)
        spec = ExperimentSpec(
            title, target, fault, slos, duration, description=description, source="chaostoolkit"
        )
        return dataclasses.replace(spec, **overridden)

    # Sections ------------------------------------------------------------------------------

    def _runtime(self, runtime: Any) -> None:
        rollbacks = runtime.get("rollbacks", {}) if isinstance(runtime, Mapping) else {}
        strategy = rollbacks.get("strategy", "default") if isinstance(rollbacks, Mapping) else "default"
        if strategy not in ("default", "always"):
            self.unsupported(
                (*self.loc, "runtime", "rollbacks", "strategy"),
                f"rollback strategy {strategy!r} is not supported: Crucible always rolls back",
            )

    # Activities ----------------------------------------------------------------------------

    def _declare(self, doc: Mapping[str, Any]) -> None:
        """Every fully declared activity by name (the first wins), for ``ref`` steps."""
        hypothesis = doc.get("steady-state-hypothesis")
        probes = hypothesis.get("probes") if isinstance(hypothesis, Mapping) else None
        sections: list[tuple[Loc, Any]] = [
            ((*self.loc, "steady-state-hypothesis", "probes"), probes),
            ((*self.loc, "method"), doc.get("method")),
            ((*self.loc, "rollbacks"), doc.get("rollbacks")),
        ]
        for loc, items in sections:
            for i, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, Mapping) and isinstance(item.get("name"), str) and "ref" not in item:
                    self.declared.setdefault(item["name"], (item, (*loc, i)))

    def _hypothesis(self, hypothesis: Any) -> list[Slo]:
        loc = (*self.loc, "steady-state-hypothesis")
        if hypothesis is None:
            return []
        if not isinstance(hypothesis, Mapping):
            self.fail(loc, "must be an object with a title and probes")
            return []
        if "controls" in hypothesis:
            self.unsupported((*loc, "controls"), "controls are not supported")
        probes = hypothesis.get("probes", [])
        if not isinstance(probes, list):
            self.fail((*loc, "probes"), "must be a list of probes")
            return []
        slos: list[Slo] = []
        for i, raw in enumerate(probes):
            step = self._step(raw, (*loc, "probes", i), slo=True)
            if step is None:
                continue
            if step.kind != "probe":
                self.fail((*loc, "probes", i, "type"), "the steady-state hypothesis holds probes only")
            elif not step.has_tolerance:
                self.fail((*loc, "probes", i, "tolerance"), "a steady-state probe needs a tolerance")
            elif step.action.name in {s.name for s in slos}:
                self.fail((*loc, "probes", i, "name"), "another steady-state probe has this name")
            elif step.action.http is not None:
                slos.append(Slo(step.action.name, HTTP_SLO, http=step.action.http))
            else:
                slos.append(Slo(step.action.name, PROCESS_SLO, process=step.action.process))
        return slos

    def _steps(self, doc: Mapping[str, Any], section: str, *, required: bool) -> list[ChaosAction]:
        loc = (*self.loc, section)
        raw = doc.get(section, [])
        if not isinstance(raw, list) or (required and not raw):
            self.fail(loc, f"the {section} must be a list" + (" of at least one step" if required else ""))
            return []
        steps = [self._step(item, (*loc, i), slo=False) for i, item in enumerate(raw)]
        return [s.action for s in steps if s is not None]

    def _step(self, raw: Any, loc: Loc, *, slo: bool) -> _Step | None:
        if isinstance(raw, Mapping) and "ref" in raw:
            return self._ref(raw["ref"], (*loc, "ref"), slo=slo)
        if loc not in self.parsed:
            self.parsed[loc] = self._activity(raw, loc, slo=slo)
        return self.parsed[loc]

    def _ref(self, name: Any, loc: Loc, *, slo: bool) -> _Step | None:
        if not isinstance(name, str) or name not in self.declared:
            self.fail(loc, f"no activity of this experiment is named {name!r}")
            return None
        raw, declared_at = self.declared[name]
        step = self._step(raw, declared_at, slo=slo)
        return None if step is None else dataclasses.replace(step, action=_copy(step.action))

    def _activity(self, raw: Any, loc: Loc, *, slo: bool) -> _Step | None:
        if not isinstance(raw, Mapping):
            self.fail(loc, "an activity is an object with a type, a name and a provider")
            return None
        known_errors = len(self.errors)
        kind, name = raw.get("type"), raw.get("name")
        if kind not in ("probe", "action"):
            self.fail((*loc, "type"), f"activity type {kind!r} is not one of probe, action")
        if not isinstance(name, str) or not name:
            self.fail((*loc, "name"), "give the activity a name")
            name = ""
        if raw.get("background"):
            self.unsupported((*loc, "background"), "background activities are not supported")
        if "controls" in raw:
            self.unsupported((*loc, "controls"), "controls are not supported")
        pauses = raw.get("pauses") or {}
        if not isinstance(pauses, Mapping):
            self.fail((*loc, "pauses"), "must be an object with before and after, in seconds")
            pauses = {}
        before, after = (
            self._pause(pauses.get(when, 0), (*loc, "pauses", when)) for when in ("before", "after")
        )
        tolerance = raw.get("tolerance")
        provider = raw.get("provider")
        http = process = None
        if not isinstance(provider, Mapping):
            self.fail((*loc, "provider"), "give the activity a provider of type http or process")
        else:
            ptype = provider.get("type", "python" if "module" in provider else None)
            if ptype == "http":
                http = self.http_call(provider, (*loc, "provider"), tolerance, (*loc, "tolerance"), slo)
            elif ptype == "process":
                process = self.process_call(provider, (*loc, "provider"), tolerance, (*loc, "tolerance"))
            else:
                module = f" (module {provider['module']})" if isinstance(provider.get("module"), str) else ""
                self.unsupported(
                    (*loc, "provider", "type"),
                    f"provider type {ptype!r}{module} is not supported; use http or process",
                )
        if len(self.errors) > known_errors:
            return None
        action = ChaosAction(name, http, process, before, after, is_probe=kind == "probe")
        return _Step(action, str(kind), "tolerance" in raw)

    def _pause(self, raw: Any, loc: Loc) -> float:
        value = self.substitute(raw, loc)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
            self.fail(loc, "must be a number of seconds, 0 or more")
            return 0.0
        return float(value)


def _copy(action: ChaosAction) -> ChaosAction:
    return dataclasses.replace(
        action,
        http=dataclasses.replace(action.http) if action.http else None,
        process=dataclasses.replace(action.process) if action.process else None,
    )

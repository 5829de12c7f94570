"""Reading a Chaos Toolkit activity's provider into an `HttpCall` or a `ProcessCall`.

`ProviderReader` is the half of the importer (`crucible.core.chaos.chaostoolkit`) that knows
providers, tolerances and ``${name}`` substitutions; it collects every problem it meets as a
`FieldError` instead of stopping at the first.
"""

from __future__ import annotations

import itertools
import math
import re
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from crucible.core.chaos.model import HttpCall, ProcessCall
from crucible.core.errors import FieldError

Loc = tuple[str | int, ...]

#: Timeout of an imported step or SLO check whose provider gives none (Chaos Toolkit has no default).
STEP_TIMEOUT_S = 30.0
SLO_TIMEOUT_S = 5.0
HTTP_FAILURE = list(range(400, 600))
EXIT_FAILURE = [*range(-64, 0), *range(1, 256)]
STATUS_RANGE, EXIT_RANGE = (100, 599), (-64, 255)
SHELL_OPERATORS = set("|&;<>()")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class ProviderReader:
    """Reads providers, tolerances and substitutions, collecting problems in ``errors``."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.config: dict[str, Any] = {}
        #: Names ``${…}`` may not use, with why not.
        self.unresolvable: dict[str, str] = {}
        #: The first URL read: the experiment's target unless overridden.
        self.first_url = ""

    def fail(self, loc: Loc, msg: str, type: str = "value_error") -> None:
        self.errors.append(FieldError(loc, msg, type))

    def unsupported(self, loc: Loc, msg: str) -> None:
        self.fail(loc, msg, "unsupported")

    def read_configuration(self, configuration: Any, secrets: Any, loc: Loc) -> None:
        """Keep the plain values of ``configuration``; note why the other names cannot be used."""
        if not isinstance(configuration, Mapping):
            self.fail(loc, "must be an object")
            configuration = {}
        for name, value in configuration.items():
            if isinstance(value, str | int | float | bool):
                self.config[name] = value
            elif isinstance(value, Mapping) and "type" in value:
                self.unresolvable[name] = (
                    f"comes from configuration of type {value['type']!r}, which Crucible does not resolve; "
                    "give its value inline"
                )
            else:
                self.unresolvable[name] = "is a configuration object, not a plain value"
        for scope in secrets.values() if isinstance(secrets, Mapping) else ():
            for name in scope if isinstance(scope, Mapping) else ():
                self.unresolvable.setdefault(name, "is a secret, and secrets are not imported")

    def substitute(self, value: Any, loc: Loc) -> Any:
        """``value`` with every ``${name}`` replaced; a whole-string ``${name}`` keeps its type."""
        if isinstance(value, str):
            whole = _VARIABLE.fullmatch(value)
            if whole:
                return self._lookup(whole.group(1), loc)
            return _VARIABLE.sub(lambda m: str(self._lookup(m.group(1), loc)), value)
        if isinstance(value, Mapping):
            return {k: self.substitute(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, (*loc, i)) for i, v in enumerate(value)]
        return value

    def _lookup(self, name: str, loc: Loc) -> Any:
        if name in self.config:
            return self.config[name]
        reason = self.unresolvable.get(name, "is not in the experiment's configuration")
        self.unsupported(loc, f"${{{name}}} {reason}")
        return ""

    def timeout(self, provider: Mapping[str, Any], loc: Loc, default: float) -> float:
        raw = provider.get("timeout")
        parts = raw if isinstance(raw, list) else [raw] if raw is not None else []
        if not parts:
            return default
        if any(isinstance(p, bool) or not isinstance(p, int | float) or p <= 0 for p in parts):
            self.fail((*loc, "timeout"), "must be a number of seconds, or [connect, read] seconds")
            return default
        return float(sum(parts))

    def http_call(
        self, provider: Mapping[str, Any], loc: Loc, tolerance: Any, tolerance_loc: Loc, slo: bool
    ) -> HttpCall:
        url = self.substitute(provider.get("url"), (*loc, "url"))
        if not isinstance(url, str) or _scheme(url) not in ("http", "https"):
            self.fail((*loc, "url"), "give an http:// or https:// URL")
            url = ""
        method = provider.get("method", "GET")
        if not isinstance(method, str) or not method.isalpha():
            self.fail((*loc, "method"), "must be an HTTP method such as GET or POST")
            method = "GET"
        headers = self.substitute(provider.get("headers") or {}, (*loc, "headers"))
        if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
            self.fail((*loc, "headers"), "must be an object of header names to string values")
            headers = {}
        if provider.get("verify_tls", True) is not True:
            self.unsupported((*loc, "verify_tls"), "TLS verification cannot be turned off")
        body = self.substitute(provider.get("arguments"), (*loc, "arguments"))
        if body is not None and method.upper() == "GET" and isinstance(body, Mapping):
            url += ("&" if urlsplit(url).query else "?") + urlencode(body, doseq=True)
            body = None
        elif isinstance(body, Mapping) and "json" not in _content_type(headers):
            body = urlencode(body, doseq=True)
            headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        expected = self._codes(tolerance, tolerance_loc, STATUS_RANGE, [], HTTP_FAILURE)
        if expected is None:
            expected = self._expected_status(provider.get("expected_status"), (*loc, "expected_status"))
        self.first_url = self.first_url or url
        timeout = self.timeout(provider, loc, SLO_TIMEOUT_S if slo else STEP_TIMEOUT_S)
        headers = {str(name): value for name, value in headers.items()}
        return HttpCall(url, method.upper(), body, headers, timeout, expected)

    def _expected_status(self, raw: Any, loc: Loc) -> list[int]:
        if raw is None:
            return []
        codes = raw if isinstance(raw, list) else [raw]
        if not codes or not all(_is_int(c) for c in codes):
            self.fail(loc, "must be a status code or a list of them")
            return []
        return list(codes)

    def process_call(
        self, provider: Mapping[str, Any], loc: Loc, tolerance: Any, tolerance_loc: Loc
    ) -> ProcessCall:
        path = self.substitute(provider.get("path"), (*loc, "path"))
        if not isinstance(path, str) or not path:
            self.fail((*loc, "path"), "give the path or name of the executable")
        arguments = self.substitute(provider.get("arguments", []), (*loc, "arguments"))
        args: list[str] = []
        if isinstance(arguments, str):
            lexer = shlex.shlex(arguments, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            try:
                args = list(lexer)
            except ValueError as exc:
                self.fail((*loc, "arguments"), f"cannot be split into arguments: {exc}")
            if any(set(a) <= SHELL_OPERATORS for a in args) or "$" in arguments or "`" in arguments:
                self.unsupported(
                    (*loc, "arguments"),
                    "these arguments need a shell, and Crucible runs commands without one; "
                    "give them as a list (a script on the allowlist can hold the pipeline)",
                )
        elif isinstance(arguments, Mapping):
            args = [str(a) for a in itertools.chain.from_iterable(arguments.items()) if a not in (None, "")]
        elif isinstance(arguments, list):
            args = [str(a) for a in arguments if a not in (None, "")]
        else:
            self.fail((*loc, "arguments"), "must be a string, a list or an object")
        expected = self._codes(tolerance, tolerance_loc, EXIT_RANGE, [0], EXIT_FAILURE)
        timeout = self.timeout(provider, loc, STEP_TIMEOUT_S)
        return ProcessCall([str(path), *args], timeout, [0] if expected is None else expected)

    def _codes(
        self, tolerance: Any, loc: Loc, bounds: tuple[int, int], success: list[int], failure: list[int]
    ) -> list[int] | None:
        """The statuses or exit codes a tolerance accepts; None when there is none."""
        if tolerance is None:
            return None
        if isinstance(tolerance, bool):
            return list(success if tolerance else failure)
        if isinstance(tolerance, int):
            return [tolerance]
        if isinstance(tolerance, list) and tolerance and all(_is_int(t) for t in tolerance):
            return [int(t) for t in tolerance]
        if isinstance(tolerance, Mapping) and tolerance.get("type") == "range":
            bounds_given = tolerance.get("range")
            if tolerance.get("target", "status") != "status":
                self.unsupported((*loc, "target"), "a range applies to the status or exit code only")
            elif not (
                isinstance(bounds_given, list) and len(bounds_given) == 2 and all(map(_is_num, bounds_given))
            ):
                self.fail((*loc, "range"), "must be [lower, upper], two numbers")
            else:
                low = max(bounds[0], math.ceil(bounds_given[0]))
                high = min(bounds[1], math.floor(bounds_given[1]))
                if low <= high:
                    return list(range(low, high + 1))
                self.fail((*loc, "range"), f"holds none of the codes from {bounds[0]} to {bounds[1]}")
            return None
        if isinstance(tolerance, Mapping):
            self.unsupported(
                (*loc, "type"),
                f"tolerance type {tolerance.get('type')!r} is not supported: Crucible judges a probe "
                "by its status or exit code (an integer, a list, a range or true/false)",
            )
            return None
        self.unsupported(
            loc,
            "Crucible judges a probe by its status or exit code: give an integer, a list of integers, "
            "a range or true/false",
        )
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _scheme(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return parts.scheme if parts.hostname else ""


def _content_type(headers: Mapping[str, str]) -> str:
    return next((v.lower() for k, v in headers.items() if k.lower() == "content-type"), "")

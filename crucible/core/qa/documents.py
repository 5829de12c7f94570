"""Documents: JSON or YAML text to a mapping, and which spec version (if any) it is."""

from __future__ import annotations

import json
from typing import Any

import yaml

#: A spec with more JSON nodes than this is refused: YAML aliases can make a small text
#: expand into billions of nodes ("billion laughs").
MAX_NODES = 2_000_000
#: And nesting deeper than this is not a spec anyone wrote.
MAX_DEPTH = 200
#: libyaml's parser where PyYAML has it (four times faster), with the same safe constructor.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class NotASpecError(ValueError):
    """The document is not an OpenAPI or Swagger document; ``reasons`` says why, field by field."""

    def __init__(self, reasons: list[tuple[str, str]]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(f"{where}: {why}" for where, why in reasons))


def parse_document(text: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """A JSON or YAML document as a mapping; :class:`NotASpecError` when it is neither."""
    if isinstance(text, dict):
        return _bounded(text)
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise NotASpecError([("spec", f"nested deeper than {MAX_DEPTH} levels")]) from None
    except ValueError:
        try:
            doc = yaml.load(text, Loader=_YAML_LOADER)  # a safe loader: no Python objects
        except RecursionError:
            raise NotASpecError([("spec", f"nested deeper than {MAX_DEPTH} levels")]) from None
        except yaml.YAMLError as exc:
            raise NotASpecError([("spec", f"neither JSON nor YAML: {first_line(str(exc))}")]) from None
    if not isinstance(doc, dict):
        raise NotASpecError([("spec", f"a spec is a JSON/YAML object, not {type(doc).__name__}")])
    return _bounded(doc)


def _bounded(doc: dict[str, Any]) -> dict[str, Any]:
    budget = [MAX_NODES]
    try:
        out: dict[str, Any] = jsonable(doc, budget=budget)
    except _TooLarge as exc:
        raise NotASpecError([("spec", str(exc))]) from None
    return out


class _TooLarge(Exception):
    pass


def spec_version(doc: dict[str, Any]) -> str:
    """``"2.0"``, ``"3.0"`` or ``"3.1"``; :class:`NotASpecError` with every reason otherwise."""
    reasons: list[tuple[str, str]] = []
    raw = doc.get("openapi", doc.get("swagger"))
    version = None
    if raw is None:
        reasons.append(
            ("spec.openapi", "missing: an OpenAPI document has 'openapi', a Swagger one 'swagger'")
        )
    elif "swagger" in doc and str(raw) == "2.0":
        version = "2.0"
    elif "openapi" in doc and str(raw).startswith(("3.0.", "3.1.")):
        version = str(raw)[:3]
    else:
        where = "spec.swagger" if "swagger" in doc else "spec.openapi"
        reasons.append(
            (where, f"unsupported version {raw!r}; Crucible reads Swagger 2.0, OpenAPI 3.0 and 3.1")
        )
    paths = doc.get("paths")
    if paths is None and version != "3.1":
        reasons.append(("spec.paths", "missing: the spec has no operations"))
    elif paths is not None and not isinstance(paths, dict):
        reasons.append(("spec.paths", f"must be an object, not {type(paths).__name__}"))
    if not isinstance(doc.get("info", {}), dict):
        reasons.append(("spec.info", "must be an object"))
    if reasons or version is None:
        raise NotASpecError(reasons)
    return version


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def jsonable(node: Any, *, budget: list[int] | None = None, depth: int = 0) -> Any:
    """YAML can hold dates and non-string keys; a spec as JSON has neither.

    ``budget`` (one count, shared down the tree) bounds how many nodes the copy may have.
    """
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLarge(f"more than {MAX_NODES:,} values once its YAML aliases are expanded")
        if depth > MAX_DEPTH:
            raise _TooLarge(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, dict):
        return {str(k): jsonable(v, budget=budget, depth=depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [jsonable(v, budget=budget, depth=depth + 1) for v in node]
    if isinstance(node, (str, int, float, bool)) or node is None:
        return node
    return str(node)

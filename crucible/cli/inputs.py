"""What the commands read from their options: files (``-`` for standard input), JSON or YAML
documents, ``Name: value`` headers, and the absolute paths the workers need.

Input that will not do raises ``typer.BadParameter`` naming the option it came from.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
import yaml


def read_text(path: str, option: str) -> str:
    """The text of the file ``path`` given to ``option`` (``-`` reads standard input)."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise typer.BadParameter(f"no such file: {path}", param_hint=option) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint=option) from None


def read_document(path: str, option: str) -> dict[str, Any]:
    """A JSON or YAML object from a file (``-`` reads standard input)."""
    text = read_text(path, option)
    try:
        value = json.loads(text) if path.lower().endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path} is not valid JSON or YAML: {exc}", param_hint=option) from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{path} must hold an object (a mapping)", param_hint=option)
    return value


def parse_headers(values: list[str]) -> dict[str, str]:
    """``--header`` values, ``"Name: value"`` each; a name given twice (in any case) is refused."""
    headers: dict[str, str] = {}
    for value in values:
        name, colon, text = value.partition(":")
        name = name.strip()
        if not colon or not name or any(c.isspace() for c in name):
            raise typer.BadParameter(f'{value.split(":")[0]!r}…: give "Name: value"', param_hint="--header")
        if name.lower() in (n.lower() for n in headers):
            raise typer.BadParameter(f"{name} is given twice", param_hint="--header")
        headers[name] = text.strip()
    return headers


def parse_pairs(
    values: Sequence[str],
    option: str,
    *,
    taken: Mapping[str, Any] | None = None,
    own: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``key=value`` values of ``option``; a value that parses as JSON (a number, list, object…) is
    that value. A key given twice, or in ``taken`` already (by its own option, named in ``own``),
    is refused."""
    pairs: dict[str, Any] = {}
    for value in values:
        key, equals, text = value.partition("=")
        key = key.strip()
        if not equals or not key:
            raise typer.BadParameter(f"{value!r}: give key=value", param_hint=option)
        if key in pairs or key in (taken or {}):
            also = f" (or {own[key]})" if own and key in own else ""
            raise typer.BadParameter(f"{key} is given twice{also}", param_hint=option)
        try:
            pairs[key] = json.loads(text)
        except ValueError:
            pairs[key] = text
    return pairs


def folder_of(path: str) -> Path:
    """Where relative paths in the file ``path`` are read from: its folder."""
    return Path.cwd() if path == "-" else Path(path).parent


def absolute(value: str, base: Path) -> str:
    """``value`` as workers need it: an http(s) URL as given, a path made absolute from ``base``."""
    if urlsplit(value).scheme.lower() in ("http", "https") or os.path.isabs(value):
        return value
    return os.path.abspath(os.path.join(base, value))


def absolute_job(job: Any, base: Path) -> Any:
    """A batch job's body with relative ``input`` and ``output`` paths made absolute from ``base``."""
    if not isinstance(job, dict):
        return job
    paths = {key: absolute(job[key], base) for key in ("input", "output") if isinstance(job.get(key), str)}
    return {**job, **{key: path for key, path in paths.items() if job[key]}}

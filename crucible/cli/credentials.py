"""Where the CLI gets its token: ``CRUCIBLE_TOKEN``, or what ``crucible login`` saved.

Without either, a ``crucible dev`` stack's own token (``$CRUCIBLE_HOME/dev-token``) is used.
``crucible login`` keeps an access token and a refresh token per API URL in
``$CRUCIBLE_CONFIG_DIR/credentials.json`` (default ``~/.config/crucible``, or under
``$XDG_CONFIG_HOME``), readable by its owner only. An access token the API refuses is
refreshed once with the refresh token, and the new pair saved; ``CRUCIBLE_TOKEN`` (an API
token, for CI) is sent as given and never refreshed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

TOKEN_ENV = "CRUCIBLE_TOKEN"
FILE = "credentials.json"


@dataclass
class Saved:
    access_token: str
    refresh_token: str
    email: str = ""


def config_dir() -> Path:
    if os.environ.get("CRUCIBLE_CONFIG_DIR"):
        return Path(os.environ["CRUCIBLE_CONFIG_DIR"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "crucible"


def _read() -> dict[str, dict[str, str]]:
    try:
        data = json.loads((config_dir() / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(data: dict[str, dict[str, str]]) -> Path:
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)
    return path


def saved(api: str) -> Saved | None:
    """What ``crucible login`` saved for this API, if anything."""
    entry = _read().get(api)
    if not entry or "access_token" not in entry or "refresh_token" not in entry:
        return None
    return Saved(entry["access_token"], entry["refresh_token"], entry.get("email", ""))


def save(api: str, credentials: Saved) -> Path:
    data = _read()
    data[api] = asdict(credentials)
    return _write(data)


def forget(api: str) -> bool:
    """Drop what was saved for this API; whether there was anything."""
    data = _read()
    if api not in data:
        return False
    del data[api]
    _write(data)
    return True


def env_token() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


def dev_token(home: Path) -> str | None:
    """The token `crucible dev` wrote for the stack at ``home`` (its dev-token file), if any."""
    from crucible.core.auth.bootstrap import DEV_TOKEN_FILE

    try:
        return (home / DEV_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None

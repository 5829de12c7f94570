"""The batch library's exceptions (those of options are in ``processors.base``)."""

from __future__ import annotations

from crucible.core.errors import CrucibleError


class MalformedRecordError(CrucibleError):
    """A record that cannot be read: not JSON, not an object, wrong field count, bad quoting."""

    def __init__(self, row: int, reason: str) -> None:
        super().__init__(f"row {row}: {reason}")
        self.row = row
        self.reason = reason

    def __reduce__(self) -> tuple[type[MalformedRecordError], tuple[int, str]]:
        return type(self), (self.row, self.reason)

"""Which files batch jobs may read and write.

Batch jobs name files on the workers' disks. Crucible's own folders (its state, with the
secrets key, and the batch work folder) are never theirs. Where the API is open to more
people than should read or overwrite any file a worker can, ``CRUCIBLE_BATCH_ROOTS`` also
lists the only folders jobs may use. Symbolic links are followed before the checks, so a
link cannot lead out of a root or into Crucible's folders.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


@dataclass(frozen=True)
class PathPolicy:
    #: The folders jobs may use; empty: any, except ``forbidden``.
    roots: Sequence[str] = ()
    #: Folders jobs may never use, whatever the roots.
    forbidden: Sequence[str] = ()

    def problem(self, path: str) -> str | None:
        """Why ``path`` may not be used, or None."""
        # The file may not exist yet (an output): resolve its folder and keep its name.
        real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if any(_inside(real, folder) for folder in self.forbidden):
            return f"{path!r} is inside Crucible's own folders, which batch jobs may not use"
        if self.roots and not any(_inside(real, root) for root in self.roots):
            return f"{path!r} is outside the folders batch jobs may use ({', '.join(self.roots)})"
        return None

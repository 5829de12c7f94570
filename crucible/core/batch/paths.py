"""Which files batch jobs may read and write: inside the configured roots, when there are any.

Batch jobs name files on the workers' disks. Where the API is open to more people than
should be able to read or overwrite any file a worker can, ``CRUCIBLE_BATCH_ROOTS`` lists
the folders jobs may use; symbolic links are followed before the check, so a link cannot
lead out of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def outside_roots(path: str, roots: Sequence[str]) -> str | None:
    """Why ``path`` may not be used, or None when there are no roots or it is inside one."""
    if not roots:
        return None
    # The file may not exist yet (an output): resolve its folder and keep its name.
    real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    if any(os.path.commonpath([real, root]) == root for root in roots):
        return None
    return f"{path!r} is outside the folders batch jobs may use ({', '.join(roots)})"

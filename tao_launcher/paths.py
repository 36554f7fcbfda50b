"""Host <-> container paths under the mounts of the mounts file: the one piece of it both sides read.

The launcher (``launcher/mounts.py`` reads the file) maps a user's paths to the runner's view;
the entrypoint, in the container or in the local runner's subprocess, gets the mounts as
``TAO_PATH_MAP`` and reads a container path under a mount destination as its host folder. It
lives outside ``tao_launcher.launcher`` so that the entrypoint imports nothing of the host side.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import List, Optional

from tao_launcher.errors import UsageError

PATH_MAP_ENV = "TAO_PATH_MAP"  # local runner: container paths in a spec file -> host paths


@dataclass(frozen=True)
class Mount:
    source: Path        # absolute host folder
    destination: str    # absolute container folder
    read_only: bool = False
    relative: Optional[str] = field(default=None, compare=False)  # the source as written, when relative


class PathMap:
    """Translate paths between the host and the container view of the mounts."""

    def __init__(self, mounts: List[Mount]):
        # longest prefix first, so nested mounts pick the most specific one
        self.mounts = sorted(mounts, key=lambda m: len(m.destination), reverse=True)

    def to_container(self, value: str, what: str) -> str:
        """Host path under a mount source, or a container path under a destination -> container path."""
        if _under(value, self.mounts, "destination"):
            return str(PurePosixPath(value))
        host = Path(os.path.realpath(os.path.expanduser(value)))  # sources are resolved the same way
        for m in sorted(self.mounts, key=lambda m: len(str(m.source)), reverse=True):
            if host == m.source or m.source in host.parents:
                return str(PurePosixPath(m.destination) / host.relative_to(m.source))
        mounts = ", ".join(f"{m.source} -> {m.destination}" for m in self.mounts) or "none"
        raise UsageError(
            f"{what} {value} is under no mount of the mounts file (mounts: {mounts}): add "
            f'{{"source": "{host.parent}", "destination": "/workspace{host.parent}"}} to "Mounts", '
            f"or use a path under a mounted folder")

    def to_host(self, value: str) -> str:
        """Container path under a destination -> host path; anything else is returned unchanged."""
        for m in self.mounts:
            if value == m.destination or value.startswith(m.destination.rstrip("/") + "/"):
                rest = value[len(m.destination):].lstrip("/")
                return str(m.source / rest) if rest else str(m.source)
        return value

    def to_json(self) -> str:
        return json.dumps([[m.destination, str(m.source)] for m in self.mounts])

    @classmethod
    def from_json(cls, text: str) -> "PathMap":
        return cls([Mount(Path(src), dest) for dest, src in json.loads(text or "[]")])


def _under(value: str, mounts: List[Mount], attr: str) -> bool:
    for m in mounts:
        root = str(getattr(m, attr)).rstrip("/")
        if value == root or value.startswith(root + "/"):
            return True
    return False

"""The mounts file (``~/.tao_mounts.json``, TAO's schema) and host <-> container path mapping.

Format (every key optional; ``.tao_mounts.example.json`` shows them all)::

    {"Mounts": [{"source": "~/tao/data", "destination": "/data", "read_only": false}],
     "Envs": [{"variable": "CUDA_VISIBLE_DEVICES", "value": "0"}],
     "DockerOptions": {"shm_size": "16G", "ulimits": {"memlock": -1, "stack": 67108864},
                       "user": "1000:1000", "ports": {"8888": 8888}, "network": "host"},
     "Runner": "docker"}

A user may name a file by its container path (``/data/x.tsv``, as in TAO) or by its host
path (``~/tao/data/x.tsv``); ``PathMap`` turns either into what the runner needs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional

from tao_launcher.errors import UsageError

MOUNTS_ENV = "TAO_MOUNTS_FILE"
DEFAULT_MOUNTS_FILE = "~/.tao_mounts.json"
TOP_KEYS = {"Mounts", "Envs", "DockerOptions", "Runner"}
MOUNT_KEYS = {"source", "destination", "read_only"}
ENV_KEYS = {"variable", "value"}
DOCKER_OPTION_KEYS = {"shm_size", "ulimits", "user", "ports", "network", "privileged", "tty",
                      "ipc_mode", "gpu_ids"}


@dataclass(frozen=True)
class Mount:
    source: Path        # absolute host folder
    destination: str    # absolute container folder
    read_only: bool = False


@dataclass
class MountsConfig:
    """The parsed, validated mounts file (or an empty one when there is none)."""

    path: Optional[Path] = None
    mounts: List[Mount] = field(default_factory=list)
    envs: Dict[str, str] = field(default_factory=dict)
    docker_options: Dict[str, object] = field(default_factory=dict)
    runner: Optional[str] = None


def mounts_file_path() -> Path:
    return Path(os.path.expanduser(os.environ.get(MOUNTS_ENV) or DEFAULT_MOUNTS_FILE))


def load_mounts(path: Optional[Path] = None) -> MountsConfig:
    """Read and validate the mounts file; a missing default file means no mounts."""
    explicit = path is not None or bool(os.environ.get(MOUNTS_ENV))
    path = path or mounts_file_path()
    if not path.exists():
        if explicit:
            raise UsageError(f"mounts file {path} does not exist: create it (see .tao_mounts.example.json) "
                             f"or unset {MOUNTS_ENV}")
        return MountsConfig()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); fix the syntax "
                         f"(see .tao_mounts.example.json)") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: the mounts file must be a JSON object with Mounts, Envs, DockerOptions")
    _reject_unknown(path, "top level", data, TOP_KEYS)
    for section, kind in (("Mounts", list), ("Envs", list), ("DockerOptions", dict)):
        if section in data and not isinstance(data[section], kind):
            raise UsageError(f"{path}: \"{section}\" must be a JSON {'list' if kind is list else 'object'} "
                             f"(see .tao_mounts.example.json)")
    config = MountsConfig(path=path)
    seen: Dict[str, Path] = {}
    for i, entry in enumerate(data.get("Mounts") or []):
        where = f"Mounts[{i}]"
        if not isinstance(entry, dict) or "source" not in entry or "destination" not in entry:
            raise UsageError(f"{path}: {where} needs both \"source\" and \"destination\"")
        _reject_unknown(path, where, entry, MOUNT_KEYS)
        source = Path(os.path.expandvars(os.path.expanduser(str(entry["source"])))).resolve()
        destination = str(PurePosixPath(str(entry["destination"])))
        if not destination.startswith("/"):
            raise UsageError(f"{path}: {where} destination '{destination}' must be an absolute container path, "
                             f"for example /data")
        if not source.is_dir():
            raise UsageError(f"{path}: {where} source folder {source} does not exist: create it "
                             f"(mkdir -p {source}) or fix the path")
        if destination in seen:
            raise UsageError(f"{path}: {where} mounts {source} on {destination}, which already holds "
                             f"{seen[destination]}: give each mount its own destination")
        seen[destination] = source
        read_only = entry.get("read_only", False)
        if not isinstance(read_only, bool):
            raise UsageError(f"{path}: {where} read_only must be true or false, got {read_only!r}")
        config.mounts.append(Mount(source, destination, read_only))
    for i, entry in enumerate(data.get("Envs") or []):
        if not isinstance(entry, dict) or "variable" not in entry:
            raise UsageError(f"{path}: Envs[{i}] needs \"variable\" and \"value\"")
        _reject_unknown(path, f"Envs[{i}]", entry, ENV_KEYS)
        config.envs[str(entry["variable"])] = str(entry.get("value", ""))
    options = data.get("DockerOptions") or {}
    _reject_unknown(path, "DockerOptions", options, DOCKER_OPTION_KEYS)
    config.docker_options = dict(options)
    runner = data.get("Runner")
    if runner is not None and runner not in ("docker", "local"):
        raise UsageError(f"{path}: Runner must be \"docker\" or \"local\", got {runner!r}")
    config.runner = runner
    return config


def _reject_unknown(path: Path, where: str, entry: dict, allowed: set) -> None:
    import difflib

    for key in entry:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"did you mean {close[0]}?" if close else f"allowed: {', '.join(sorted(allowed))}"
            raise UsageError(f"{path}: unknown key \"{key}\" in {where}; {hint}")


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

"""The mounts file (``~/.tao_mounts.json``, TAO's schema) and host <-> container path mapping.

Format (every key optional; ``.tao_mounts.example.json`` shows them all)::

    {"Mounts": [{"source": "~/tao/data", "destination": "/data", "read_only": false}],
     "Envs": [{"variable": "CUDA_VISIBLE_DEVICES", "value": "0"}],
     "DockerOptions": {"shm_size": "16G", "ulimits": {"memlock": -1, "stack": 67108864},
                       "user": "1000:1000", "ports": {"8888": 8888}, "network": "host"},
     "Runner": "docker"}

A relative ``source`` is resolved against the folder of the mounts file (``tao info`` shows
the result), never against the folder tao runs in. Envs and DockerOptions describe a container:
the Docker runner's only. The local runner reads the Mounts alone, to take a container path
under a mount destination as the host folder that mount names.

A user may name a file by its container path (``/data/x.tsv``, as in TAO) or by its host
path (``~/tao/data/x.tsv``); ``PathMap`` (``tao_launcher/paths.py``, which the entrypoint reads
too) turns either into what the runner needs.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional

from tao_launcher.errors import UsageError
from tao_launcher.paths import Mount
from tao_launcher.registry import RUNNERS

MOUNTS_ENV = "TAO_MOUNTS_FILE"
DEFAULT_MOUNTS_FILE = "~/.tao_mounts.json"
TOP_KEYS = {"Mounts", "Envs", "DockerOptions", "Runner"}
MOUNT_KEYS = {"source", "destination", "read_only"}
ENV_KEYS = {"variable", "value"}
DOCKER_OPTION_KEYS = {"shm_size", "ulimits", "user", "ports", "network", "privileged", "tty",
                      "ipc_mode", "gpu_ids"}


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
        data = json.loads(_read_text(path))
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
        given = os.path.expandvars(os.path.expanduser(str(entry["source"])))
        # a relative source is read from the mounts file's folder, never from wherever tao is run
        source = (path.absolute().parent / given).resolve()
        destination = str(PurePosixPath(str(entry["destination"])))
        if not destination.startswith("/"):
            raise UsageError(f"{path}: {where} destination '{destination}' must be an absolute container path, "
                             f"for example /data")
        if not source.is_dir():
            relative = "" if os.path.isabs(given) else f" ('{given}' is read from the mounts file's folder)"
            raise UsageError(f"{path}: {where} source folder {source}{relative} does not exist: create it "
                             f"(mkdir -p {source}) or fix the path")
        if destination in seen:
            raise UsageError(f"{path}: {where} mounts {source} on {destination}, which already holds "
                             f"{seen[destination]}: give each mount its own destination")
        seen[destination] = source
        read_only = entry.get("read_only", False)
        if not isinstance(read_only, bool):
            raise UsageError(f"{path}: {where} read_only must be true or false, got {read_only!r}")
        config.mounts.append(Mount(source, destination, read_only,
                                   relative=given if not os.path.isabs(given) else None))
    for i, entry in enumerate(data.get("Envs") or []):
        if not isinstance(entry, dict) or "variable" not in entry:
            raise UsageError(f"{path}: Envs[{i}] needs \"variable\" and \"value\"")
        _reject_unknown(path, f"Envs[{i}]", entry, ENV_KEYS)
        config.envs[str(entry["variable"])] = str(entry.get("value", ""))
    options = data.get("DockerOptions") or {}
    _reject_unknown(path, "DockerOptions", options, DOCKER_OPTION_KEYS)
    _check_docker_options(path, options)
    config.docker_options = dict(options)
    runner = data.get("Runner")
    if runner is not None and runner not in RUNNERS:
        names = " or ".join(f'"{name}"' for name in RUNNERS)
        raise UsageError(f"{path}: Runner must be {names}, got {runner!r}")
    config.runner = runner
    return config


def _read_text(path: Path) -> str:
    """The mounts file as text; a folder, an unreadable file or bytes that are not UTF-8 are usage errors."""
    if path.is_dir():
        raise UsageError(f"mounts file {path} is a folder, not a file: point {MOUNTS_ENV} (or ~/.tao_mounts.json) "
                         f"at a JSON file (see .tao_mounts.example.json)")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read mounts file {path}: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the mounts file as "
                         f"UTF-8") from None


ULIMIT_NAMES = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack"}
SHM_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?[bkmgBKMG]?")


def _check_docker_options(path: Path, options: dict) -> None:
    """The types Docker expects of each option, checked here so that a typo is a usage error, not a crash
    or an engine error after the container was created."""
    def bad(name: str, expected: str) -> UsageError:
        shown = json.dumps(options[name])
        return UsageError(f"{path}: DockerOptions.{name} must be {expected}, got {shown[:60]} "
                          f"(see .tao_mounts.example.json)")

    def is_int(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if "shm_size" in options:
        value = options["shm_size"]
        if not ((is_int(value) and value > 0) or (isinstance(value, str) and SHM_SIZE.fullmatch(value.strip()))):
            raise bad("shm_size", 'a size such as "16G", "512M" or a number of bytes')
    if "ulimits" in options:
        ulimits = options["ulimits"]
        if not isinstance(ulimits, dict):
            raise bad("ulimits", 'an object of limits such as {"memlock": -1, "stack": 67108864}')
        for name, value in ulimits.items():
            if name not in ULIMIT_NAMES:
                raise UsageError(f"{path}: DockerOptions.ulimits has no limit \"{name}\"; known limits: "
                                 f"{', '.join(sorted(ULIMIT_NAMES))}")
            if not (is_int(value) and value >= -1):
                raise UsageError(f"{path}: DockerOptions.ulimits.{name} must be a whole number (-1: unlimited), "
                                 f"got {json.dumps(value)[:60]}")
    for name in ("user", "network", "ipc_mode"):
        if name in options and not (isinstance(options[name], str) and options[name].strip()
                                    or (name == "user" and is_int(options[name]))):
            raise bad(name, "a non-empty string" + (' such as "1000:1000"' if name == "user" else ""))
    for name in ("privileged", "tty"):
        if name in options and not isinstance(options[name], bool):
            raise bad(name, "true or false")
    if "ports" in options:
        ports = options["ports"]
        if not isinstance(ports, dict) or not all(
                str(c).split("/")[0].isdigit() and is_int(h) and 0 < h < 65536 for c, h in ports.items()):
            raise bad("ports", 'an object of container port to host port, such as {"8888": 8888}')
    if "gpu_ids" in options:
        ids = options["gpu_ids"]
        if not isinstance(ids, list) or not all((is_int(i) and i >= 0) or (isinstance(i, str) and i.isdigit())
                                                for i in ids):
            raise bad("gpu_ids", "a list of GPU numbers such as [0, 1]")


def _reject_unknown(path: Path, where: str, entry: dict, allowed: set) -> None:
    import difflib

    for key in entry:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"did you mean {close[0]}?" if close else f"allowed: {', '.join(sorted(allowed))}"
            raise UsageError(f"{path}: unknown key \"{key}\" in {where}; {hint}")

"""The local runner's jobs, for ``tao list`` and ``tao stop``: one small record per job.

A Docker job is its container (labels say whose it is and where its results go); a local job
has no such handle, so the local runner records each one in ``~/.tao/jobs/local-<pid>.json``
(``{"pid", "host", "task", "subtask", "results", "started"}``, the launcher's pid and the host
results folder) while it runs, and removes the record when it ends. A record that outlives its
launcher (kill -9, a closed SSH session, a crash of the machine) is how ``tao list`` finds the
job: its state is the results folder's, as ``core.results.read_status`` reports it (``dead``
for a run that was killed), or ``dead`` when the launcher is gone before the run began.
``tao stop ID`` ends a running local job (SIGTERM to its launcher) or forgets a dead one, and a
record whose folder has since been used by another run is dropped when read.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, List, Optional

PREFIX = "local-"


def jobs_dir() -> Path:
    return Path(os.path.expanduser("~/.tao/jobs"))


@dataclass
class LocalJob:
    id: str            # local-<launcher pid>
    record: Path
    pid: int
    task: str
    subtask: str
    started: str
    status: str        # running or dead
    results: str


@contextmanager
def recorded(task: str, subtask: str, results: Optional[str]) -> Iterator[None]:
    """Record this launcher's job while it runs (best effort: a home without room only loses ``tao list``)."""
    record = jobs_dir() / f"{PREFIX}{os.getpid()}.json"
    data = {"pid": os.getpid(), "host": socket.gethostname(), "task": task, "subtask": subtask,
            "results": str(Path(results).absolute()) if results else "",
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        partial = record.with_name(f".{record.name}.partial")
        partial.write_text(json.dumps(data))
        os.replace(partial, record)
    except OSError:
        record = None
    try:
        yield
    finally:
        if record is not None:
            try:
                record.unlink()
            except OSError:
                pass


def list_local_jobs() -> List[LocalJob]:
    """This host's recorded local jobs of the user, oldest first; stale records are dropped."""
    jobs = []
    for record in sorted(jobs_dir().glob(f"{PREFIX}*.json")):
        try:
            data = json.loads(record.read_text())
            pid = int(data["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if data.get("host") != socket.gethostname():
            continue
        status = _state(pid, data)
        if status is None:
            _forget(record)
            continue
        jobs.append(LocalJob(record.stem, record, pid, data.get("task", "?"), data.get("subtask", "?"),
                             data.get("started", "?"), status, data.get("results", "")))
    return sorted(jobs, key=lambda j: j.started)


def _state(pid: int, data: dict) -> Optional[str]:
    """``running`` while the launcher lives; once it is gone (the record outlived it: it was killed),
    ``dead``, unless the folder has since recorded an outcome (None: the record is stale)."""
    from tao_launcher.core.results import read_status

    if launcher_alive(pid):
        return "running"
    status = read_status(Path(data["results"])) if data.get("results") else {}
    if not status or _utc(status.get("started", "")) < data.get("started", ""):
        return "dead"      # killed before its run wrote anything
    return "dead" if status.get("state") == "dead" else None


def _utc(stamp: str) -> str:
    """An ISO time stamp of status.json as ``%Y-%m-%dT%H:%M:%SZ``, comparable with the record's."""
    try:
        return datetime.fromisoformat(stamp).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return ""


def launcher_alive(pid: int) -> bool:
    """Whether ``pid`` on this host is a tao launcher still (its command line names tao: not a reused pid)."""
    try:
        return b"tao" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_local_job(job: LocalJob) -> None:
    """A running job: SIGTERM to its launcher, which stops the subtask (``interrupted``); a dead one: forgotten."""
    if job.status == "running":
        try:
            os.kill(job.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    else:
        _forget(job.record)


def _forget(record: Path) -> None:
    try:
        record.unlink()
    except OSError:
        pass

"""The results folder (``-r``) of one subtask run.

Layout (documented in docs/results_folder.md)::

    log.txt              everything the run printed, appended across resumed attempts
    spec.yaml            the resolved spec, key masked
    status.json          task, subtask, state, started/ended, metrics, artifacts, message
    metrics.csv          one row per validation (train and finetune)
    checkpoints/         last.ckpt (resume) and the final trained-model.tao

``status.json`` states: running, finished, failed, interrupted. A folder whose run
did not finish is resumed (train, finetune) or redone; a finished run or a folder with
other files is refused unless ``--overwrite`` is given.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from tao_launcher import __version__
from tao_launcher.errors import UsageError

STATUS_FILE = "status.json"
LOG_FILE = "log.txt"
SPEC_FILE = "spec.yaml"
MASK = "***"
log = logging.getLogger("tao")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def is_worker_process() -> bool:
    """True in the extra processes of a multi-device run: only rank 0 owns the results folder."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


class SecretFilter(logging.Filter):
    """Replace the key in every log record, whatever code logged it."""

    def __init__(self, secret: Optional[str]):
        super().__init__()
        # whole-token matches only: a one-letter key must not mask that letter in every word
        self.pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(secret) + r"(?![A-Za-z0-9])") if secret else None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.pattern is not None:
            message = record.getMessage()
            masked = self.pattern.sub(MASK, message)
            if masked != message:
                record.msg, record.args = masked, ()
        return True


NOISE = ("litlogger", "`weights_only` was not set", "LOAD REPORT")


def _is_noise(record: logging.LogRecord) -> bool:
    """Library chatter that says nothing about the user's run (tips, advertising)."""
    message = record.getMessage()
    return any(n in message for n in NOISE)


def quiet_libraries() -> None:
    """Keep the log about the run: library warnings a user cannot act on are dropped."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _alive_here(status: Dict[str, Any]) -> bool:
    """Whether the process that wrote a 'running' status.json still runs on this machine."""
    pid = status.get("pid")
    if status.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    if Path("/proc/self").exists():  # Linux: the command line guards against a reused pid
        try:
            return b"tao_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


class ResultsFolder:
    """Owns status.json, the log and the checks that keep finished work from being overwritten."""

    def __init__(self, path: Path, task: str, subtask: str):
        self.path = path
        self.task = task
        self.subtask = subtask
        self.status: Dict[str, Any] = {}
        self.resuming = False

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def prepare(self, overwrite: bool, resumable: bool) -> None:
        """Decide between fresh, resume and refuse; then mark the run as running."""
        if is_worker_process():
            return
        previous = self._read_status()
        entries = [p for p in self.path.iterdir()] if self.path.is_dir() else []
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"results folder {self.path} is a file: pass a folder to -r")
        same_run = previous.get("task") == self.task and previous.get("subtask") == self.subtask
        if previous.get("state") == "running" and _alive_here(previous):
            raise UsageError(f"results folder {self.path} is in use by a running {previous.get('subtask')} "
                             f"(pid {previous.get('pid')}): wait for it, stop it, or pass another -r folder")
        unfinished = same_run and previous.get("state") != "finished"
        if entries and not (unfinished and not overwrite):
            if not overwrite:
                what = (f"a finished {self.task} {self.subtask} run" if same_run
                        else f"{len(entries)} other file(s) ({', '.join(sorted(p.name for p in entries)[:3])})")
                raise UsageError(f"results folder {self.path} already holds {what}: pass a new -r folder, "
                                 f"or add --overwrite to replace its contents")
            for entry in entries:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        self.resuming = unfinished and resumable and not overwrite and (self.checkpoints / "last.ckpt").exists()
        self.status = {
            "task": self.task, "subtask": self.subtask, "state": "running", "tao_version": __version__,
            "started": now(), "ended": None, "host": socket.gethostname(), "pid": os.getpid(),
            "attempt": previous.get("attempt", 0) + 1 if unfinished else 1,
            "metrics": previous.get("metrics", {}) if self.resuming else {},
            "artifacts": {}, "message": None,
        }
        self._write_status()

    def start_logging(self, secret: Optional[str]) -> None:
        """Log to stderr and to log.txt (rank 0 only), masking the key everywhere."""
        root = logging.getLogger()
        root.setLevel(logging.WARNING if is_worker_process() else logging.INFO)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handlers = [logging.StreamHandler(sys.stderr)]
        if not is_worker_process():
            handlers.append(logging.FileHandler(self.path / LOG_FILE, encoding="utf-8"))
        for handler in handlers:
            handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s",
                                                   "%Y-%m-%d %H:%M:%S"))
            handler.addFilter(SecretFilter(secret))
            handler.addFilter(lambda record: not _is_noise(record))
            root.addHandler(handler)
        quiet_libraries()

    def save_spec(self, text: str) -> None:
        if not is_worker_process():
            (self.path / SPEC_FILE).write_text(text)

    def record(self, metrics: Optional[Dict[str, Any]] = None, **artifacts: str) -> None:
        """Add metrics and artifact paths to status.json as soon as they exist."""
        if is_worker_process():
            return
        self.status["metrics"].update(metrics or {})
        self.status["artifacts"].update({k: str(v) for k, v in artifacts.items()})
        self._write_status()

    def end(self, state: str, message: Optional[str] = None) -> None:
        if is_worker_process() or not self.status:
            return
        self.status.update(state=state, ended=now(), message=message)
        self._write_status()

    def _read_status(self) -> Dict[str, Any]:
        try:
            return json.loads((self.path / STATUS_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _write_status(self) -> None:
        write_json_atomic(self.path / STATUS_FILE, self.status)

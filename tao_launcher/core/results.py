"""The results folder (``-r``) of one subtask run.

Layout (documented in docs/results_folder.md)::

    log.txt              everything the run printed, appended across resumed attempts
    spec.yaml            the resolved spec, key masked
    status.json          task, subtask, state, started/ended, metrics, artifacts, message
    metrics.csv          one row per validation (train and finetune)
    checkpoints/         last.ckpt (resume; encrypted with the key) and the final trained-model.tao
    .tao.lock            held (fcntl lock) by the run using the folder; holds its pid, host, start
    .tao-tmp/            the run's temporary files (decrypted and staged model files), mode 0700
    .tao-replaced/       with --overwrite: the earlier run's files, until this run has finished
    .tao-moving/         the earlier run's files while they move aside or back (none of the new run's are there then)
    log.failed-overwrite.txt  the log of an --overwrite run that failed (its folder is as it was before)

``status.json`` states: running, finished, failed, interrupted. A folder whose run
did not finish is resumed (train, finetune) or redone; a finished run is refused unless
``--overwrite`` is given, and a folder that no tao run wrote always. ``--overwrite`` moves the
earlier run's files aside and deletes them only when the new run has finished; a run that fails,
is stopped or is killed gets them put back (the killed one by the next run into the folder). A ``running`` status whose folder
lock is free was killed: ``read_status`` reports it as ``dead``.

Crash safety: one run at a time per folder (the lock, taken before anything is changed);
every file is replaced atomically through a uniquely named ``.NAME.*.partial``, removed on
every exit path that runs code, and by the next run for the paths that do not (kill -9,
power loss), with ``.tao-tmp/``.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from tao_launcher import __version__
from tao_launcher.core.faultpoints import pause_point
from tao_launcher.core.placement import Placement
from tao_launcher.errors import UsageError

STATUS_FILE = "status.json"
LOG_FILE = "log.txt"
SPEC_FILE = "spec.yaml"
LOCK_FILE = ".tao.lock"
WORK_DIR = ".tao-tmp"
PARTIAL_GLOB = ".*.partial"
REPLACED_DIR = ".tao-replaced"
MOVING_DIR = ".tao-moving"
FAILED_LOG = "log.failed-overwrite.txt"
# tao's own bookkeeping: never "other files", kept by --overwrite
TAO_ENTRIES = (LOCK_FILE, WORK_DIR, REPLACED_DIR, MOVING_DIR)
LOCK_WAIT_S = 1.0                    # rides over a reader's brief probe of the lock (read_status)
MASK = "***"
log = logging.getLogger("tao")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def partial_path(path: Path) -> Path:
    """A temp name beside ``path``, unique to this write: two writers never share one."""
    return path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(3).hex()}.partial")


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once; the temp file goes on any error or signal."""
    tmp = partial_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def remove_leftovers(folder: Path) -> None:
    """What a killed run leaves: ``.*.partial`` temp files (here and in checkpoints/) and ``.tao-tmp/``."""
    for where in (folder, folder / "checkpoints"):
        for partial in where.glob(PARTIAL_GLOB):
            if partial.is_file() and not partial.is_symlink():
                partial.unlink(missing_ok=True)
    shutil.rmtree(folder / WORK_DIR, ignore_errors=True)


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
    # through the environment, which transformers reads when first imported: importing it here would
    # cost every subtask, dataset_convert included, 0.7 s (benchmarks/RESULTS.md, command start-up)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import sys

    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def lock_holder(folder: Path) -> Optional[Dict[str, Any]]:
    """Who uses ``folder`` now: the ``.tao.lock`` record ({pid, host, started}) while a run holds the
    lock, else None. Imports nothing heavy (no torch): ``tao list`` and the launcher may call it.

    The lock is a POSIX record lock (``fcntl.lockf``): the kernel drops it when its process dies,
    however it dies, and forked DataLoader workers do not inherit it. (POSIX locks also drop when
    their process closes *any* descriptor of the file: this process's own lock is answered from
    ``_HELD``, never probed.)
    """
    held = _HELD.get(os.path.realpath(folder / LOCK_FILE))
    if held is not None:
        return _lock_record(held)
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _lock_record(fd)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


_HELD: Dict[str, int] = {}   # lock file (real path) -> descriptor, for the locks this process holds


def _lock_record(fd: int) -> Dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def read_status(folder: Path) -> Dict[str, Any]:
    """``status.json`` of ``folder`` as tao reports it ({} where there is none).

    A ``running`` status whose run no longer holds the folder lock was killed (kill -9, a crash
    of the machine, a container removed): it reads as ``dead``, with a message that says so. The
    file itself is left as it is; the next run into the folder records a new attempt.
    """
    status = _read_json(folder / STATUS_FILE)
    if status.get("state") == "running" and lock_holder(folder) is None:
        status["state"] = "dead"
        status["message"] = died_message(folder, status)
    return status


def died_message(folder: Path, status: Dict[str, Any]) -> str:
    """One sentence on a run that ended without recording why: its pid, start and last sign of life."""
    written = [p.stat().st_mtime for p in (folder / LOG_FILE, folder / STATUS_FILE) if p.exists()]
    last = (_dt.datetime.fromtimestamp(max(written)).astimezone().isoformat(timespec="seconds")
            if written else "unknown")
    return (f"the {status.get('subtask', 'previous')} run (pid {status.get('pid')} on {status.get('host')}, "
            f"started {status.get('started')}) died without finishing: last written {last} "
            f"(killed, out of memory, or its machine stopped)")


def put_back(folder: Path) -> bool:
    """Undo an unfinished --overwrite (the caller holds the folder lock): this run's files go (its log kept as
    FAILED_LOG), the earlier ones come back. False when nothing was set aside.

    Safe to redo after a kill at any moment: the earlier files are in MOVING_DIR only while the folder holds
    none of the new run's (being set aside, or being put back), and then they just move back."""
    aside, moving = folder / REPLACED_DIR, folder / MOVING_DIR
    if aside.is_dir():
        for entry in folder.iterdir():
            if entry.name in TAO_ENTRIES:
                continue
            if entry.name == LOG_FILE:
                os.replace(entry, folder / FAILED_LOG)
            else:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        os.replace(aside, moving)
    if not moving.is_dir():
        return False
    for entry in moving.iterdir():
        os.replace(entry, folder / entry.name)
        pause_point("put-back")   # the fault tests' moment (core/faultpoints.py); inert otherwise
    moving.rmdir()
    return True


def record_killed(folder: Path, pid: int, cause: str) -> Optional[str]:
    """For the launcher, whose subtask ``pid`` was killed before it could record its end (the out-of-memory
    killer's SIGKILL): record ``failed`` in status.json, as the run itself would have, and put back what an
    --overwrite run was replacing. Only while status.json says ``running`` for ``pid`` and no process holds
    the folder lock (a run that died before claiming the folder left someone else's status there). Returns
    the sentence recorded, ``cause`` and what a rerun does, or None where nothing was recorded."""
    if os.path.realpath(folder / LOCK_FILE) in _HELD:
        return None   # this process's own run (and closing a descriptor of the file would drop its lock)
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR)
    except OSError:
        return None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return None   # a run holds the folder
        status = _read_json(folder / STATUS_FILE)
        if status.get("state") != "running" or status.get("pid") != pid:
            return None
        if (folder / REPLACED_DIR).is_dir() or (folder / MOVING_DIR).is_dir():
            rerun = f"the files --overwrite was replacing are back in {folder}; rerun the same command to start again"
        elif (folder / "checkpoints" / "last.ckpt").exists():
            rerun = "rerun the same command to resume from checkpoints/last.ckpt"
        else:
            rerun = "rerun the same command to start again"
        message = f"{cause}; {rerun}"
        status.update(state="failed", ended=now(), message=message)
        write_json_atomic(folder / STATUS_FILE, status)
        remove_leftovers(folder)
        put_back(folder)
        return message
    finally:
        os.close(fd)   # and with it the lock


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class ResultsFolder:
    """Owns status.json, the log, the folder lock and the checks that keep finished work from being overwritten."""

    def __init__(self, path: Path, task: str, subtask: str, placement: Optional[Placement] = None):
        self.path = path
        self.task = task
        self.subtask = subtask
        # only the output owner touches the folder; the other ranks of a multi-device run leave it alone
        self.placement = placement or Placement.from_env()
        self.status: Dict[str, Any] = {}
        self.resuming = False
        self.notes: List[str] = []   # what prepare found, logged once logging starts
        self._lock_fd: Optional[int] = None

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def work_dir(self) -> Path:
        return self.path / WORK_DIR

    def prepare(self, overwrite: bool, resumable: bool) -> None:
        """Lock the folder; decide between fresh, resume and refuse; clean what a killed run left;
        then mark the run as running. A refusal changes nothing in the folder."""
        if not self.placement.is_output_owner:
            return
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"results folder {self.path} is a file: pass a folder to -r")
        self.path.mkdir(parents=True, exist_ok=True)
        created_lock = self._lock()
        try:
            self._prepare(overwrite, resumable)
        except BaseException:
            if created_lock:
                (self.path / LOCK_FILE).unlink(missing_ok=True)
            self._release()
            raise

    def _lock(self) -> bool:
        """Take the folder lock (refused, with the holder's pid, while another run has it); True if
        this call created the lock file."""
        path = self.path / LOCK_FILE
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                if os.path.realpath(path) in _HELD:   # POSIX locks never conflict within one process
                    raise BlockingIOError
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                holder = _lock_record(fd)
                os.close(fd)
                raise UsageError(
                    f"results folder {self.path} is already in use by another tao run (pid {holder.get('pid', '?')}"
                    f" on {holder.get('host', '?')}, {holder.get('task', '')} {holder.get('subtask', '')} started "
                    f"{holder.get('started', '?')}): wait for it to end, stop it, or pass another -r folder"
                ) from None
        self._lock_fd = fd
        _HELD[os.path.realpath(path)] = fd
        return created

    def _write_lock_record(self) -> None:
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "task": self.task,
                             "subtask": self.subtask, "started": now()}).encode()
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, record, 0)

    def _prepare(self, overwrite: bool, resumable: bool) -> None:
        if self._put_back():   # an --overwrite run was killed before it finished (we hold the lock)
            self.notes.append(f"an earlier --overwrite run into {self.path} did not finish: the files it was "
                              f"replacing are back")
        previous = _read_json(self.path / STATUS_FILE)
        if previous:   # a folder tao wrote, and locked: what a killed run left (decrypted files) goes, refused or not
            remove_leftovers(self.path)
        entries = [p for p in self.path.iterdir() if p.name not in TAO_ENTRIES]
        same_run = previous.get("task") == self.task and previous.get("subtask") == self.subtask
        unfinished = same_run and previous.get("state") != "finished"
        if entries and not previous:
            names = ", ".join(sorted(p.name for p in entries)[:3])
            raise UsageError(f"results folder {self.path} holds {len(entries)} file(s) that no tao run wrote "
                             f"({names}): pass a new -r folder (--overwrite replaces only an earlier tao run's "
                             f"results, never other files)")
        if entries and not (unfinished and not overwrite):
            if not overwrite:
                what = (f"a finished {self.task} {self.subtask} run" if same_run
                        else f"the results of a {previous.get('task')} {previous.get('subtask')} run "
                             f"({', '.join(sorted(p.name for p in entries)[:3])})")
                raise UsageError(f"results folder {self.path} already holds {what}: pass a new -r folder, "
                                 f"or add --overwrite to replace its contents")
        self._write_lock_record()
        if entries and overwrite:   # aside until this run has finished (``end``): a failure puts them back
            moving = self.path / MOVING_DIR
            moving.mkdir()
            for entry in entries:
                os.replace(entry, moving / entry.name)
                pause_point("overwrite-aside")
            os.replace(moving, self.path / REPLACED_DIR)   # all at once: from now on the folder is the new run's
        if previous.get("state") == "running" and not overwrite:  # we hold the lock: its run is gone
            self.notes.append(died_message(self.path, previous))
        remove_leftovers(self.path)
        self.resuming = unfinished and resumable and not overwrite and (self.checkpoints / "last.ckpt").exists()
        self.status = {
            "task": self.task, "subtask": self.subtask, "state": "running", "tao_version": __version__,
            "started": now(), "ended": None, "host": socket.gethostname(), "pid": os.getpid(),
            "attempt": previous.get("attempt", 0) + 1 if unfinished else 1,
            "metrics": previous.get("metrics", {}) if self.resuming else {},
            "artifacts": {}, "message": None,
        }
        self._write_status()

    def use_work_dir(self) -> Path:
        """``.tao-tmp/`` (mode 0700) as this process's temp folder, so that decrypted and staged model
        files stay under the results folder: removed by ``close`` and, after a kill, by the next run."""
        import tempfile

        self.work_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.work_dir, 0o700)
        os.environ["TMPDIR"] = str(self.work_dir)   # worker processes too
        tempfile.tempdir = None                      # re-read by the next gettempdir()
        return self.work_dir

    def close(self) -> None:
        """The end of the run, on every exit path that runs code: temp files gone, lock released."""
        if self._lock_fd is None:
            return
        try:
            remove_leftovers(self.path)
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            _HELD.pop(os.path.realpath(self.path / LOCK_FILE), None)
            os.close(self._lock_fd)   # the lock file stays: deleting it would let two runs lock two files
            self._lock_fd = None

    def start_logging(self, secret: Optional[str]) -> None:
        """Log to log.txt (rank 0 only: every line, with time, level and logger) and to stderr (tao's own
        lines, short: ``progress.terminal_handler``), masking the key everywhere."""
        from tao_launcher.core.progress import terminal_handler

        root = logging.getLogger()
        root.setLevel(logging.INFO if self.placement.is_output_owner else logging.WARNING)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handlers = [terminal_handler()]
        if self.placement.is_output_owner:
            handlers.append(logging.FileHandler(self.path / LOG_FILE, encoding="utf-8"))
            handlers[-1].setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s",
                                                        "%Y-%m-%d %H:%M:%S"))
        for handler in handlers:
            handler.addFilter(SecretFilter(secret))
            handler.addFilter(lambda record: not _is_noise(record))
            root.addHandler(handler)
        quiet_libraries()
        for note in self.notes:
            log.warning(note)

    def save_spec(self, text: str) -> None:
        if self.placement.is_output_owner:
            (self.path / SPEC_FILE).write_text(text)

    def record(self, metrics: Optional[Dict[str, Any]] = None, **artifacts: str) -> None:
        """Add metrics and artifact paths to status.json as soon as they exist."""
        if not self.placement.is_output_owner:
            return
        self.status["metrics"].update(metrics or {})
        self.status["artifacts"].update({k: str(v) for k, v in artifacts.items()})
        self._write_status()

    def end(self, state: str, message: Optional[str] = None) -> None:
        if not self.placement.is_output_owner or not self.status:
            return
        self.status.update(state=state, ended=now(), message=message)
        self._write_status()
        if state != "finished":
            if self._put_back():
                logging.getLogger("tao").warning("the run did not finish, so the files --overwrite was replacing are "
                                                 "back in %s (this run's log: %s)", self.path, FAILED_LOG)
        elif (self.path / REPLACED_DIR).is_dir():
            # out of put_back's reach at once (a kill -9 half way through deleting would have it put back half
            # the earlier run over this finished one); the next run removes .tao-tmp/ if this one cannot
            trash = self.path / WORK_DIR / REPLACED_DIR
            trash.parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(self.path / REPLACED_DIR, trash)
            pause_point("overwrite-done")
            shutil.rmtree(trash, ignore_errors=True)

    def _put_back(self) -> bool:
        return put_back(self.path)

    def _write_status(self) -> None:
        write_json_atomic(self.path / STATUS_FILE, self.status)

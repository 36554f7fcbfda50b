"""Fault tests: kill -9, Ctrl-C and a second run, through the real `tao` command (local runner).

Each fault is hit at an exact moment: the run is started with ``TAO_TEST_PAUSE_AT=<point>``
(tao_launcher/core/faultpoints.py), waits there, and is then killed or interrupted. The
promises they check are listed in docs/reliability.md. Runtime: about 3 minutes on 2 cores
(tiny training: 64 sentences of at most 32 tokens, 1 epoch).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import KEY, TAO, status, tao, tao_env, train_args

MAGIC = b"TAOARC\x00\x01"
POINTS = ("train-step", "checkpoint-write", "checkpoint-saved", "validation", "archive-write")


def tiny(data: Path, results: Path, *extra: str) -> list:
    return train_args(data, results, "training_ds.num_samples=64", "validation_ds.num_samples=16",
                      "model.dataset.max_seq_length=32", "trainer.checkpoint_every_n_steps=2", *extra)


def as_in_a_terminal() -> None:
    """In the child, before exec: SIGINT handled as in a terminal's foreground job. A command started in
    the background of a script (``make test &``, CI) inherits SIGINT ignored, and Python keeps it ignored:
    a Ctrl-C sent before the runner takes signals over would then be lost, which no terminal user sees."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Run:
    """A `tao ... train` in its own session (so the test can signal its process group), its output
    collected as it comes."""

    def __init__(self, args: list, env: dict):
        self.proc = subprocess.Popen(TAO + [str(a) for a in args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                     preexec_fn=as_in_a_terminal)
        self.lines: list = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, condition, what: str, timeout: float = 240):
        deadline = time.time() + timeout
        while not condition():
            assert self.proc.poll() is None, f"tao ended ({self.proc.returncode}) before {what}:\n{self.output}"
            assert time.time() < deadline, f"timed out waiting for {what}:\n{self.output}"
            time.sleep(0.05)

    def finish(self, timeout: float = 240) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code


def env_for(tmp_path: Path, pause: str | None = None) -> dict:
    """A private HOME and TMPDIR (so that a decrypted file left in the temp folder would be seen)."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    extra = {"TMPDIR": str(tmp_path / "tmp")}
    if pause:
        extra.update(TAO_TEST_PAUSE_AT=pause, TAO_TEST_PAUSE_DIR=str(tmp_path))
    return tao_env(tmp_path / "home", **extra)


def paused_pid(tmp_path: Path, point: str) -> int:
    return int((tmp_path / point).read_text())


def assert_no_leftovers(results: Path, tmp_path: Path) -> None:
    """No temp file, no decrypted model, no readable checkpoint: in the folder or in the temp folder."""
    partials = [p for p in results.rglob("*.partial")]
    assert not partials, partials
    assert not (results / ".tao-tmp").exists()
    assert not list((tmp_path / "tmp").iterdir()), list((tmp_path / "tmp").iterdir())
    ckpt = results / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        assert_encrypted_checkpoint(ckpt)


def assert_encrypted_checkpoint(ckpt: Path) -> None:
    data = ckpt.read_bytes()
    assert data.startswith(MAGIC) and b"state_dict" not in data and b"PK\x03\x04" not in data[:4096]
    assert ckpt.stat().st_mode & 0o777 == 0o600


def assert_consistent_metrics(results: Path) -> None:
    with open(results / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert body and all(len(row) == len(header) for row in body), rows
    steps = [int(row[header.index("step")]) for row in body]
    assert steps == sorted(set(steps)), steps  # each step once, in order


def assert_clean_interrupt(run: Run, code: int) -> None:
    assert code == 130, f"exit {code}:\n{run.output}"
    assert [line for line in run.lines if line.startswith("tao: interrupted")] == ["tao: interrupted"], run.output
    for bad in ("Traceback", "Exception ignored", "KeyboardInterrupt", "tao: error"):
        assert bad not in run.output, run.output


# ----------------------------------------------------------------------------- parts, in-process

def test_metrics_csv_keeps_one_header_and_one_row_per_step(tmp_path):
    from tao_launcher.core.trainer import write_metrics_row

    path = tmp_path / "metrics.csv"
    write_metrics_row(path, {"epoch": 0, "step": 2, "train_loss": 0.7, "val_loss": 0.6, "val_acc": 0.5})
    write_metrics_row(path, {"epoch": 0, "step": 4, "train_loss": 0.6, "val_loss": 0.5, "val_acc": 0.6})
    # a kill after step 4's validation, a resume from step 2's checkpoint: step 4 comes again,
    # without train_loss (none logged yet) and with a metric never seen before
    write_metrics_row(path, {"epoch": 0, "step": 4, "val_loss": 0.4, "val_acc": 0.7, "train_samples_per_sec": 9.5})
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["2", "4"]
    assert rows[1] == {"epoch": "0", "step": "4", "train_loss": "", "val_loss": "0.4", "val_acc": "0.7",
                       "train_samples_per_sec": "9.5"}
    assert rows[0]["train_samples_per_sec"] == ""
    lines = path.read_text().splitlines()
    assert all(line.count(",") == lines[0].count(",") for line in lines)


def test_last_ckpt_is_encrypted_private_and_loads_only_with_the_key(tmp_path):
    import torch

    from tao_launcher.core.trainer import AtomicCheckpointIO
    from tao_launcher.errors import ArchiveError

    state = {"state_dict": {"w": torch.arange(6.0)}, "global_step": 3}
    AtomicCheckpointIO(KEY).save_checkpoint(state, tmp_path / "checkpoints" / "last.ckpt")
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert_encrypted_checkpoint(ckpt)
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.ckpt"]
    loaded = AtomicCheckpointIO(KEY).load_checkpoint(ckpt)
    assert loaded["global_step"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.arange(6.0))
    with pytest.raises(ArchiveError, match="wrong key or corrupted file; resuming needs the key of the run"):
        AtomicCheckpointIO("another-key").load_checkpoint(ckpt)


def test_a_failed_or_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import torch

    from tao_launcher.core.results import write_json_atomic
    from tao_launcher.core.trainer import AtomicCheckpointIO

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    ckpt = tmp_path / "last.ckpt"
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError) as err:
        AtomicCheckpointIO(KEY).save_checkpoint({"x": 1}, ckpt)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(ckpt)  # names last.ckpt, not a temp

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO(KEY).save_checkpoint({"x": 1}, ckpt)
    monkeypatch.setattr(json, "dumps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(tmp_path / "status.json", {"state": "running"})
    assert list(tmp_path.iterdir()) == []


def test_a_killed_run_reads_as_dead_and_a_live_one_holds_the_folder(tmp_path):
    from tao_launcher.core.results import ResultsFolder, read_status, record_killed
    from tao_launcher.errors import UsageError

    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from pathlib import Path; from tao_launcher.core.results import "
                               "ResultsFolder; ResultsFolder(Path(sys.argv[1]), 't', 'train').prepare(False, True); "
                               "print('locked', flush=True); time.sleep(60)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert read_status(tmp_path)["state"] == "running"
        assert record_killed(tmp_path, holder.pid, "killed") is None   # alive: the launcher records nothing
        before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        with pytest.raises(UsageError, match=rf"already in use by another tao run \(pid {holder.pid} on "):
            ResultsFolder(tmp_path, "t", "train").prepare(overwrite=True, resumable=True)
        assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before  # nothing changed
    finally:
        holder.kill()
        holder.wait()
    dead = read_status(tmp_path)
    assert dead["state"] == "dead" and f"pid {holder.pid} on {socket.gethostname()}" in dead["message"]
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "running"  # the file is not rewritten
    folder = ResultsFolder(tmp_path, "t", "train")
    folder.prepare(overwrite=False, resumable=True)
    assert "died without finishing" in folder.notes[0] and f"pid {holder.pid}" in folder.notes[0]
    assert status(tmp_path)["attempt"] == 2 and status(tmp_path)["pid"] == os.getpid()
    folder.close()


def test_the_launcher_records_a_killed_subtask_only_in_its_own_unlocked_running_folder(tmp_path):
    from tao_launcher.core.results import ResultsFolder, record_killed

    earlier = ResultsFolder(tmp_path, "t", "evaluate")   # a finished run, then an --overwrite one that is killed
    earlier.prepare(overwrite=False, resumable=False)
    earlier.end("finished")
    earlier.close()
    killed = ResultsFolder(tmp_path, "t", "train")
    killed.prepare(overwrite=True, resumable=True)
    (tmp_path / ".tao-tmp").mkdir()
    assert record_killed(tmp_path, os.getpid(), "killed") is None   # its lock is held: the run is alive
    killed._release()                                                # kill -9: no end, no close
    assert record_killed(tmp_path, os.getpid() + 1, "killed") is None   # another run's status
    assert status(tmp_path)["state"] == "running"
    sentence = record_killed(tmp_path, os.getpid(), "the train process was killed by SIGKILL")
    assert sentence == (f"the train process was killed by SIGKILL; the files --overwrite was replacing are back "
                        f"in {tmp_path}; rerun the same command to start again")
    assert status(tmp_path)["subtask"] == "evaluate" and status(tmp_path)["state"] == "finished"
    assert not (tmp_path / ".tao-tmp").exists() and not (tmp_path / ".tao-replaced").exists()
    assert record_killed(tmp_path, os.getpid(), "killed") is None     # recorded once


def test_an_interrupt_swallowed_by_a_finalizer_is_raised_again_and_never_printed():
    code = ("import os, signal\n"
            "from tao_launcher.entrypoint import Shutdown\n"
            "shutdown = Shutdown(); shutdown.install(); shutdown.arm()\n"
            "class D:\n"
            "    def __del__(self):\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "        for _ in range(1000): pass\n"   # the handler raises in here, where Python swallows it
            "try:\n"
            "    D()\n"
            "    for _ in range(10**8): pass\n"
            "    print('not interrupted')\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "interrupted" and proc.stderr == "", proc.stdout + proc.stderr


def test_an_interrupt_inside_exec_still_exits_130_not_killed_by_sigint(tmp_path):
    # An interrupt that lands while a module builds a dataclass (exec of a string) used to end
    # `python -m tao_launcher.entrypoint` as killed by SIGINT, after 'tao: interrupted' (CPython 3.11).
    (tmp_path / "interrupted_in_exec.py").write_text(
        "import sys\n"
        "from tao_launcher import entrypoint\n"
        "def run(argv):\n"
        "    exec('raise KeyboardInterrupt')\n"
        "entrypoint.run = run\n"
        "sys.exit(entrypoint.main([]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = subprocess.run([sys.executable, "-m", "interrupted_in_exec"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert (proc.returncode, proc.stderr) == (130, "tao: interrupted\n"), proc.stderr


def test_decrypted_files_go_to_the_results_folders_private_temp_folder(tmp_path, monkeypatch):
    import tempfile

    from tao_launcher.core.archive import open_archive, save_archive
    from tao_launcher.core.results import ResultsFolder, lock_holder
    from tao_launcher.errors import UsageError

    monkeypatch.setenv("TMPDIR", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"secret weights")
    save_archive(tmp_path / "model", tmp_path / "m.tao", KEY, "tao")
    folder = ResultsFolder(tmp_path / "r", "t", "evaluate")
    folder.prepare(overwrite=False, resumable=False)
    work = folder.use_work_dir()
    assert work == tmp_path / "r" / ".tao-tmp" and work.stat().st_mode & 0o777 == 0o700
    with open_archive(tmp_path / "m.tao", KEY) as opened:
        assert opened.parent == work and (opened / "weights.bin").read_bytes() == b"secret weights"
        assert lock_holder(tmp_path / "r")["pid"] == os.getpid()
    with pytest.raises(UsageError, match=rf"in use by another tao run \(pid {os.getpid()} "):
        ResultsFolder(tmp_path / "r", "t", "infer").prepare(overwrite=True, resumable=False)
    folder.close()
    assert not work.exists() and lock_holder(tmp_path / "r") is None
    assert (tmp_path / "r" / ".tao.lock").exists()  # kept: see results.py


# ----------------------------------------------------------------------------- the real command

def test_a_second_run_into_the_same_folder_is_refused_with_the_first_ones_pid(sample_data, tmp_path):
    results = tmp_path / "r"
    first = Run(tiny(sample_data, results), env_for(tmp_path, pause="train-step"))
    first.wait_for((tmp_path / "train-step").exists, "the first training step")
    pid = paused_pid(tmp_path, "train-step")
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
    for extra in ([], ["--overwrite"]):
        second = tao(*tiny(sample_data, results), *extra, env=env_for(tmp_path))
        assert second.returncode == 2, second.stderr
        error = [line for line in second.stderr.splitlines() if line.startswith("tao: error:")]
        assert len(error) == 1 and f"is already in use by another tao run (pid {pid} " in error[0], second.stderr
        assert "Traceback" not in second.stderr
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*")} == before
    os.killpg(first.proc.pid, signal.SIGINT)
    assert_clean_interrupt(first, first.finish())
    assert status(results)["state"] == "interrupted"


@pytest.mark.parametrize("point", ["train-step", "checkpoint-saved", "validation", "archive-write",
                                   "checkpoint-write"])
def test_kill_9_then_rerun_gives_a_valid_archive_consistent_metrics_and_no_leftovers(point, sample_data, tmp_path):
    from tao_launcher.core.archive import open_archive
    from tao_launcher.core.results import read_status

    results = tmp_path / "r"
    run = Run(tiny(sample_data, results), env_for(tmp_path, pause=point))
    run.wait_for((tmp_path / point).exists, point)
    pid = paused_pid(tmp_path, point)
    if point == "archive-write":  # the moment is real: a half-written archive and the staged weights exist
        assert list((results / "checkpoints").glob(".trained-model.tao.*.partial"))
        assert list((results / ".tao-tmp").glob("tao-pack-*/model.safetensors"))
    if point == "checkpoint-write":
        assert list((results / "checkpoints").glob(".last.ckpt.*.partial"))
    os.kill(pid, signal.SIGKILL)   # the subtask only, as the out-of-memory killer would: tao says what happened
    code = run.finish()
    resumes = (results / "checkpoints" / "last.ckpt").exists()
    errors = [line for line in run.lines if line.startswith("tao: error: ")]
    assert code == 128 + signal.SIGKILL and len(errors) == 1 and "Traceback" not in run.output, run.output
    assert errors[0].startswith("tao: error: the train process was killed by SIGKILL (out of memory? see dmesg); "
                                "rerun the same command to " + ("resume from checkpoints/last.ckpt" if resumes
                                                                else "start again")), errors
    failed = read_status(results)
    assert failed["state"] == "failed" and failed["pid"] == pid and failed["message"] == errors[0][len("tao: error: "):]
    if resumes:
        assert_encrypted_checkpoint(results / "checkpoints" / "last.ckpt")
    assert not list((tmp_path / "tmp").iterdir())  # nothing decrypted in the temp folder, even after kill -9
    assert not (results / ".tao-tmp").exists() and not list(results.rglob("*.partial"))   # cleaned at once

    rerun = tao(*tiny(sample_data, results), env=env_for(tmp_path))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert ("resuming from" in rerun.stderr) == resumes, rerun.stderr[-3000:]
    st = status(results)
    assert st["state"] == "finished" and st["attempt"] == 2
    assert not (results / "checkpoints" / "last.ckpt").exists()
    assert_consistent_metrics(results)
    assert_no_leftovers(results, tmp_path)
    with open_archive(results / "checkpoints" / "trained-model.tao", KEY) as folder:
        assert (folder / "model.safetensors").stat().st_size > 1_000_000


# Ctrl-C moments: after the launcher started the subtask (its imports), when the folder is claimed,
# at every pause point, twice in a row, and while the model loads.
MOMENTS = [("launched", 0.0), ("launched", 1.5), ("claimed", 0.0), ("claimed", 2.0)] + \
          [("paused", p) for p in POINTS] + [("twice", "train-step")]


@pytest.mark.parametrize("moment,where", MOMENTS, ids=[f"{m}-{w}" for m, w in MOMENTS])
def test_ctrl_c_to_the_process_group_exits_130_interrupted_every_time(moment, where, sample_data, tmp_path):
    results = tmp_path / "r"
    pause = where if moment in ("paused", "twice") else None
    run = Run(tiny(sample_data, results), env_for(tmp_path, pause=pause))
    if moment == "launched":
        run.wait_for(lambda: any("with the local runner" in line for line in run.lines), "the subtask's start")
        time.sleep(where)
    elif moment == "claimed":
        run.wait_for((results / "status.json").exists, "status.json")
        time.sleep(where)
    else:
        run.wait_for((tmp_path / where).exists, where)
    os.killpg(run.proc.pid, signal.SIGINT)
    if moment == "twice":
        time.sleep(0.3)
        os.killpg(run.proc.pid, signal.SIGINT)
    assert_clean_interrupt(run, run.finish())
    if moment != "launched" or (results / "status.json").exists():
        assert status(results)["state"] == "interrupted"
    if results.exists():
        assert_no_leftovers(results, tmp_path)
        assert not (results / "checkpoints" / "trained-model.tao").exists()

"""Runners: run one subtask, described by a ``Job``, to completion and return its exit code.

Both runners call the same in-container entrypoint (``python -m tao_launcher.entrypoint``)
with the same arguments. The Docker runner passes paths in the container's view of the mounts
file; the local runner runs it in a subprocess on the host with host paths, reading a container
path under a mount destination as its host folder (``TAO_PATH_MAP``) so one command line serves both.
Which runner runs a job is chosen from the registry's ``RUNNERS`` table (``select_runner``): this
module names no subclass of ``Runner`` but its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from tao_launcher.errors import EXIT_INTERRUPTED, UsageError
from tao_launcher.launcher.gpus import check_local_gpus
from tao_launcher.launcher.mounts import MountsConfig
from tao_launcher.paths import PATH_MAP_ENV, PathMap
from tao_launcher.registry import RUNNERS, resolve

RUNNER_ENV = "TAO_RUNNER"
KEY_ENV = "TAO_KEY"            # the model key, for scripts that keep it out of the process list
KEY_FILE_ENV = "TAO_KEY_FILE"  # or a file holding it (for a container run by hand)


@dataclass
class Job:
    """One subtask run; every path is in the container's view."""

    task: str
    subtask: str
    spec: Optional[str] = None
    results: Optional[str] = None
    model: Optional[str] = None
    output: Optional[str] = None
    gpus: int = 1
    gpu_ids: List[str] = field(default_factory=list)   # --gpu-index: which GPUs, not how many
    overwrite: bool = False
    overrides: List[str] = field(default_factory=list)
    key: Optional[str] = field(default=None, repr=False)
    image: Optional[str] = None   # the container image (images.image_for), resolved once by submit

    def entrypoint_args(self) -> List[str]:
        args = [self.task, self.subtask]
        for flag, value in (("-e", self.spec), ("-r", self.results), ("-m", self.model), ("-o", self.output)):
            if value:
                args += [flag, value]
        args += ["-g", str(self.gpus)]
        if self.overwrite:
            args.append("--overwrite")
        return args + list(self.overrides)


class Runner:
    name = "runner"
    chosen_because = ""   # what the automatic choice says when it takes this runner

    def __init__(self, reason: str = ""):
        self.reason = reason   # why the automatic choice fell on this runner, for the user

    @classmethod
    def why_not(cls, mounts: MountsConfig, image: Optional[str]) -> Optional[str]:
        """Why this runner cannot run ``image`` here, or None when it can."""
        return None

    def describe(self) -> str:
        return f"{self.name} runner" + (f" ({self.reason})" if self.reason else "")

    def run(self, job: Job, mounts: MountsConfig) -> int:
        raise NotImplementedError

    def dry_run(self, job: Job, mounts: MountsConfig) -> str:
        """The command line that ``run`` would execute, key masked; nothing runs."""
        raise NotImplementedError


class LocalRunner(Runner):
    """Runs the entrypoint in a host subprocess; no engine, no image, same command line."""

    name = "local"

    def environment(self, job: Job, mounts: MountsConfig) -> Dict[str, str]:
        """What the subtask gets on top of the launcher's own environment: how to read container
        paths inside a spec file (``TAO_PATH_MAP``); Envs and DockerOptions describe a container."""
        env = {PATH_MAP_ENV: PathMap(mounts.mounts).to_json()} if mounts.mounts else {}
        if job.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(job.gpu_ids)
        return env

    def run(self, job: Job, mounts: MountsConfig) -> int:
        check_local_gpus(job.subtask, job.gpu_ids)
        env = dict(os.environ)
        env.update(self.environment(job, mounts))
        env.pop(KEY_FILE_ENV, None)
        if job.key:
            env[KEY_ENV] = job.key   # environment, not argv: /proc/PID/environ is private to the user
        from tao_launcher.launcher.jobs import recorded
        with recorded(job.task, job.subtask, job.results):   # what `tao list` shows, dead or alive
            return run_forwarding_signals(self.command(job), env,
                                          on_killed=lambda pid, signum: report_killed(job, pid, signum))

    def command(self, job: Job) -> List[str]:
        return [sys.executable, "-m", "tao_launcher.entrypoint", *job.entrypoint_args()]

    def dry_run(self, job: Job, mounts: MountsConfig) -> str:
        import shlex

        env = self.environment(job, mounts)
        if job.key:
            env[KEY_ENV] = "***"
        return " ".join(shlex.quote(a) for a in ["env", *(f"{k}={v}" for k, v in env.items()), *self.command(job)])


FORWARD_POLL_S = 0.25      # how soon a signal to the launcher reaches the subtask
RESEND_S = 1.0             # until the subtask ends, a signal is sent again this often (see below)
KILL_AFTER_SIGNALS = 3     # the third Ctrl-C kills a subtask that does not stop


def run_forwarding_signals(command: List[str], env: Dict[str, str],
                           on_killed: Optional[Callable[[int, int], None]] = None) -> int:
    """Run ``command`` and wait for it; SIGINT and SIGTERM are passed on to it as SIGINT.

    Ctrl-C at a terminal reaches the launcher and the subtask together. The subtask acts on the
    first signal and ignores copies (``entrypoint.Shutdown``), so forwarding is always safe, and
    the launcher never ends before it: the last line (``tao: interrupted``) and the exit code (130)
    are the subtask's, once. The subtask starts with SIGINT ignored, until the entrypoint has its
    handler (a Ctrl-C during its imports would end in a KeyboardInterrupt traceback), so the
    signal is sent again every second until it ends. The third signal kills it (SIGKILL), the way
    out of a subtask that hangs; its status.json then reads as ``dead``. A subtask killed by a signal
    nobody here sent (the kernel's out-of-memory killer) is handed to ``on_killed(pid, signal)``, and
    the exit code is the shell's, 128 + the signal.
    """
    signals: List[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: signals.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        child = subprocess.Popen(command, env=env, preexec_fn=_child_setup)
        forwarded, sent_at = 0, 0.0
        while True:
            try:
                code = child.wait(timeout=FORWARD_POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if len(signals) >= KILL_AFTER_SIGNALS:
                child.kill()
            elif len(signals) > forwarded or (signals and time.monotonic() - sent_at >= RESEND_S):
                forwarded, sent_at = len(signals), time.monotonic()
                child.send_signal(signal.SIGINT)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code == 0:
        return 0   # the run was recorded as finished before a signal could stop it
    if signals or code in (-signal.SIGINT, EXIT_INTERRUPTED):
        if code < 0:   # killed before it could say so itself
            print(f"tao: interrupted (the subtask was killed by {signal_name(-code)} before it stopped cleanly)",
                  file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    if code < 0 and on_killed is not None:
        on_killed(child.pid, -code)
    return code if code >= 0 else 128 - code


def report_killed(job: Job, pid: int, signum: int) -> None:
    """The subtask died by a signal it could not handle, and so said nothing: say what happened and record it
    in its status.json (``core.results.record_killed``), with what a rerun does (train resumes)."""
    from tao_launcher.core.results import record_killed

    hint = " (out of memory? see dmesg)" if signum == signal.SIGKILL else ""
    cause = f"the {job.subtask} process was killed by {signal_name(signum)}{hint}"
    sentence = (record_killed(Path(job.results), pid, cause) if job.results else None) or \
        f"{cause}; rerun the same command"
    print(f"tao: error: {sentence}", file=sys.stderr, flush=True)


def signal_name(signum: int) -> str:
    """SIGSEGV rather than 11: the name tells a crash at exit from a kill."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _child_setup() -> None:
    """In the child, before exec: SIGINT ignored until the entrypoint installs its handler, and (Linux)
    SIGKILL when the launcher dies (kill -9 tao must not leave training running)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def requested_runner(flag: Optional[str]) -> Optional[str]:
    """The runner the user named: --runner, else $TAO_RUNNER; None leaves the choice to the mounts file."""
    return flag or os.environ.get(RUNNER_ENV) or None


def runner_class(name: str) -> type:
    """The ``Runner`` subclass that ``RUNNERS`` names ``name``, imported now."""
    return resolve(RUNNERS[name])


def select_runner(requested: Optional[str], mounts: MountsConfig, image: Optional[str] = None) -> Runner:
    """--runner, else $TAO_RUNNER, else the mounts file's Runner, else the first runner of ``RUNNERS``
    that can run ``image`` here.

    The automatic choice takes Docker only when all it needs is there: a mounts file with
    Mounts (the container sees nothing else), an engine that answers, and the image. Otherwise
    it takes the local runner and says why, instead of failing on a machine without Docker.
    """
    choice = requested_runner(requested) or mounts.runner
    if choice is not None:
        if choice not in RUNNERS:
            raise UsageError(f"unknown runner {choice!r}: use " + " or ".join(f"--runner {n}" for n in RUNNERS))
        chosen_by = ("the mounts file's Runner" if not requested_runner(requested)
                     else f"{RUNNER_ENV}={choice}" if choice == os.environ.get(RUNNER_ENV) else f"--runner {choice}")
        return runner_class(choice)(f"chosen by {chosen_by}")
    *preferred, fallback = RUNNERS
    passed_over = ""
    for name in preferred:
        cls = runner_class(name)
        passed_over = cls.why_not(mounts, image)
        if passed_over is None:
            return cls(cls.chosen_because)
    return runner_class(fallback)(passed_over)   # says why the last preferred runner could not run

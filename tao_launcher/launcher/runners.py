"""Runners: run one subtask, described by a ``Job``, to completion and return its exit code.

Both runners call the same in-container entrypoint (``python -m tao_launcher.entrypoint``)
with the same arguments, in the container's view of paths. The local runner runs it in a
subprocess on the host and tells it how to map container paths back (``TAO_PATH_MAP``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from tao_launcher.errors import EXIT_INTERRUPTED, UsageError
from tao_launcher.launcher.mounts import MountsConfig, PathMap

RUNNER_ENV = "TAO_RUNNER"
KEY_ENV = "TAO_KEY"            # the model key, for scripts that keep it out of the process list
KEY_FILE_ENV = "TAO_KEY_FILE"  # or a file holding it (the Docker runner uses this)
PATH_MAP_ENV = "TAO_PATH_MAP"


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

    def __init__(self, reason: str = ""):
        self.reason = reason   # why the automatic choice fell on this runner, for the user

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
        """What the subtask gets on top of the launcher's own environment."""
        env = dict(mounts.envs)
        env[PATH_MAP_ENV] = PathMap(mounts.mounts).to_json()
        gpu_ids = job.gpu_ids or [str(i) for i in mounts.docker_options.get("gpu_ids") or []]
        if gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
        return env

    def run(self, job: Job, mounts: MountsConfig) -> int:
        env = dict(os.environ)
        env.update(self.environment(job, mounts))
        env.pop(KEY_FILE_ENV, None)
        if job.key:
            env[KEY_ENV] = job.key   # environment, not argv: /proc/PID/environ is private to the user
        return run_forwarding_signals(self.command(job), env)

    def command(self, job: Job) -> List[str]:
        return [sys.executable, "-m", "tao_launcher.entrypoint", *job.entrypoint_args()]

    def dry_run(self, job: Job, mounts: MountsConfig) -> str:
        import shlex

        env = self.environment(job, mounts)
        if job.key:
            env[KEY_ENV] = "***"
        return " ".join(shlex.quote(a) for a in ["env", *(f"{k}={v}" for k, v in env.items()), *self.command(job)])


def run_forwarding_signals(command: List[str], env: Dict[str, str]) -> int:
    """Run ``command``; SIGINT/SIGTERM are passed on as SIGINT so the subtask can stop cleanly.

    An interrupted run always ends with 130, even if the child then exits 0.
    """
    child = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    interrupted = []

    def forward(signum, _frame):
        interrupted.append(signum)
        if len(interrupted) > 1:       # a second Ctrl-C: stop waiting for a clean exit
            child.kill()
        else:
            child.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if interrupted or code in (-signal.SIGINT, EXIT_INTERRUPTED):
        return EXIT_INTERRUPTED
    return code if code >= 0 else 128 - code


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the launcher dies (kill -9 tao must not leave training running)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def select_runner(requested: Optional[str], mounts: MountsConfig, image: Optional[str] = None) -> Runner:
    """--runner, else $TAO_RUNNER, else the mounts file's Runner, else Docker where it can run ``image``.

    The automatic choice takes Docker only when all it needs is there: a mounts file with
    Mounts (the container sees nothing else), an engine that answers, and the image. Otherwise
    it takes the local runner and says why, instead of failing on a machine without Docker.
    """
    choice = requested or os.environ.get(RUNNER_ENV) or mounts.runner
    if choice not in (None, "docker", "local"):
        raise UsageError(f"unknown runner {choice!r}: use --runner docker or --runner local")
    if choice == "local":
        return LocalRunner()
    from tao_launcher.launcher.docker_runner import DockerRunner, why_not_docker
    if choice == "docker":
        return DockerRunner()
    reason = why_not_docker(mounts, image)
    return LocalRunner(reason) if reason else DockerRunner("an engine answers and has the image")

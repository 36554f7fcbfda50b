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
    overwrite: bool = False
    overrides: List[str] = field(default_factory=list)
    key: Optional[str] = field(default=None, repr=False)

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

    def describe(self) -> str:
        return f"{self.name} runner"

    def run(self, job: Job, mounts: MountsConfig) -> int:
        raise NotImplementedError


class LocalRunner(Runner):
    """Runs the entrypoint in a host subprocess; no engine, no image, same command line."""

    name = "local"

    def run(self, job: Job, mounts: MountsConfig) -> int:
        env = dict(os.environ)
        env.update(mounts.envs)
        env[PATH_MAP_ENV] = PathMap(mounts.mounts).to_json()
        env.pop(KEY_FILE_ENV, None)
        if job.key:
            env[KEY_ENV] = job.key   # environment, not argv: /proc/PID/environ is private to the user
        command = [sys.executable, "-m", "tao_launcher.entrypoint", *job.entrypoint_args()]
        return run_forwarding_signals(command, env)


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


def select_runner(requested: Optional[str], mounts: MountsConfig) -> Runner:
    """--runner, else $TAO_RUNNER, else the mounts file's Runner, else Docker where an engine answers."""
    choice = requested or os.environ.get(RUNNER_ENV) or mounts.runner
    if choice not in (None, "docker", "local"):
        raise UsageError(f"unknown runner {choice!r}: use --runner docker or --runner local")
    if choice == "local":
        return LocalRunner()
    if choice == "docker":
        from tao_launcher.launcher.docker_runner import DockerRunner
        return DockerRunner()
    from tao_launcher.launcher.docker_runner import DockerRunner, engine_answers
    return DockerRunner() if DockerRunner.available and engine_answers() else LocalRunner()

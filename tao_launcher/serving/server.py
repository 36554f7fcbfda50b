"""``tao serve``: a real Triton Inference Server for the repositories that ``export export_format=TRITON`` wrote.

Host side: no torch here. Two runners:

- ``local``: the ``tritonserver`` binary that the PyPI wheel ``nvidia-pytriton`` ships (Triton 2.51, python
  backend), from tao's *serving environment*: a virtual environment with numpy<2 (Triton's python backend
  breaks on numpy 2), onnxruntime and tao itself, that ``make serve-env`` builds in ``.serve-venv``
  (``TAO_SERVE_ENV`` names another). Three facts make it run, each found the hard way: the backend stub is
  the one built for that environment's Python version (pytriton ships one per version, we link it into a
  private backend folder); it must find that Python's libpython (``LD_LIBRARY_PATH`` gets its LIBDIR and the
  wheel's own libraries); and it ignores ``PYTHONPATH`` but runs the first ``python3`` on ``PATH``, so the
  environment's ``bin`` goes first.
- ``docker``: NVIDIA's Triton container with each repository mounted read-only (the GPU path). Its python
  backend needs tao's serving packages inside (docs/serving.md); ``--dry-run`` prints the command.

The server listens on 127.0.0.1 unless ``--host`` says otherwise. ``tao serve`` waits until every model is
ready, prints the endpoints, and on Ctrl-C or SIGTERM stops the server (SIGTERM, then SIGKILL after
``STOP_GRACE_S``). The server gets SIGKILL when ``tao serve`` dies (``PR_SET_PDEATHSIG``), so ``kill -9`` of
``tao serve`` leaves no server behind. The key of encrypted models reaches the server in its environment
(``TAO_KEY``), never on a command line.

``-r DIR`` (optional) gets ``status.json`` (``starting``, ``serving``, ``stopped`` or ``failed``, the pid, the
endpoints and the models) and ``log.txt``, the server's own log.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tao_launcher.errors import EXIT_INTERRUPTED, TaoError, UsageError
from tao_launcher.core.triton_repository import served_models

SERVE_ENV = "TAO_SERVE_ENV"
DOCKER_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"   # Triton 2.51, the release the pytriton wheel ships
READY_POLL_S = 0.25
STOP_GRACE_S = 20.0
ERROR_LINES = 3  # of the server's log, quoted when it fails to start


@dataclass(frozen=True)
class ServeEnv:
    """Where the serving environment's pieces are."""

    python: Path           # its interpreter
    version: str           # "3.11": picks the backend stub
    libdir: str            # where its libpython is
    pytriton: Path         # the pytriton package folder: tritonserver/bin, backends, stubs
    numpy: str

    @property
    def tritonserver(self) -> Path:
        return self.pytriton / "tritonserver" / "bin" / "tritonserver"


_PROBE = ("import json, sys, sysconfig, numpy, pytriton, onnxruntime, tao_launcher; "
          "from pathlib import Path; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
          "'libdir': sysconfig.get_config_var('LIBDIR'), 'pytriton': str(Path(pytriton.__file__).parent), "
          "'numpy': numpy.__version__}))")


def find_serve_env() -> ServeEnv:
    """The serving environment: ``TAO_SERVE_ENV``, else ``.serve-venv`` beside tao's source; checked by
    asking its interpreter (it must import numpy<2, pytriton, onnxruntime and tao)."""
    named = os.environ.get(SERVE_ENV)
    folder = Path(named) if named else Path(__file__).resolve().parents[2] / ".serve-venv"
    fix = "build it with 'make serve-env' (a virtual environment in .serve-venv), or set TAO_SERVE_ENV to one"
    python = folder / "bin" / "python"
    if not python.exists():
        raise UsageError(f"no serving environment at {folder}: {fix}")
    probe = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"the serving environment {folder} is incomplete ({last}): {fix}")
    found = json.loads(probe.stdout)
    env = ServeEnv(python, found["version"], found["libdir"], Path(found["pytriton"]), found["numpy"])
    if int(env.numpy.split(".")[0]) >= 2:
        raise UsageError(f"the serving environment {folder} has numpy {env.numpy}, and Triton's python backend "
                         f"needs numpy<2: pip install 'numpy<2' there, or rebuild it with 'make serve-env'")
    return env


def backend_folder(env: ServeEnv, into: Path) -> Path:
    """A private backend folder: the wheel's python backend with the stub of the environment's Python."""
    source = env.pytriton / "tritonserver"
    python = into / "backends" / "python"
    python.mkdir(parents=True, exist_ok=True)
    for file in (source / "backends" / "python").iterdir():
        if file.is_file():
            (python / file.name).symlink_to(file)
    stub = source / "python_backend_stubs" / env.version / "triton_python_backend_stub"
    if not stub.exists():
        raise UsageError(f"the Triton wheel in {env.pytriton} has no python backend stub for Python {env.version}: "
                         f"build the serving environment with Python 3.8 to 3.13")
    (python / "triton_python_backend_stub").symlink_to(stub)
    return into / "backends"


@dataclass
class Ports:
    host: str
    http: int
    grpc: int
    riva: Optional[int] = None   # Riva's gRPC API (serving/riva.py), when asked for

    @property
    def local(self) -> str:
        """Where a client on this machine reaches ``host`` (a wildcard address is reached on loopback)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    def check_free(self) -> None:
        """Refuse a port that another process holds, before anything starts."""
        chosen = (("--http-port", self.http), ("--grpc-port", self.grpc), ("--riva-port", self.riva))
        for flag, port in [(f, p) for f, p in chosen if p is not None]:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a port
                try:                                                          # in TIME_WAIT is free
                    probe.bind((self.host, port))
                except OSError as err:
                    raise UsageError(f"port {port} on {self.host} is not free ({err.strerror}): pick another with "
                                     f"{flag}") from None


def local_command(env: ServeEnv, repositories: Sequence[Path], ports: Ports, backends: Path) -> List[str]:
    return [str(env.tritonserver), *(f"--model-repository={r}" for r in repositories),
            f"--backend-directory={backends}", f"--http-address={ports.host}", f"--http-port={ports.http}",
            f"--grpc-address={ports.host}", f"--grpc-port={ports.grpc}", "--allow-metrics=false",
            "--exit-on-error=true", "--strict-readiness=true"]


def local_environment(env: ServeEnv, key: Optional[str]) -> Dict[str, str]:
    out = dict(os.environ)
    libraries = [str(env.pytriton.parent / "nvidia_pytriton.libs"), env.libdir]
    out["LD_LIBRARY_PATH"] = os.pathsep.join(libraries + [p for p in [os.environ.get("LD_LIBRARY_PATH")] if p])
    out["PATH"] = os.pathsep.join([str(env.python.parent), os.environ.get("PATH", "")])
    out.pop("TAO_KEY_FILE", None)
    if key:
        out["TAO_KEY"] = key
    return out


def docker_command(repositories: Sequence[Path], ports: Ports, image: str, key: bool) -> List[str]:
    """``docker run`` of NVIDIA's Triton with each repository mounted read-only; the key, when there is one,
    passes by name from the caller's environment (``-e TAO_KEY``), so its value is not in the command."""
    publish = "" if ports.host in ("0.0.0.0", "") else f"{ports.host}:"
    mounts = [a for i, r in enumerate(repositories) for a in ("-v", f"{r.resolve()}:/models/{i}:ro")]
    return ["docker", "run", "--rm", "--init", "--shm-size=1g", "-p", f"{publish}{ports.http}:8000",
            "-p", f"{publish}{ports.grpc}:8001", *mounts, *(["-e", "TAO_KEY"] if key else []), image,
            "tritonserver", *(f"--model-repository=/models/{i}" for i in range(len(repositories))),
            "--allow-metrics=false", "--exit-on-error=true", "--strict-readiness=true"]


class Status:
    """``status.json`` of ``-r`` (when given), rewritten whole at each change."""

    def __init__(self, folder: Optional[Path]):
        self.folder = folder
        self.value: Dict = {}

    def write(self, **fields) -> None:
        self.value.update(fields)
        if self.folder is None:
            return
        tmp = self.folder / f".status.json.{os.getpid()}.partial"
        tmp.write_text(json.dumps(self.value, indent=2) + "\n")
        os.replace(tmp, self.folder / "status.json")


def ready(ports: Ports, names: Sequence[str]) -> bool:
    """Whether the server and every model answer ready (KServe v2 HTTP)."""
    base = f"http://{ports.local}:{ports.http}/v2"
    try:
        for path in ["/health/ready", *(f"/models/{n}/ready" for n in names)]:
            with urllib.request.urlopen(base + path, timeout=2) as reply:
                if reply.status != 200:
                    return False
    except (urllib.error.URLError, OSError):
        return False
    return True


def failure_lines(log: Path) -> str:
    """Why the server failed, from its log: tao's own sentence when a model could not load (Triton repeats it
    with a traceback), else Triton's first error lines."""
    import re

    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    own = re.search(r"tao: (cannot load .*?)(?:\\n|\"|$)", text, re.M)
    if own:
        return own.group(1)
    lines = [line.strip() for line in text.splitlines()
             if line.startswith("E") and "CudaDriverHelper" not in line or "error while loading" in line]
    return " | ".join(lines[:ERROR_LINES]) or "no error in its log"


def _die_with_parent() -> None:
    """In the server, before exec: SIGKILL when tao serve dies (Linux), so kill -9 leaves no server."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def serve(repositories: Sequence[Path], *, ports: Ports, runner: str, key: Optional[str], results: Optional[Path],
          dry_run: bool = False, image: str = DOCKER_IMAGE, ready_timeout: float = 300.0) -> int:
    """Start the server, wait until every model is ready, serve until a signal; the exit code."""
    models = [m for r in repositories for m in served_models(r)]
    names = [m["model_name"] for m in models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"two repositories hold a model named {twice[0]}: export one again with "
                         f"triton.model_name=<another name>")
    if ports.riva is not None and runner != "local":
        raise UsageError("--riva-port runs Riva's API beside the local runner's server: drop --riva-port, or use "
                         "--runner local")
    if runner == "docker":
        command = docker_command(repositories, ports, image, bool(key) or any(m["encrypted"] for m in models))
        if dry_run:
            print(" ".join(shlex.quote(a) for a in command))
            return 0
        environment = dict(os.environ, **({"TAO_KEY": key} if key else {}))
        private = None
    else:
        env = find_serve_env()
        if dry_run:
            command = local_command(env, repositories, ports, Path("<a private backend folder>"))
            print(" ".join(shlex.quote(a) for a in command))
            return 0
        environment = local_environment(env, key)
    if any(m["encrypted"] for m in models) and not key:
        raise UsageError("the models are encrypted: pass their key with -k (or set TAO_KEY)")
    ports.check_free()
    if runner == "local":  # made only now: a refused or dry run leaves nothing behind
        private = Path(tempfile.mkdtemp(prefix="tao-serve-"))
        command = local_command(env, repositories, ports, backend_folder(env, private))
    if results is not None:
        results.mkdir(parents=True, exist_ok=True)
    status = Status(results)
    log_path = (results or private or Path(tempfile.mkdtemp(prefix="tao-serve-"))) / "log.txt"
    endpoints = {"http": f"http://{ports.host}:{ports.http}", "grpc": f"{ports.host}:{ports.grpc}"}
    signals: List[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: signals.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    started: List[subprocess.Popen] = []   # stopped in reverse: Riva's API, then the server

    def fail(sentence: str):
        for process in reversed(started):
            terminate(process)
        status.write(state="failed", error=sentence)
        raise TaoError(sentence)

    def interrupted() -> int:
        for process in reversed(started):
            terminate(process)
        status.write(state="stopped")
        print("tao: interrupted: the Triton server is stopped", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED

    try:
        with open(log_path, "wb") as log:
            server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        started.append(server)
        status.write(state="starting", pid=os.getpid(), server_pid=server.pid, endpoints=endpoints,
                     models={m["model_name"]: m["task"] for m in models}, log=str(log_path))
        deadline = time.monotonic() + ready_timeout
        while not ready(ports, names):
            if signals:
                return interrupted()
            if server.poll() is not None:
                fail(f"the Triton server stopped while starting: {failure_lines(log_path)}")
            if time.monotonic() > deadline:
                fail(f"the Triton server was not ready within {ready_timeout:.0f} s: {failure_lines(log_path)}")
            time.sleep(READY_POLL_S)
        if ports.riva is not None:
            riva = start_riva(env, ports, {m["model_name"]: m["task"] for m in models}, log_path)
            started.append(riva)
            endpoints["riva"] = f"{ports.host}:{ports.riva}"
            while not listening(ports.local, ports.riva):
                if signals:
                    return interrupted()
                if riva.poll() is not None or time.monotonic() > deadline:
                    fail(f"Riva's API did not start: {failure_lines(log_path)}")
                time.sleep(READY_POLL_S)
        status.write(state="serving", endpoints=endpoints)
        served = ", ".join(f"{m['model_name']} ({m['task']})" for m in models)
        print(f"tao: serving {served}", flush=True)
        riva_line = f", Riva's gRPC API at {endpoints['riva']}" if "riva" in endpoints else ""
        print(f"tao: KServe v2 HTTP at {endpoints['http']}, gRPC at {endpoints['grpc']}{riva_line}; Ctrl-C stops "
              f"the server", flush=True)
        while all(process.poll() is None for process in started) and not signals:
            time.sleep(READY_POLL_S)
        if signals:
            return interrupted()
        which = "the Triton server" if server.poll() is not None else "Riva's API"
        fail(f"{which} stopped by itself: {failure_lines(log_path)}")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if private is not None:
            import shutil

            shutil.rmtree(private, ignore_errors=True)


def start_riva(env: ServeEnv, ports: Ports, models: Dict[str, str], log_path: Path) -> subprocess.Popen:
    """Riva's API (serving/riva.py) in the serving environment, forwarding to the server's gRPC port; its
    output goes to the same log."""
    triton = f"{ports.local}:{ports.grpc}"
    command = [str(env.python), "-m", "tao_launcher.serving.riva", "--host", ports.host, "--port", str(ports.riva),
               "--triton", triton, "--models", json.dumps(models)]
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent)


def listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def terminate(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after ``STOP_GRACE_S``; waits for it to end."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

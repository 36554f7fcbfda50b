"""The Docker runner: one container per subtask, run to completion, streamed live, then removed.

The container is created, attached to, started and waited for by this process; whatever
happens (exit, error, Ctrl-C), the launcher removes it. There is no detach-then-exec: the
container *is* the subtask, so its exit code is the subtask's.

What goes into the container (``plan_container`` builds it; ``--dry-run`` prints it as the
equivalent ``docker run`` line):

- the mounts file's ``Mounts`` as bind mounts (``read_only`` -> ``:ro``) and its ``Envs``;
- ``DockerOptions``: shm_size (default 16G: DataLoader workers share tensors through /dev/shm,
  and Docker's own 64M default breaks them), ulimits (default memlock unlimited, stack 64 MiB,
  as NVIDIA's PyTorch containers recommend), network, ports, user, privileged, ipc_mode, gpu_ids;
- the invoking user's UID:GID unless ``DockerOptions.user`` says otherwise, so every file in
  the results folder belongs to the user (the image sets HOME and the caches to /tmp);
- the key as a file readable only by that user, bind-mounted read-only at ``/run/secrets/tao_key``
  and named by ``TAO_KEY_FILE``: it is in no environment variable, argument or log, so
  ``docker inspect`` and the process list show only the path; the file is deleted as soon as
  the container has started (the bind mount keeps it readable inside);
- GPUs as a device request: ``-g N`` asks for N, ``--gpu-index``/``gpu_ids`` for given ones;
- labels (``tao.*``) that ``tao list`` and ``tao stop`` read; ``--init`` so that signals reach
  the entrypoint and worker processes are reaped.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, Iterator, List, Optional, Tuple

from tao_launcher import __version__
from tao_launcher.errors import EXIT_INTERRUPTED, UsageError
from tao_launcher.launcher.mounts import MountsConfig, PathMap
from tao_launcher.launcher.runners import KEY_FILE_ENV, Job, Runner

CONTAINER_KEY_FILE = "/run/secrets/tao_key"
JOB_LABEL = "tao.job"          # every container tao starts carries it; `tao list` filters on it
DEFAULT_SHM_SIZE = "16G"
DEFAULT_ULIMITS = {"memlock": -1, "stack": 67108864}
STOP_GRACE_S = 30              # after Ctrl-C, how long the subtask gets to record its state
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
NO_GPU_RUNTIME = ("could not select device driver", "nvidia-container-cli", "unknown or invalid runtime name: nvidia")


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def connect(timeout: Optional[float] = None):
    """A docker client whose engine has answered, or a UsageError that says how to get one.

    ``timeout=None`` (no read timeout) is what a long, quiet training run needs.
    """
    try:
        import docker
    except ImportError:  # a base dependency; only a broken install lacks it
        raise UsageError("the Python package 'docker' is missing: pip install 'docker>=7' "
                         "or use --runner local") from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except docker.errors.DockerException as err:
        raise engine_error(err) from None
    except Exception as err:  # requests' connection errors are not DockerExceptions
        raise engine_error(err) from None


def engine_error(err: Exception) -> UsageError:
    host = docker_host()
    text = str(err)
    if "Permission denied" in text or "PermissionError" in text:
        socket = host.replace("unix://", "")
        return UsageError(f"permission denied on the Docker socket {socket}: add your user to the docker group "
                          f"(sudo usermod -aG docker $USER, then log in again) or use --runner local")
    return UsageError(f"no Docker Engine answers at {host}: start one (sudo systemctl start docker, or "
                      f"sudo dockerd &), or run on this machine with --runner local")


def why_not_docker(mounts: MountsConfig, image: Optional[str]) -> Optional[str]:
    """Why the automatic runner choice cannot take Docker here, or None when it can."""
    if not mounts.mounts:
        return "no Mounts in the mounts file, so a container would see none of your files"
    try:
        import docker
        client = docker.from_env(timeout=2)
        client.ping()
    except Exception:
        return f"no Docker Engine answers at {docker_host()}"
    if image:
        try:
            client.images.get(image)
        except Exception:
            return f"the Docker Engine has no image {image} (build it with 'make image')"
    return None


def image_labels(client, image: str) -> Dict[str, str]:
    """The image's labels; a UsageError naming how to build it when the engine does not have it."""
    import docker

    try:
        return client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        raise UsageError(f"image {image} is not in the Docker Engine: build it with 'make image' "
                         f"('make image-offline' without a registry; see containers/README.md), or name "
                         f"an image you have in ~/.tao/config.json") from None


@dataclass
class ContainerPlan:
    """Everything the container is created with; one source for the SDK call and ``--dry-run``."""

    image: str
    command: List[str]
    name: str
    user: str
    volumes: List[Tuple[str, str, bool]] = field(default_factory=list)   # (host, container, read_only)
    environment: Dict[str, str] = field(default_factory=dict)
    labels: Dict[str, str] = field(default_factory=dict)
    shm_size: str = DEFAULT_SHM_SIZE
    ulimits: Dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ULIMITS))
    default_ulimits: set = field(default_factory=set)       # the names in ulimits the user did not set
    network: Optional[str] = None
    ports: Dict[str, int] = field(default_factory=dict)       # container port -> host port
    privileged: bool = False
    ipc_mode: Optional[str] = None
    tty: bool = False
    gpu_count: int = 0
    gpu_ids: List[str] = field(default_factory=list)

    def create_kwargs(self) -> dict:
        from docker.types import DeviceRequest, Ulimit

        kwargs = dict(
            image=self.image, command=self.command, name=self.name, user=self.user, init=True,
            volumes={host: {"bind": dest, "mode": "ro" if ro else "rw"} for host, dest, ro in self.volumes},
            environment=dict(self.environment), labels=dict(self.labels), shm_size=self.shm_size,
            ulimits=[Ulimit(name=n, soft=v, hard=v) for n, v in self.ulimits.items()],
            ports={str(c): h for c, h in self.ports.items()} or None, privileged=self.privileged,
            tty=self.tty, stdin_open=False,
        )
        if self.network:
            kwargs["network_mode"] = self.network
        if self.ipc_mode:
            kwargs["ipc_mode"] = self.ipc_mode
        if self.gpu_ids:
            kwargs["device_requests"] = [DeviceRequest(device_ids=list(self.gpu_ids), capabilities=[["gpu"]])]
        elif self.gpu_count:
            kwargs["device_requests"] = [DeviceRequest(count=self.gpu_count, capabilities=[["gpu"]])]
        return kwargs

    def docker_run_line(self) -> str:
        """The equivalent ``docker run`` command line (the key is a file; its path is shown, never it)."""
        args = ["docker", "run", "--rm", "--init", "--name", self.name, "--user", self.user,
                "--shm-size", self.shm_size]
        args += [f"--ulimit={n}={v}" for n, v in self.ulimits.items()]
        if self.network:
            args += ["--network", self.network]
        for container_port, host_port in self.ports.items():
            args += ["-p", f"{host_port}:{container_port}"]
        if self.privileged:
            args.append("--privileged")
        if self.ipc_mode:
            args += ["--ipc", self.ipc_mode]
        if self.tty:
            args.append("-t")
        if self.gpu_ids:
            args += ["--gpus", f'"device={",".join(self.gpu_ids)}"']
        elif self.gpu_count:
            args += ["--gpus", str(self.gpu_count)]
        for host, dest, ro in self.volumes:
            args += ["-v", f"{host}:{dest}" + (":ro" if ro else "")]
        for name, value in self.environment.items():
            args += ["-e", f"{name}={value}"]
        for name, value in self.labels.items():
            args += ["--label", f"{name}={value}"]
        return " ".join(shlex.quote(a) for a in args + [self.image, *self.command])

    def mount_key(self, key_file: str) -> None:
        """Bind the key file read-only where the entrypoint looks (``TAO_KEY_FILE``)."""
        self.volumes.append((key_file, CONTAINER_KEY_FILE, True))
        self.environment[KEY_FILE_ENV] = CONTAINER_KEY_FILE


def plan_container(job: Job, mounts: MountsConfig) -> ContainerPlan:
    """The container for ``job`` (its image resolved by submit), without the key file."""
    options = mounts.docker_options
    user_ulimits = {str(k): int(v) for k, v in (options.get("ulimits") or {}).items()}
    host_results = PathMap(mounts.mounts).to_host(job.results or job.output or "")
    return ContainerPlan(
        image=job.image, command=job.entrypoint_args(),
        name=f"tao-{job.task}-{job.subtask}-{secrets.token_hex(3)}".replace("_", "-"),
        user=str(options.get("user") or f"{os.getuid()}:{os.getgid()}"),
        volumes=[(str(m.source), m.destination, m.read_only) for m in mounts.mounts],
        environment=dict(mounts.envs),
        labels={JOB_LABEL: "1", "tao.task": job.task, "tao.subtask": job.subtask, "tao.results": host_results,
                "tao.started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tao.version": __version__},
        shm_size=str(options.get("shm_size") or DEFAULT_SHM_SIZE),
        ulimits={**DEFAULT_ULIMITS, **user_ulimits},
        default_ulimits=set(DEFAULT_ULIMITS) - set(user_ulimits),
        network=options.get("network"), ports=dict(options.get("ports") or {}),
        privileged=bool(options.get("privileged", False)), ipc_mode=options.get("ipc_mode"),
        tty=bool(options.get("tty", False)),
        gpu_count=job.gpus, gpu_ids=[str(i) for i in (job.gpu_ids or options.get("gpu_ids") or [])],
    )


@contextmanager
def key_file(key: Optional[str], user: str) -> Iterator[Optional[str]]:
    """The key in a fresh file (mode 0600, in a 0700 folder) that only the container's user reads."""
    if not key:
        yield None
        return
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = tempfile.mkdtemp(prefix="tao-key-", dir=runtime if runtime and os.path.isdir(runtime) else None)
    try:
        path = os.path.join(folder, "key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        uid, _, gid = user.partition(":")
        if os.getuid() == 0 and uid.isdigit() and int(uid) != 0:   # root running as another user
            os.chown(path, int(uid), int(gid) if gid.isdigit() else -1)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class DockerRunner(Runner):
    name = "docker"

    def dry_run(self, job: Job, mounts: MountsConfig) -> str:
        plan = plan_container(job, mounts)
        if job.key:
            plan.mount_key("KEY_FILE")
        return plan.docker_run_line()

    def run(self, job: Job, mounts: MountsConfig) -> int:
        from tao_launcher.launcher.images import version_warning

        client = connect()
        warning = version_warning(job.image, image_labels(client, job.image))
        if warning:
            print(f"tao: warning: {warning}", file=sys.stderr, flush=True)
        plan = plan_container(job, mounts)
        with key_file(job.key, plan.user) as key_path:
            if key_path:
                plan.mount_key(key_path)
            container, output = start_container(client, plan)
            if key_path:   # the started container's bind mount keeps the file; no copy stays on disk
                shutil.rmtree(os.path.dirname(key_path), ignore_errors=True)
            return supervise(container, output)


def start_container(client, plan: ContainerPlan):
    """Create, attach, start. Two things this engine may not allow fall back, with a note:

    - a GPU count without an NVIDIA runtime runs on the CPU (named GPUs are an error instead);
    - default ulimits the engine may not raise (a container sandbox) are left to the engine;
      ulimits the user set in DockerOptions are an error instead.
    """
    import docker

    while True:
        try:
            return _create_attach_start(client, plan)
        except docker.errors.APIError as err:
            text = str(err)
            if (plan.gpu_count or plan.gpu_ids) and any(s in text for s in NO_GPU_RUNTIME):
                plan = _without_gpus(plan)
            elif "error setting rlimit" in text and set(plan.ulimits) & plan.default_ulimits:
                dropped = ", ".join(f"{n}={plan.ulimits[n]}" for n in sorted(plan.default_ulimits))
                print(f"tao: this Docker Engine may not set the default ulimits ({dropped}: operation not "
                      f"permitted), so the container gets the engine's own; set DockerOptions.ulimits to choose",
                      file=sys.stderr, flush=True)
                plan.ulimits = {n: v for n, v in plan.ulimits.items() if n not in plan.default_ulimits}
                plan.default_ulimits = set()
            elif "error setting rlimit" in text:
                raise UsageError(f"the Docker Engine may not set ulimits {plan.ulimits} from DockerOptions "
                                 f"(operation not permitted): lower or remove DockerOptions.ulimits") from None
            else:
                raise UsageError(f"the Docker Engine refused to run {plan.image}: "
                                 f"{getattr(err, 'explanation', None) or text}") from None


def _without_gpus(plan: ContainerPlan) -> ContainerPlan:
    fix = ("install the NVIDIA Container Toolkit and restart the Docker Engine "
           "(https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/)")
    if plan.gpu_ids:
        raise UsageError(f"GPUs {','.join(plan.gpu_ids)} were asked for, but this Docker Engine has no NVIDIA "
                         f"runtime: {fix}, or drop --gpu-index/gpu_ids to run on the CPU")
    print(f"tao: this Docker Engine has no NVIDIA runtime, so the subtask runs on the CPU; to use GPUs, {fix}",
          file=sys.stderr, flush=True)
    plan.gpu_count = 0
    return plan


def _create_attach_start(client, plan: ContainerPlan):
    container = client.containers.create(**plan.create_kwargs())
    try:
        # attached before the start, so not a byte of output is missed
        output = client.api.attach(container.id, stdout=True, stderr=True, stream=True, logs=True, demux=True)
        container.start()
    except BaseException:
        _quietly(container.remove, force=True)
        raise
    return container, output


def supervise(container, output) -> int:
    """Stream the output until the container exits; Ctrl-C/SIGTERM stop it; always remove it."""
    interrupted: List[int] = []
    deadline = threading.Timer(STOP_GRACE_S, _quietly, (container.kill,))
    deadline.daemon = True

    def on_signal(signum, _frame):
        interrupted.append(signum)
        if len(interrupted) == 1:       # the subtask records "interrupted" in status.json, then exits
            _quietly(container.kill, signal="SIGINT")
            deadline.start()
        else:                           # a second Ctrl-C: no more waiting
            _quietly(container.kill)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for out, err in output:
            for data, stream in ((out, sys.stdout), (err, sys.stderr)):
                if data:
                    stream.buffer.write(data)
                    stream.flush()
        code = container.wait()["StatusCode"]
    finally:
        deadline.cancel()
        for s, handler in previous.items():
            signal.signal(s, handler)
        _quietly(container.remove, force=True)
    if interrupted or code == EXIT_INTERRUPTED:
        return EXIT_INTERRUPTED
    return code


def _quietly(call, *args, **kwargs) -> None:
    """Call a docker method whose failure only means the container is already gone."""
    try:
        call(*args, **kwargs)
    except Exception:
        pass


# --- tao list / tao stop ---------------------------------------------------------------------

@dataclass
class JobInfo:
    id: str            # short id, as docker ps shows it
    full_id: str
    name: str
    task: str
    subtask: str
    started: str
    status: str
    results: str


def list_jobs(client) -> List[JobInfo]:
    """Containers started by tao (label ``tao.job``), running or left behind, oldest first."""
    jobs = []
    for c in client.containers.list(all=True, filters={"label": JOB_LABEL}):
        labels = c.labels or {}
        jobs.append(JobInfo(c.short_id, c.id, c.name, labels.get("tao.task", "?"), labels.get("tao.subtask", "?"),
                            labels.get("tao.started", "?"), c.status, labels.get("tao.results", "")))
    return sorted(jobs, key=lambda j: j.started)


def stop_jobs(client, ids: List[str], stop_all: bool, grace_s: int = 10) -> List[JobInfo]:
    """Stop (SIGTERM, then SIGKILL after ``grace_s``) and remove the named tao jobs, or all of them."""
    import docker

    jobs = list_jobs(client)
    if stop_all:
        chosen = jobs
    else:
        chosen = []
        for wanted in ids:
            matches = [j for j in jobs if j.name == wanted or j.full_id.startswith(wanted)]
            if len(matches) != 1:
                known = ", ".join(j.id for j in jobs) or "none"
                what = "no tao job" if not matches else "more than one tao job matches"
                raise UsageError(f"{what} {wanted!r}: 'tao list' shows the running jobs (ids: {known})")
            chosen.append(matches[0])
    for job in chosen:
        try:
            container = client.containers.get(job.full_id)
        except docker.errors.NotFound:   # it ended between the listing and now
            continue
        _quietly(container.stop, timeout=grace_s)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the launcher that ran it removes it too; either may win
            try:
                container.remove(force=True)
                break
            except Exception as err:
                if "No such container" in str(err) or "is already in progress" in str(err):
                    break
                time.sleep(0.2)
    return chosen

"""The Docker runner: one container per subtask, run to completion, streamed live, then removed.

The container is created, attached to, started and waited for by this process. There is no
detach-then-exec: the container *is* the subtask, so its exit code is the subtask's. Its life
is tied to the launcher's, whatever ends the launcher:

- the launcher attaches to the container's stdin and keeps it open (``docker run -i``); when
  the launcher dies, even by kill -9, the engine closes that stdin and the entrypoint stops the
  run (``tao_launcher/launcher_link.py``, ``TAO_STOP_ON_EOF``);
- the container is auto-removed (``--rm``) when it exits, so nothing is left as ``Exited``;
- the key travels as the first line of that stdin (``TAO_KEY_STDIN``): it is never in a file,
  an argument, a container setting or a log, so nothing of it can outlive the launcher;
- a container whose launcher died before it started (a kill in the ~0.1 s between create and
  start) stays ``Created``: ``tao list`` shows it as ``dead``, and the user's next Docker run
  removes it.

What goes into the container (``plan_container`` builds it; ``fit_to_engine`` drops what this
engine cannot do, for the run and for ``--dry-run`` alike, which prints the result as the
equivalent ``docker run`` line):

- the mounts file's ``Mounts`` as bind mounts (``read_only`` -> ``:ro``) and its ``Envs``;
- ``DockerOptions``: shm_size (default 16G: DataLoader workers share tensors through /dev/shm,
  and Docker's own 64M default breaks them), ulimits, network, ports, user, privileged,
  ipc_mode, gpu_ids;
- the invoking user's UID:GID unless ``DockerOptions.user`` says otherwise, so every file in
  the results folder belongs to the user (the image sets HOME and the caches to /tmp);
- GPUs as a device request (``-g N`` asks for N, ``--gpu-index``/``gpu_ids`` for given ones),
  with NVIDIA's recommended ulimits for GPU containers (memlock unlimited, stack 64 MiB) unless
  ``DockerOptions.ulimits`` sets its own; subtasks that never use a GPU (``download_specs``,
  ``dataset_convert``) get neither;
- labels (``tao.*``) that ``tao list`` and ``tao stop`` read, among them the invoking user's
  UID (``tao.uid``): each user lists and stops their own jobs unless they pass ``--all-users``;
- ``--init`` so that signals reach the entrypoint and worker processes are reaped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shlex
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Set, Tuple

from tao_launcher import __version__
from tao_launcher.errors import EXIT_INTERRUPTED, UsageError
from tao_launcher.launcher.gpus import NO_ACCELERATOR, gpus_not_here
from tao_launcher.launcher.mounts import MountsConfig
from tao_launcher.launcher.runners import Job, Runner
from tao_launcher.launcher_link import KEY_STDIN_ENV, STOP_ON_EOF_ENV
from tao_launcher.paths import PathMap

JOB_LABEL = "tao.job"          # every container tao starts carries it; `tao list` filters on it
UID_LABEL = "tao.uid"          # the invoking user's UID: whose job it is
HOST_LABEL = "tao.host"        # where the launcher runs, and its pid: whether it still lives
PID_LABEL = "tao.pid"
DEFAULT_SHM_SIZE = "16G"
GPU_ULIMITS = {"memlock": -1, "stack": 67108864}   # NVIDIA's recommendation for GPU containers
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
    except Exception as err:  # DockerException, and requests' connection errors, which are not
        raise engine_error(err) from None


def engine_problem(err: Exception) -> str:
    """Why the engine did not answer, as a phrase: 'cannot reach the Docker socket ...: permission denied'."""
    host = docker_host()
    text = str(err)
    socket_path = host[len("unix://"):] if host.startswith("unix://") else None
    if "Permission denied" in text or "PermissionError" in text:
        return f"cannot reach the Docker socket {socket_path or host}: permission denied"
    if socket_path and not os.path.exists(socket_path):
        return f"no Docker Engine answers at {host}: no such socket"
    return f"no Docker Engine answers at {host}"


def engine_error(err: Exception) -> UsageError:
    problem = engine_problem(err)
    if problem.endswith("permission denied"):
        socket_path = docker_host().replace("unix://", "")
        return UsageError(f"permission denied on the Docker socket {socket_path}: add your user to the docker group "
                          f"(sudo usermod -aG docker $USER, then log in again) or use --runner local")
    return UsageError(f"no Docker Engine answers at {docker_host()}: start one (sudo systemctl start docker, or "
                      f"sudo dockerd &), or run on this machine with --runner local")


def why_not_docker(mounts: Optional[MountsConfig], image: Optional[str]) -> Optional[str]:
    """Why the Docker runner cannot run here (no Mounts, no engine, no image), or None when it can.

    The automatic runner choice takes Docker only when this is None; ``tao info`` says it.
    """
    if mounts is not None and not mounts.mounts:
        return "no Mounts in the mounts file, so a container would see none of your files"
    try:
        import docker
        client = docker.from_env(timeout=2)
        client.ping()
    except Exception as err:
        return engine_problem(err)
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
    ulimits: Dict[str, int] = field(default_factory=dict)
    default_ulimits: Set[str] = field(default_factory=set)   # the names in ulimits that tao chose, not the user
    network: Optional[str] = None
    ports: Dict[str, int] = field(default_factory=dict)       # container port -> host port
    privileged: bool = False
    ipc_mode: Optional[str] = None
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
            stdin_open=True, auto_remove=True,   # stdin: the link to the launcher (StdinOnce)
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

    def drop_default_ulimits(self) -> None:
        self.ulimits = {n: v for n, v in self.ulimits.items() if n not in self.default_ulimits}
        self.default_ulimits = set()

    def docker_run_line(self) -> str:
        """The equivalent ``docker run`` command line. Run by hand, it reads the key as the first
        line of its stdin (type it, or pipe it with the stdin kept open) and stops when stdin ends."""
        args = ["docker", "run", "--rm", "-i", "--init", "--name", self.name, "--user", self.user,
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


def plan_container(job: Job, mounts: MountsConfig) -> ContainerPlan:
    """The container for ``job`` (its image resolved by submit), as asked, before the engine has a say."""
    options = mounts.docker_options
    if options.get("tty"):
        raise UsageError(f"{mounts.path}: DockerOptions.tty is not supported: a terminal in the container would "
                         f"echo the key and keep the container running after tao dies; remove it (the output "
                         f"streams live without it)")
    user_ulimits = {str(k): int(v) for k, v in (options.get("ulimits") or {}).items()}
    host_results = PathMap(mounts.mounts).to_host(job.results or job.output or "")
    uses_gpu = job.subtask not in NO_ACCELERATOR
    gpu_ids = [str(i) for i in (job.gpu_ids or options.get("gpu_ids") or [])] if uses_gpu else []
    gpu_count = job.gpus if uses_gpu else 0
    tao_ulimits = {n: v for n, v in GPU_ULIMITS.items() if n not in user_ulimits} if gpu_ids or gpu_count else {}
    environment = {**mounts.envs, STOP_ON_EOF_ENV: "1"}
    if job.key:
        environment[KEY_STDIN_ENV] = "1"
    return ContainerPlan(
        image=job.image, command=job.entrypoint_args(),
        name=f"tao-{job.task}-{job.subtask}-{secrets.token_hex(3)}".replace("_", "-"),
        user=str(options.get("user") or f"{os.getuid()}:{os.getgid()}"),
        volumes=[(str(m.source), m.destination, m.read_only) for m in mounts.mounts],
        environment=environment,
        labels={JOB_LABEL: "1", UID_LABEL: str(os.getuid()), HOST_LABEL: socket.gethostname(),
                PID_LABEL: str(os.getpid()), "tao.task": job.task, "tao.subtask": job.subtask,
                "tao.results": host_results, "tao.version": __version__,
                "tao.started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
        shm_size=str(options.get("shm_size") or DEFAULT_SHM_SIZE),
        ulimits={**tao_ulimits, **user_ulimits}, default_ulimits=set(tao_ulimits),
        network=options.get("network"), ports=dict(options.get("ports") or {}),
        privileged=bool(options.get("privileged", False)), ipc_mode=options.get("ipc_mode"),
        gpu_count=gpu_count, gpu_ids=gpu_ids,
    )


def fit_to_engine(plan: ContainerPlan, attempt: Callable[[ContainerPlan], object]):
    """``attempt(plan)`` until the engine takes it, dropping what this engine cannot do; its result.

    The one place that decides, for the run (``attempt`` starts the container) and for
    ``--dry-run`` (``attempt`` starts a probe that runs ``true``): so the dry run prints what would
    run. Each drop that changes the outcome is said once, on stderr:

    - GPUs asked by count without a GPU runtime: the run goes to the CPU, and the GPU ulimits
      go with the GPUs (named GPUs are an error instead: they cannot be had);
    - tao's GPU ulimits that the engine may not set (a container sandbox): the engine's own apply;
      ulimits the user set in DockerOptions are an error instead.
    """
    import docker

    while True:
        try:
            return attempt(plan)
        except docker.errors.APIError as err:
            text = str(err)
            if (plan.gpu_count or plan.gpu_ids) and any(s in text for s in NO_GPU_RUNTIME):
                _without_gpus(plan)
            elif "error setting rlimit" in text and plan.default_ulimits:
                dropped = ", ".join(f"{n}={plan.ulimits[n]}" for n in sorted(plan.default_ulimits))
                _notice(f"this Docker Engine may not set the ulimits recommended for GPUs ({dropped}: operation "
                        f"not permitted), so the container gets the engine's own; set DockerOptions.ulimits to choose")
                plan.drop_default_ulimits()
            elif "error setting rlimit" in text:
                raise UsageError(f"the Docker Engine may not set ulimits {plan.ulimits} from DockerOptions "
                                 f"(operation not permitted): lower or remove DockerOptions.ulimits") from None
            else:
                raise UsageError(f"the Docker Engine refused to run {plan.image}: "
                                 f"{getattr(err, 'explanation', None) or text}") from None


def _without_gpus(plan: ContainerPlan) -> None:
    fix = ("install the NVIDIA Container Toolkit and restart the Docker Engine "
           "(https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/)")
    if plan.gpu_ids:
        raise gpus_not_here(plan.gpu_ids, "this Docker Engine has no NVIDIA runtime",
                            f"{fix}, or drop --gpu-index/gpu_ids to run on the CPU")
    _notice(f"this Docker Engine has no NVIDIA runtime, so the subtask runs on the CPU; to use GPUs, {fix}")
    plan.gpu_count = 0
    plan.drop_default_ulimits()


def _notice(text: str) -> None:
    print(f"tao: note: {text}", file=sys.stderr, flush=True)


def probe(client, plan: ContainerPlan) -> None:
    """Start and remove a container with the plan's image, user, GPUs and ulimits that runs ``true``
    (no mounts, no network, no key): the engine refuses it as it would refuse the run."""
    stripped = dataclasses.replace(plan, command=[], name=f"{plan.name}-probe", volumes=[], environment={},
                                   labels={UID_LABEL: plan.labels.get(UID_LABEL, ""), "tao.probe": "1"},
                                   ports={}, network="none")
    kwargs = dict(stripped.create_kwargs(), entrypoint=["true"], stdin_open=False, auto_remove=False)
    container = client.containers.create(**kwargs)
    try:
        container.start()
        container.wait(timeout=60)
    finally:
        _quietly(container.remove, force=True)


class DockerRunner(Runner):
    name = "docker"
    chosen_because = "an engine answers and has the image"

    @classmethod
    def why_not(cls, mounts: MountsConfig, image: Optional[str]) -> Optional[str]:
        return why_not_docker(mounts, image)

    def dry_run(self, job: Job, mounts: MountsConfig) -> str:
        plan = plan_container(job, mounts)
        if plan.gpu_count or plan.gpu_ids or plan.ulimits:   # what the engine may refuse: ask it
            problem = why_not_docker(None, plan.image)
            if problem:
                _notice(f"the engine was not asked what it allows ({problem}): this is the container as "
                        f"planned, and an engine without GPUs or ulimit rights would run less")
            else:
                client = connect(timeout=60)
                fit_to_engine(plan, lambda p: probe(client, p))
        return plan.docker_run_line()

    def run(self, job: Job, mounts: MountsConfig) -> int:
        from tao_launcher.launcher.images import version_warning

        if job.key and ("\n" in job.key or "\r" in job.key):
            raise UsageError("the key contains a line break: pass a key on one line")
        client = connect()
        warning = version_warning(job.image, image_labels(client, job.image))
        if warning:
            print(f"tao: warning: {warning}", file=sys.stderr, flush=True)
        remove_dead_jobs(client)
        plan = plan_container(job, mounts)
        container, link, exit_status = fit_to_engine(plan, lambda p: _create_attach_start(client, p, job.key))
        return supervise(container, link, exit_status)


def _create_attach_start(client, plan: ContainerPlan, key: Optional[str]):
    """Create, attach (stdin too: the link), ask for the exit status, start, send the key."""
    container = client.containers.create(**plan.create_kwargs())
    link = exit_status = None
    try:
        # attached before the start, so not a byte of output is missed
        link = client.api.attach_socket(container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1,
                                                              "logs": 1})
        exit_status = _exit_status_request(client, container.id)
        container.start()
        if key:
            _raw(link).sendall(key.encode() + b"\n")
    except BaseException:
        _quietly(container.remove, force=True)
        for handle in (link, exit_status):
            if handle is not None:
                _quietly(handle.close)
        raise
    return container, link, exit_status


def _exit_status_request(client, container_id: str):
    """The engine's answer to "wait until it is removed", asked before the start (an auto-removed
    container can be gone before a later ask): its body, read at the end, holds the exit code.
    The engine sends the headers once the wait is registered; docker-py's public ``wait`` would
    block until the end, hence its request helpers."""
    api = client.api
    response = api._post(api._url("/containers/{0}/wait", container_id), params={"condition": "removed"},
                         stream=True, timeout=None)
    api._raise_for_status(response)
    return response


def _raw(link):
    return getattr(link, "_sock", link)


def supervise(container, link, exit_status) -> int:
    """Stream the output until the container exits; Ctrl-C/SIGTERM stop it; make sure it is gone."""
    from docker.utils.socket import STDERR, frames_iter

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
    code = None
    try:
        for stream_id, data in frames_iter(link, False):
            stream = sys.stderr if stream_id == STDERR else sys.stdout
            stream.buffer.write(data)
            stream.flush()
        code = json.loads(exit_status.content or b"{}").get("StatusCode")
    finally:
        deadline.cancel()
        for s, handler in previous.items():
            signal.signal(s, handler)
        _quietly(container.remove, force=True)
        _quietly(link.close)
        _quietly(exit_status.close)
    if interrupted or code == EXIT_INTERRUPTED:
        return EXIT_INTERRUPTED
    if code is None:
        raise UsageError(f"the Docker Engine did not report how container {container.name} ended: "
                         f"see the Docker Engine's log")
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
    uid: str
    task: str
    subtask: str
    started: str
    status: str        # running, starting, dead (its launcher died), orphaned (dying: its launcher died)
    results: str


def launcher_gone(labels: Dict[str, str]) -> bool:
    """Whether the launcher that started a container is known to be dead (it ran on this host)."""
    from tao_launcher.launcher.jobs import launcher_alive

    pid = labels.get(PID_LABEL, "")
    return labels.get(HOST_LABEL) == socket.gethostname() and pid.isdigit() and not launcher_alive(int(pid))


def job_status(container_status: str, labels: Dict[str, str]) -> str:
    gone = launcher_gone(labels)
    if container_status == "running":
        return "orphaned" if gone else "running"
    if container_status == "created":
        return "dead" if gone else "starting"
    if container_status in ("exited", "dead"):
        return "dead"
    return container_status


def list_jobs(client, all_users: bool = False) -> List[JobInfo]:
    """The user's containers started by tao (all users' with ``all_users``), oldest first."""
    labels = [JOB_LABEL] if all_users else [JOB_LABEL, f"{UID_LABEL}={os.getuid()}"]
    jobs = []
    for c in client.containers.list(all=True, filters={"label": labels}, ignore_removed=True):
        tags = c.labels or {}
        jobs.append(JobInfo(c.short_id, c.id, c.name, tags.get(UID_LABEL, "?"), tags.get("tao.task", "?"),
                            tags.get("tao.subtask", "?"), tags.get("tao.started", "?"), job_status(c.status, tags),
                            tags.get("tao.results", "")))
    return sorted(jobs, key=lambda j: j.started)


def remove_dead_jobs(client) -> None:
    """Remove the user's containers that never ran or ended because their launcher died."""
    for job in list_jobs(client):
        if job.status == "dead":
            _quietly(client.api.remove_container, job.full_id, force=True)


def stop_jobs(client, ids: List[str], stop_all: bool, grace_s: int = 10, all_users: bool = False) -> List[JobInfo]:
    """Stop (SIGTERM, then SIGKILL after ``grace_s``) and remove the named jobs of the user, or all of them."""
    import docker

    jobs = list_jobs(client, all_users)
    if stop_all:
        chosen = jobs
    else:
        chosen = []
        for wanted in ids:
            matches = [j for j in jobs if j.name == wanted or j.full_id.startswith(wanted)]
            if len(matches) != 1:
                raise UsageError(_no_such_job(client, jobs, wanted, bool(matches), all_users))
            chosen.append(matches[0])
    for job in chosen:
        try:
            container = client.containers.get(job.full_id)
        except docker.errors.NotFound:   # it ended between the listing and now
            continue
        _quietly(container.stop, timeout=grace_s)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # auto-removed, or removed by the launcher that ran it; or now
            try:
                container.remove(force=True)
                break
            except Exception as err:
                if "No such container" in str(err) or "is already in progress" in str(err):
                    break
                time.sleep(0.2)
    return chosen


def _no_such_job(client, jobs: List[JobInfo], wanted: str, several: bool, all_users: bool) -> str:
    if several:
        return f"more than one tao job matches {wanted!r}: give more of its ID ('tao list' shows them)"
    if not all_users:
        others = [j for j in list_jobs(client, all_users=True) if j.name == wanted or j.full_id.startswith(wanted)]
        if others:
            return (f"tao job {wanted!r} belongs to UID {others[0].uid}, not to you: add --all-users to stop "
                    f"another user's job")
    known = ", ".join(j.id for j in jobs) or "none"
    return f"no tao job {wanted!r}: 'tao list' shows your jobs (ids: {known})"

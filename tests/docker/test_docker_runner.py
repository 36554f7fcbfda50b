"""The Docker runner against a real Docker Engine and the real image (``make image-offline``).

Every test runs the real ``tao`` command; the subtasks run in real containers. Without an
engine or the image these tests skip, except where ``TAO_REQUIRE_DOCKER=1`` (``.ci/run``
sets it): there a missing engine or image fails them, so CI cannot pass without running them.

The non-root tests run the launcher as UID 4242 with ``setpriv``, from the system Python with
the project's own site-packages on ``PYTHONPATH`` (the venv's Python lives under /root, which
another user cannot enter). The launcher needs no torch, so that is all it needs.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

import tao_launcher
from conftest import KEY, REPO, SAMPLE, TAO, readme_script, tao, tao_env, wait_until
from conftest import train_args as conftest_train_args
from tao_launcher.registry import TASKS

TC = "text_classification"
IMAGE = TASKS[TC].image
REQUIRED = os.environ.get("TAO_REQUIRE_DOCKER") == "1"
OTHER_UID = 4242
SYSTEM_PYTHON = "/usr/bin/python3"


def unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason}; TAO_REQUIRE_DOCKER=1 says these tests must run here")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine():
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as err:
        unavailable(f"no Docker Engine answers ({err})")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        unavailable(f"image {IMAGE} is not built (make image-offline)")
    return client


def tao_jobs(client, root: Path) -> list:
    """The tao containers whose results folder is under ``root``: this test's, and no one else's."""
    return [c for c in client.containers.list(all=True, filters={"label": "tao.job"}, ignore_removed=True)
            if c.labels.get("tao.results", "").startswith(str(root) + "/")]


def key_files() -> set:
    """Every file the launcher could have written the key to (the old runner's /tmp/tao-key-*)."""
    folders = {tempfile.gettempdir(), "/tmp", os.environ.get("XDG_RUNTIME_DIR") or "/tmp"}
    return {str(p) for folder in folders for p in Path(folder).glob("tao-key-*")}


@pytest.fixture
def workspace(engine):
    """Folders any user can reach (pytest's tmp_path is private to root) and a mounts file for them."""
    root = Path(tempfile.mkdtemp(prefix="tao-docker-test-"))
    os.chmod(root, 0o755)
    for name in ("home", "data", "results"):
        (root / name).mkdir()
    mounts = {"Mounts": [{"source": str(root / "data"), "destination": "/data"},
                         {"source": str(root / "results"), "destination": "/results"},
                         {"source": str(SAMPLE), "destination": "/sample", "read_only": True}],
              "Envs": [{"variable": "TAO_TEST_ENV", "value": "from-the-mounts-file"}]}
    (root / "mounts.json").write_text(json.dumps(mounts))
    yield root
    assert tao_jobs(engine, root) == [], "a tao container was left behind"
    shutil.rmtree(root, ignore_errors=True)


def env_for(root: Path, **extra) -> dict:
    return tao_env(root / "home", **{"TAO_MOUNTS_FILE": str(root / "mounts.json"), "TAO_RUNNER": "docker",
                                     "PYTHONDONTWRITEBYTECODE": "1", **extra})


def as_user(uid: int, groups: list) -> list:
    """The launcher command as another user: system Python, the project's code and site-packages."""
    if sys.version_info[:2] != (3, 11) or not os.access(SYSTEM_PYTHON, os.X_OK) or not shutil.which("setpriv"):
        unavailable("the non-root launcher needs /usr/bin/python3 (3.11, like the venv) and setpriv")
    group_flag = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", group_flag, SYSTEM_PYTHON] + TAO[1:]


def user_env(root: Path, **extra) -> dict:
    site = sysconfig.get_paths()["purelib"]
    return env_for(root, PYTHONPATH=f"{REPO}:{site}", **extra)


def out(proc) -> str:
    return f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def socket_gid() -> int:
    return os.stat("/var/run/docker.sock").st_gid


def owners(folder: Path) -> set:
    return {p.stat().st_uid for p in [folder, *folder.rglob("*")]}


def has_nvidia_runtime(client) -> bool:
    return "nvidia" in (client.info().get("Runtimes") or {})


def train_args(results: str, *extra: str, key_flag: bool = True) -> list:
    return conftest_train_args(Path("/data/sst2"), results, *extra, key_flag=key_flag)


CONVERT = [TC, "dataset_convert", "-r", "/results/convert", "source_data_dir=/sample", "target_data_dir=/data/sst2"]


# ----------------------------------------------------------------------------- the workflow

def test_convert_train_infer_in_containers_as_root(engine, workspace):
    env = env_for(workspace)
    convert = tao(*CONVERT, env=env)
    assert convert.returncode == 0, out(convert)
    assert "with the docker runner" in convert.stderr
    assert "tao: note:" not in convert.stderr   # dataset_convert asks for no GPU: nothing to say about them
    assert (workspace / "data" / "sst2" / "train.tsv").is_file()

    train = tao(*train_args("/results/train"), env=env)
    assert train.returncode == 0, out(train)
    if not has_nvidia_runtime(engine):
        assert train.stderr.count("no NVIDIA runtime, so the subtask runs on the CPU") == 1, out(train)
    archive = workspace / "results" / "train" / "checkpoints" / "trained-model.tao"
    assert archive.is_file()
    assert json.loads((workspace / "results" / "train" / "status.json").read_text())["state"] == "finished"

    infer = tao(TC, "infer", "-r", "/results/infer", "-k", KEY, "-m", "/results/train/checkpoints/trained-model.tao",
                "input_file=/data/sst2/dev.tsv", env=env)
    assert infer.returncode == 0, out(infer)
    predictions = json.loads((workspace / "results" / "infer" / "infer_results.json").read_text())
    assert len(predictions) == 60 and {p["label"] for p in predictions} <= {"negative", "positive"}

    assert owners(workspace / "results") == {0} and owners(workspace / "data") == {0}
    logs = "".join(p.read_text() for p in (workspace / "results").rglob("log.txt"))
    for text in (convert.stdout, convert.stderr, train.stdout, train.stderr, infer.stdout, infer.stderr, logs):
        assert KEY not in text
    # the container's own log lines reach tao's stderr (streamed, not fetched afterwards from log.txt)
    assert "text_classification train finished; results in /results/train" in train.stderr


def test_a_non_root_user_owns_everything_the_container_writes(engine, workspace):
    for name in ("home", "data", "results"):
        os.chown(workspace / name, OTHER_UID, OTHER_UID)
    command = as_user(OTHER_UID, [socket_gid()])
    env = user_env(workspace)
    convert = tao(*CONVERT, env=env, launcher=command)
    assert convert.returncode == 0, out(convert)
    train = tao(*train_args("/results/train", "trainer.max_steps=2"), env=env, launcher=command)
    assert train.returncode == 0, out(train)
    assert (workspace / "results" / "train" / "checkpoints" / "trained-model.tao").is_file()
    assert owners(workspace / "results") == {OTHER_UID}
    assert owners(workspace / "data") == {OTHER_UID}
    assert list((workspace / "home").iterdir()) == []   # HOME and caches inside the container, not ours


def test_socket_permission_denied_says_how_to_fix_it(engine, workspace):
    os.chown(workspace / "home", OTHER_UID, OTHER_UID)
    proc = tao(*CONVERT, env=user_env(workspace), launcher=as_user(OTHER_UID, []))
    assert proc.returncode == 2, out(proc)
    assert "permission denied on the Docker socket /var/run/docker.sock" in proc.stderr
    assert "usermod -aG docker" in proc.stderr and "--runner local" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- signals, list, stop

def start_long_train(workspace: Path) -> subprocess.Popen:
    convert = tao(*CONVERT, env=env_for(workspace))
    assert convert.returncode == 0, out(convert)
    # the key in TAO_KEY, so that no process on this machine has it in its arguments
    args = train_args("/results/long", "trainer.max_epochs=50", "trainer.checkpoint_every_n_steps=2", key_flag=False)
    return subprocess.Popen(TAO + [str(a) for a in args], env=env_for(workspace, TAO_KEY=KEY), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_and_removes_the_container_and_exits_130(engine, workspace, signum):
    proc = start_long_train(workspace)
    results = workspace / "results" / "long"
    wait_until(lambda: (results / "checkpoints" / "last.ckpt").exists(), proc, "the first checkpoint", timeout=240)
    assert len(tao_jobs(engine, workspace)) == 1
    proc.send_signal(signum)
    sent = time.monotonic()
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert time.monotonic() - sent < 25, "tao waited for its 30 s kill deadline instead of the container"
    assert tao_jobs(engine, workspace) == []
    assert json.loads((results / "status.json").read_text())["state"] == "interrupted"
    assert KEY not in output


def my_rows(env: dict, root: Path, *flags: str) -> list:
    """The rows of `tao list` whose results folder is under ``root`` (other jobs on the engine are not ours)."""
    proc = tao("list", *flags, env=env)
    assert proc.returncode == 0, out(proc)
    return [line.split() for line in proc.stdout.splitlines()[1:] if f" {root}/" in line]


def test_list_shows_the_job_and_stop_ends_it(engine, workspace):
    env = env_for(workspace)
    before = key_files()
    proc = start_long_train(workspace)
    try:
        row = wait_until(lambda: [r for r in my_rows(env, workspace) if r[2] == "train" and r[4] == "running"],
                         proc, "the job in tao list", timeout=240)
        job_id, task, subtask, started, status_, results = row[0]
        assert (task, subtask, status_) == (TC, "train", "running")
        assert results == str(workspace / "results" / "long") and started.endswith("Z")

        # the key is in no container setting, mount, file or process argument: it came on the container's stdin
        container = engine.containers.get(job_id)
        assert KEY not in json.dumps(container.attrs)
        config, host = container.attrs["Config"], container.attrs["HostConfig"]
        assert "TAO_KEY_STDIN=1" in config["Env"] and "TAO_STOP_ON_EOF=1" in config["Env"]
        assert not any(e.startswith(("TAO_KEY=", "TAO_KEY_FILE=")) for e in config["Env"])
        assert config["OpenStdin"] is True and config["StdinOnce"] is True and host["AutoRemove"] is True
        assert key_files() == before
        assert container.labels["tao.version"] == tao_launcher.__version__
        assert container.labels["tao.uid"] == str(os.getuid()) and container.labels["tao.pid"] == str(proc.pid)
        # the mounts file as the engine applied it: Envs, read-only mount, shm size, user, init
        assert "TAO_TEST_ENV=from-the-mounts-file" in config["Env"]
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        assert mounts["/sample"]["RW"] is False and mounts["/results"]["RW"] is True
        assert set(mounts) == {"/data", "/results", "/sample"}
        assert host["ShmSize"] == 16 * 1024 ** 3 and host["Init"] is True
        assert config["User"] == f"{os.getuid()}:{os.getgid()}"
        wait_until(lambda: (workspace / "results" / "long" / "status.json").exists(), proc, "status.json", timeout=240)
        assert KEY not in container.top(ps_args="-ef").__repr__()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                assert KEY.encode() not in cmdline.read_bytes()
            except OSError:
                pass

        stop = tao("stop", job_id, env=env)
        assert stop.returncode == 0, out(stop)
        assert f"stopped {job_id} (text_classification train" in stop.stdout
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, output
        assert my_rows(env, workspace) == []
        assert tao_jobs(engine, workspace) == []
    finally:
        if proc.poll() is None:
            proc.kill()
    unknown = tao("stop", "0123456789ab", env=env)
    assert unknown.returncode == 2 and "no tao job '0123456789ab'" in unknown.stderr, out(unknown)


@pytest.fixture
def other_users_job(engine, workspace):
    """A container that looks like another user's tao job (labelled UID 4242): made, and removed, here."""
    container = engine.containers.run(
        IMAGE, entrypoint=["sleep", "300"], detach=True, auto_remove=True, network_mode="none",
        name=f"tao-test-other-user-{os.getpid()}",
        labels={"tao.job": "1", "tao.uid": str(OTHER_UID), "tao.task": TC, "tao.subtask": "train",
                "tao.results": str(workspace / "results" / "other"), "tao.started": "2026-01-01T00:00:00Z"})
    yield container
    try:
        container.remove(force=True)
    except Exception:
        pass   # removed by the test, as it should be


def test_list_and_stop_reach_other_users_jobs_only_with_all_users(engine, workspace, other_users_job):
    env = env_for(workspace)
    short = other_users_job.short_id
    assert my_rows(env, workspace) == []
    rows = my_rows(env, workspace, "--all-users")
    assert [(r[0], r[1], r[5]) for r in rows] == [(short, str(OTHER_UID), "running")]

    nothing = tao("stop", "--all", env=env)   # every job of this user (none of this test's); not UID 4242's
    assert nothing.returncode == 0, out(nothing)
    assert short not in nothing.stdout
    refused = tao("stop", short, env=env)
    assert refused.returncode == 2, out(refused)
    assert f"tao job '{short}' belongs to UID {OTHER_UID}, not to you: add --all-users" in refused.stderr
    other_users_job.reload()
    assert other_users_job.status == "running"

    stopped = tao("stop", "--all-users", "--grace", "1", short, env=env)
    assert stopped.returncode == 0 and f"stopped {short}" in stopped.stdout, out(stopped)
    assert tao_jobs(engine, workspace) == []


def test_kill_9_of_the_launcher_ends_the_container_and_leaves_no_key(engine, workspace):
    """kill -9 at two moments: before the container exists (0.25 s) and while it trains (after a checkpoint)."""
    env = env_for(workspace)
    before = key_files()
    early = start_long_train(workspace)   # converts first (a container of its own), then trains
    early_train = subprocess.Popen(TAO + [str(a) for a in train_args("/results/early", "trainer.max_epochs=50")],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.25)
    early_train.kill()
    early_train.wait()
    results = workspace / "results" / "long"
    wait_until(lambda: (results / "checkpoints" / "last.ckpt").exists(), early, "training in the container",
               timeout=240)
    # the early kill lands before the container exists, or (when the launcher is that fast) in the ~0.1 s
    # between create and start: then a never-started container stays Created (documented in docker_runner.py)
    assert sorted(c.status for c in tao_jobs(engine, workspace)) in (["running"], ["created", "running"])
    early.kill()   # SIGKILL: the launcher cannot clean up anything itself
    early.communicate(timeout=30)
    killed = time.monotonic()
    started = lambda: [c for c in tao_jobs(engine, workspace) if c.status != "created"]  # noqa: E731
    while started() and time.monotonic() - killed < 10:
        time.sleep(0.2)
    assert started() == [], "the container outlived its launcher by 10 s"
    # the next Docker run removes a container whose launcher died before starting it
    assert tao("text_classification", "download_specs", "-o", "/results/specs", env=env).returncode == 0
    assert tao_jobs(engine, workspace) == []
    assert key_files() == before
    assert json.loads((results / "status.json").read_text())["state"] == "interrupted"
    assert "the launcher is gone" in (results / "log.txt").read_text()
    assert KEY not in (results / "log.txt").read_text()
    assert my_rows(env, workspace) == []


def notes(proc) -> list:
    return [line for line in proc.stderr.splitlines() if line.startswith("tao: note:")]


def test_dry_run_prints_the_command_that_runs_here_and_it_runs_as_printed(engine, workspace):
    """The dry run asks the engine what it allows (the run's own decision), and its line works pasted."""
    env = env_for(workspace)
    assert tao(*CONVERT, env=env).returncode == 0
    dry = tao(*train_args("/results/dry", "trainer.max_steps=1"), "--dry-run", env=env)
    assert dry.returncode == 0, out(dry)
    argv = shlex.split(dry.stdout.strip().splitlines()[-1])
    assert argv[:4] == ["docker", "run", "--rm", "-i"] and KEY not in dry.stdout + dry.stderr
    if not has_nvidia_runtime(engine):   # the run would drop the GPUs, and the GPU ulimits with them
        assert "--gpus" not in argv and not any(a.startswith("--ulimit") for a in argv), argv
        assert len(notes(dry)) == 1 and "no NVIDIA runtime" in notes(dry)[0], out(dry)
    assert not (workspace / "results" / "dry").exists() and tao_jobs(engine, workspace) == []

    # as printed, by hand: the key is the first line of stdin, which stays open until the run ends
    with open(workspace / "pasted.log", "w") as log:
        pasted = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
        pasted.stdin.write(KEY.encode() + b"\n")
        pasted.stdin.flush()
        try:
            assert pasted.wait(timeout=600) == 0, (workspace / "pasted.log").read_text()[-3000:]
        finally:
            pasted.stdin.close()
            if pasted.poll() is None:
                pasted.kill()
    assert json.loads((workspace / "results" / "dry" / "status.json").read_text())["state"] == "finished"
    assert (workspace / "results" / "dry" / "checkpoints" / "trained-model.tao").is_file()

    cpu = tao(*train_args("/results/cpu", "-g", "0"), "--dry-run", env=env)
    argv = shlex.split(cpu.stdout.strip().splitlines()[-1])
    assert "--gpus" not in argv and not any(a.startswith("--ulimit") for a in argv) and notes(cpu) == []


def test_notices_are_said_once_and_only_where_they_change_the_outcome(engine, workspace):
    env = env_for(workspace)
    specs = tao(TC, "download_specs", "-o", "/results/specs", env=env)
    assert specs.returncode == 0 and notes(specs) == [], out(specs)
    convert = tao(*CONVERT, env=env)
    assert convert.returncode == 0 and notes(convert) == [], out(convert)
    train = tao(*train_args("/results/train", "trainer.max_steps=1"), env=env)
    assert train.returncode == 0, out(train)
    if has_nvidia_runtime(engine):
        assert not any("NVIDIA" in n for n in notes(train)), out(train)
    else:
        assert len(notes(train)) == 1 and "no NVIDIA runtime, so the subtask runs on the CPU" in notes(train)[0]


# ----------------------------------------------------------------------------- errors and exit codes

def test_exit_code_and_message_of_the_subtask_come_through(engine, workspace):
    args = [TC, "dataset_convert", "-r", "/results/bad", "source_data_dir=/sample/missing", "target_data_dir=/data/x"]
    in_docker = tao(*args, env=env_for(workspace))
    local = tao(*args, env=env_for(workspace, TAO_RUNNER="local"))
    assert in_docker.returncode == local.returncode != 0, out(in_docker) + out(local)
    error = [line for line in local.stderr.splitlines() if line.startswith("tao: error:")]
    assert error and error[0].replace(str(SAMPLE), "/sample") in in_docker.stderr   # each names its own view


def test_missing_mount_source_is_named(engine, workspace):
    mounts = json.loads((workspace / "mounts.json").read_text())
    mounts["Mounts"].append({"source": str(workspace / "not-there"), "destination": "/extra"})
    (workspace / "mounts.json").write_text(json.dumps(mounts))
    proc = tao(*CONVERT, env=env_for(workspace))
    assert proc.returncode == 2, out(proc)
    assert f"source folder {workspace / 'not-there'} does not exist: create it (mkdir -p" in proc.stderr
    assert not (workspace / "not-there").exists()


def test_missing_image_says_how_to_build_it(engine, workspace):
    config = workspace / "config.json"
    config.write_text(json.dumps({"images": {TC: "tao-launcher:no-such-tag"}}))
    proc = tao(*CONVERT, env=env_for(workspace, TAO_CONFIG_FILE=str(config)))
    assert proc.returncode == 2, out(proc)
    assert "image tao-launcher:no-such-tag is not in the Docker Engine: build it with 'make image'" in proc.stderr
    assert not (workspace / "results" / "convert").exists()


def test_gpu_indices_without_an_nvidia_runtime_are_refused(engine, workspace):
    if has_nvidia_runtime(engine):
        pytest.skip("this engine has an NVIDIA runtime")
    assert tao(*CONVERT, env=env_for(workspace)).returncode == 0
    proc = tao(*train_args("/results/gpu"), "--gpu-index", "0", env=env_for(workspace))
    assert proc.returncode == 2, out(proc)
    assert "GPUs 0 were asked for, but this Docker Engine has no NVIDIA runtime" in proc.stderr
    assert "NVIDIA Container Toolkit" in proc.stderr
    assert tao_jobs(engine, workspace) == []


def test_an_image_of_another_version_gets_a_warning(engine, workspace):
    old = "tao-launcher:test-version-mismatch"
    dockerfile = f"FROM {IMAGE}\nLABEL org.opencontainers.image.version=0.0.1\n".encode()
    engine.images.build(fileobj=io.BytesIO(dockerfile), tag=old, rm=True)
    try:
        config = workspace / "config.json"
        config.write_text(json.dumps({"images": {"default": old}}))
        proc = tao(TC, "download_specs", "-o", "/results/specs", env=env_for(workspace, TAO_CONFIG_FILE=str(config)))
        assert proc.returncode == 0, out(proc)
        assert f"launcher version {tao_launcher.__version__} and image {old} (tao 0.0.1) differ" in proc.stderr
        assert (workspace / "results" / "specs" / "train.yaml").is_file()
    finally:
        engine.images.remove(old, force=True)


def test_readme_container_section_runs_as_written(engine, tmp_path):
    script = readme_script("## The same in containers")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAO_") and k != "VIRTUAL_ENV"}
    env.update(HOME=str(tmp_path))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    w = tmp_path / "tao-docker"
    assert "with the docker runner" in proc.stderr
    assert len(json.loads((w / "results/infer/infer_results.json").read_text())) == 60
    assert owners(w / "results") == {os.getuid()}
    dry_run = proc.stdout.strip().splitlines()[-1]
    assert dry_run.startswith("docker run --rm -i --init") and "other-key" not in proc.stdout + proc.stderr
    assert tao_jobs(engine, w) == []


# ----------------------------------------------------------------------------- every task in containers

# Small original inputs written by the test, so that these runs need nothing from ../shared.
CONLL = "".join(f"{w} X X {t}\n" if w else "\n" for line in [
    "Jim B-PER|bought O|300 O|shares O|of O|Acme B-ORG|Corp. I-ORG|. O|",
    "Angela B-PER|Merkel I-PER|visited O|Paris B-LOC|on O|Monday O|. O|",
    "The O|United B-ORG|Nations I-ORG|met O|in O|New B-LOC|York I-LOC|. O|",
    "Sales O|of O|Nvidia B-ORG|rose O|in O|Germany B-LOC|and O|Japan B-LOC|. O|",
] * 6 for w, t in [pair.split(" ") if pair else ("", "") for pair in line.split("|")])
PROSE = ("How are you doing today? I am fine, thanks. The United Nations was founded in 1945, after the war. "
         "Where is the station? It is near the old bridge, in the centre of town.\n") * 12

NEW_TASKS = {
    "token_classification": {"files": {"ner_src/train.txt": CONLL, "ner_src/dev.txt": CONLL},
                             "convert": ["source_data_dir=/data/ner_src", "target_data_dir=/data/ner"],
                             "data_dir": "/data/ner", "infer": ["input_batch=[\"Jim bought shares of Acme Corp. .\"]"]},
    "punctuation_and_capitalization": {"files": {"punct_src/prose.txt": PROSE},
                                       "convert": ["source_data_dir=/data/punct_src", "target_data_dir=/data/punct",
                                                   "dev_ratio=0.25"],
                                       "data_dir": "/data/punct",
                                       "infer": ["input_batch=[\"how are you i am fine thanks\"]"]},
    "intent_slot_classification": {"files": {f"isc_src/{split}/{name}": text * 6 for split in ("train", "dev", "test")
                                             for name, text in (("seq.in", "fly from boston to denver\nfares to dallas\n"),
                                                                ("seq.out", "O O B-from O B-to\nO O B-to\n"),
                                                                ("label", "flight\nairfare\n"))},
                                   "convert": ["source_data_dir=/data/isc_src", "target_data_dir=/data/isc"],
                                   "data_dir": "/data/isc", "infer": ["input_batch=[\"fly from boston to dallas\"]"]},
}


@pytest.mark.parametrize("task", sorted(NEW_TASKS))
def test_every_subtask_of_the_word_level_tasks_runs_in_containers(engine, workspace, task):
    """dataset_convert -> train -> evaluate -> infer -> export -> infer_onnx, each in its own container."""
    case = NEW_TASKS[task]
    for name, text in case["files"].items():
        (workspace / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / "data" / name).write_text(text)
    env = env_for(workspace)
    model = "/results/train/checkpoints/trained-model.tao"
    steps = [
        ["dataset_convert", "-r", "/results/convert", *case["convert"]],
        ["train", "-r", "/results/train", "-k", KEY, f"data_dir={case['data_dir']}", "trainer.max_steps=2",
         "trainer.enable_progress_bar=false", "training_ds.batch_size=8"],
        ["evaluate", "-r", "/results/evaluate", "-k", KEY, "-m", model, f"data_dir={case['data_dir']}"],
        ["infer", "-r", "/results/infer", "-k", KEY, "-m", model, *case["infer"]],
        ["export", "-r", "/results/export", "-k", KEY, "-m", model, "export_format=ONNX"],
        ["infer_onnx", "-r", "/results/infer_onnx", "-k", KEY, "-m", "/results/export/exported-model.eonnx",
         *case["infer"]],
    ]
    for step in steps:
        proc = tao(task, *step, env=env)
        assert proc.returncode == 0, out(proc)
        assert "with the docker runner" in proc.stderr and KEY not in proc.stdout + proc.stderr
        status = json.loads((workspace / "results" / step[2].split("/")[-1] / "status.json").read_text())
        assert status["state"] == "finished" and status["task"] == task
    results = workspace / "results"
    assert json.loads((results / "infer" / "infer_results.json").read_text()) == \
        json.loads((results / "infer_onnx" / "infer_results.json").read_text())


def _squad(articles: int) -> dict:
    """A small original SQuAD v2.0 file: two answerable questions and one unanswerable per paragraph."""
    data = []
    for a in range(articles):
        context = (f"The bridge number {a} was built in 18{a + 10} by the engineer Maria Lind. "
                   f"It crosses the river Aar near the old mill of town {a}.")
        qas = [{"id": f"q{a}-when", "question": f"When was bridge number {a} built?",
                "answers": [{"text": f"18{a + 10}", "answer_start": context.index(f"18{a + 10}")}],
                "is_impossible": False},
               {"id": f"q{a}-who", "question": "Who built the bridge?",
                "answers": [{"text": "Maria Lind", "answer_start": context.index("Maria Lind")}],
                "is_impossible": False},
               {"id": f"q{a}-none", "question": "How long is the tunnel?", "answers": [], "is_impossible": True}]
        data.append({"title": f"bridge {a}", "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "v2.0", "data": data}


def test_every_subtask_of_question_answering_runs_in_containers(engine, workspace):
    """dataset_convert (split by article) -> train -> evaluate -> infer -> export -> infer_onnx, each in
    its own container, on container paths; infer_onnx gives infer's answers."""
    (workspace / "data" / "squad.json").write_text(json.dumps(_squad(8)))
    env = env_for(workspace)
    model = "/results/train/checkpoints/trained-model.tao"
    batch = 'input_batch=[{"question": "Who built the bridge?", "context": "The bridge was built by Maria Lind."}]'
    steps = [
        ["dataset_convert", "-r", "/results/convert", "source_file=/data/squad.json",
         "target_data_dir=/data/squad_split", "dev_ratio=0.25"],
        ["train", "-r", "/results/train", "-k", KEY, "training_ds.file=/data/squad_split/train.json",
         "validation_ds.file=/data/squad_split/dev.json", "trainer.max_steps=2", "trainer.enable_progress_bar=false",
         "training_ds.batch_size=8", "model.dataset.max_seq_length=96", "model.dataset.max_query_length=24",
         "model.dataset.doc_stride=32"],
        ["evaluate", "-r", "/results/evaluate", "-k", KEY, "-m", model, "test_ds.file=/data/squad_split/dev.json"],
        ["infer", "-r", "/results/infer", "-k", KEY, "-m", model, batch],
        ["export", "-r", "/results/export", "-k", KEY, "-m", model, "export_format=ONNX"],
        ["infer_onnx", "-r", "/results/infer_onnx", "-k", KEY, "-m", "/results/export/exported-model.eonnx", batch],
    ]
    for step in steps:
        proc = tao("question_answering", *step, env=env)
        assert proc.returncode == 0, out(proc)
        assert "with the docker runner" in proc.stderr and KEY not in proc.stdout + proc.stderr
        status = json.loads((workspace / "results" / step[2].split("/")[-1] / "status.json").read_text())
        assert status["state"] == "finished" and status["task"] == "question_answering"
    assert (workspace / "data" / "squad_split" / "train.json").is_file()
    evaluation = json.loads((workspace / "results" / "evaluate" / "status.json").read_text())["metrics"]
    assert 0 <= evaluation["test_f1"] <= 100 and "test_exact_match" in evaluation
    rows = {name: json.loads((workspace / "results" / name / "infer_results.json").read_text())
            for name in ("infer", "infer_onnx")}
    assert [r["answer"] for r in rows["infer"]] == [r["answer"] for r in rows["infer_onnx"]]
    assert all(abs(a["score"] - b["score"]) < 1e-3 for a, b in zip(rows["infer"], rows["infer_onnx"]))


def test_every_subtask_of_speech_to_text_runs_in_containers(engine, workspace):
    """dataset_convert (an FSDD-layout folder of 8 kHz tones, resampled to 16 kHz) -> train -> evaluate ->
    infer (file_paths, a list of container paths) -> export (.riva) -> infer_onnx, each in its own container;
    infer_onnx gives infer's transcripts."""
    from conftest import sine_wav

    for digit in range(3):
        for take in range(8):
            sine_wav(workspace / "data" / "fsdd" / "recordings" / f"{digit}_tone_{take}.wav", seconds=0.4,
                     hz=200 + 150 * digit + 10 * take)
    env = env_for(workspace)
    model = "/results/train/checkpoints/trained-model.tao"
    files = "file_paths=[/data/fsdd16k/wavs/test/0_tone_0.wav,/data/fsdd/recordings/2_tone_7.wav]"
    steps = [
        ["dataset_convert", "-r", "/results/convert", "dataset_name=fsdd", "source_data_dir=/data/fsdd",
         "target_data_dir=/data/fsdd16k"],
        ["train", "-r", "/results/train", "-k", KEY, "training_ds.manifest_filepath=/data/fsdd16k/train_manifest.json",
         "validation_ds.manifest_filepath=/data/fsdd16k/test_manifest.json", "trainer.max_steps=2",
         "trainer.enable_progress_bar=false", "training_ds.batch_size=4", "model.encoder.channel_scale=0.125"],
        ["evaluate", "-r", "/results/evaluate", "-k", KEY, "-m", model,
         "test_ds.manifest_filepath=/data/fsdd16k/test_manifest.json"],
        ["infer", "-r", "/results/infer", "-k", KEY, "-m", model, files],
        ["export", "-r", "/results/export", "-k", KEY, "-m", model],
        ["infer_onnx", "-r", "/results/infer_onnx", "-k", KEY, "-m", "/results/export/exported-model.riva", files],
    ]
    for step in steps:
        proc = tao("speech_to_text", *step, env=env)
        assert proc.returncode == 0, out(proc)
        assert "with the docker runner" in proc.stderr and KEY not in proc.stdout + proc.stderr
        status = json.loads((workspace / "results" / step[2].split("/")[-1] / "status.json").read_text())
        assert status["state"] == "finished" and status["task"] == "speech_to_text"
    converted = json.loads((workspace / "results" / "convert" / "status.json").read_text())["metrics"]
    assert converted["train_utterances"] == 9 and converted["test_utterances"] == 15
    evaluation = json.loads((workspace / "results" / "evaluate" / "status.json").read_text())["metrics"]
    assert evaluation["utterances"] == 15 and "test_wer" in evaluation
    rows = {name: json.loads((workspace / "results" / name / "infer_results.json").read_text())
            for name in ("infer", "infer_onnx")}
    assert [r["audio_filepath"] for r in rows["infer"]] == ["/data/fsdd16k/wavs/test/0_tone_0.wav",
                                                           "/data/fsdd/recordings/2_tone_7.wav"]
    assert [r["transcript"] for r in rows["infer"]] == [r["transcript"] for r in rows["infer_onnx"]]

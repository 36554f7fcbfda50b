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


def tao_jobs(client) -> list:
    return client.containers.list(all=True, filters={"label": "tao.job"})


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
    assert tao_jobs(engine) == [], "a tao container was left behind"
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
    if not has_nvidia_runtime(engine):
        assert "no NVIDIA runtime, so the subtask runs on the CPU" in convert.stderr
    assert (workspace / "data" / "sst2" / "train.tsv").is_file()

    train = tao(*train_args("/results/train"), env=env)
    assert train.returncode == 0, out(train)
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
    assert len(tao_jobs(engine)) == 1
    proc.send_signal(signum)
    sent = time.monotonic()
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert time.monotonic() - sent < 25, "tao waited for its 30 s kill deadline instead of the container"
    assert tao_jobs(engine) == []
    assert json.loads((results / "status.json").read_text())["state"] == "interrupted"
    assert KEY not in output


def test_list_shows_the_job_and_stop_ends_it(engine, workspace):
    env = env_for(workspace)
    proc = start_long_train(workspace)
    try:
        row = wait_until(lambda: [line for line in tao("list", env=env).stdout.splitlines()[1:]
                                  if " train " in line and " running " in line], proc, "the job in tao list", timeout=240)
        job_id, task, subtask, started, status_, results = row[0].split()
        assert (task, subtask, status_) == (TC, "train", "running")
        assert results == str(workspace / "results" / "long") and started.endswith("Z")

        # the key is in no container setting and no process argument; only the path of its file is
        container = engine.containers.get(job_id)
        assert KEY not in json.dumps(container.attrs)
        assert "TAO_KEY_FILE=/run/secrets/tao_key" in container.attrs["Config"]["Env"]
        assert container.labels["tao.version"] == tao_launcher.__version__
        # the mounts file as the engine applied it: Envs, read-only mount, shm size, user, init
        config, host = container.attrs["Config"], container.attrs["HostConfig"]
        assert "TAO_TEST_ENV=from-the-mounts-file" in config["Env"]
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        assert mounts["/sample"]["RW"] is False and mounts["/results"]["RW"] is True
        assert mounts["/run/secrets/tao_key"]["RW"] is False
        assert not Path(mounts["/run/secrets/tao_key"]["Source"]).exists()   # deleted once the container started
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
        assert tao("list", env=env).stdout.splitlines()[1:] == []
        assert tao_jobs(engine) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            tao("stop", "--all", env=env)
    unknown = tao("stop", "0123456789ab", env=env)
    assert unknown.returncode == 2 and "no tao job '0123456789ab'" in unknown.stderr, out(unknown)
    nothing = tao("stop", "--all", env=env)
    assert nothing.returncode == 0 and "no tao jobs to stop" in nothing.stdout


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
    proc = tao(*CONVERT, "--gpu-index", "0", env=env_for(workspace))
    assert proc.returncode == 2, out(proc)
    assert "GPUs 0 were asked for, but this Docker Engine has no NVIDIA runtime" in proc.stderr
    assert "NVIDIA Container Toolkit" in proc.stderr
    assert tao_jobs(engine) == []


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
    assert dry_run.startswith("docker run --rm --init") and "other-key" not in proc.stdout + proc.stderr
    assert tao_jobs(engine) == []


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

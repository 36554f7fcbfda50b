"""The Docker runner's plan, without an engine: --dry-run, images config, GPU flags, engine errors.

The real containers are in tests/docker; these run anywhere in a fraction of a second each.
"""

import json
import os
import shlex
from pathlib import Path

import pytest

import tao_launcher
from launcher_helpers import assert_no_traceback, clean_env, output, tao  # noqa: F401
from tao_launcher.launcher.images import version_warning

SECRET = "Quartz-Heron-5512-not-a-real-key"
NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture
def folders(tmp_path):
    """data (read-only), results and specs folders with a mounts file naming them."""
    for name in ("data", "results", "specs"):
        (tmp_path / name).mkdir()
    (tmp_path / "data" / "train.tsv").write_text("sentence\tlabel\ngood\t1\n")
    mounts = tmp_path / "mounts.json"
    mounts.write_text(json.dumps({
        "Mounts": [{"source": str(tmp_path / "data"), "destination": "/data", "read_only": True},
                   {"source": str(tmp_path / "results"), "destination": "/results"}],
        "Envs": [{"variable": "HF_HOME", "value": "/results/hf"}]}))
    return tmp_path


def docker_env(home, folders, **extra):
    return clean_env(home, **{"TAO_MOUNTS_FILE": str(folders / "mounts.json"), "TAO_RUNNER": "docker", **extra})


def dry_run_argv(proc) -> list:
    assert proc.returncode == 0, output(proc)
    line = proc.stdout.strip().splitlines()[-1]
    return shlex.split(line)


TRAIN = ["text_classification", "train", "-r", "/results/tc", "model.dataset.num_classes=2",
         "training_ds.file_path=/data/train.tsv", "validation_ds.file_path=/data/train.tsv"]


def test_dry_run_prints_the_docker_run_line_and_runs_nothing(tao, folders):
    proc = tao(*TRAIN, "-k", SECRET, "--dry-run", env=docker_env(tao.home, folders, DOCKER_HOST=NO_ENGINE))
    argv = dry_run_argv(proc)
    assert argv[:4] == ["docker", "run", "--rm", "-i"]   # -i: the key and the launcher's life come on stdin
    assert "--init" in argv
    assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert argv[argv.index("--shm-size") + 1] == "16G"
    assert "--ulimit=memlock=-1" in argv and "--ulimit=stack=67108864" in argv
    volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    assert f"{folders / 'data'}:/data:ro" in volumes
    assert f"{folders / 'results'}:/results" in volumes
    assert len(volumes) == 2   # no key file: the key is never on disk
    env = [argv[i + 1] for i, a in enumerate(argv) if a == "-e"]
    assert {"TAO_KEY_STDIN=1", "TAO_STOP_ON_EOF=1", "HF_HOME=/results/hf"} <= set(env)
    assert not any(e.startswith(("TAO_KEY=", "TAO_KEY_FILE=")) for e in env)
    labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--label"]
    assert "tao.task=text_classification" in labels and "tao.subtask=train" in labels
    assert f"tao.uid={os.getuid()}" in labels
    assert "the engine was not asked what it allows (no Docker Engine answers at" in proc.stderr
    assert f"tao.results={folders / 'results' / 'tc'}" in labels
    image_at = argv.index(f"tao-launcher:{tao_launcher.__version__}-pyt")
    assert argv[image_at + 1:image_at + 5] == ["text_classification", "train", "-r", "/results/tc"]
    assert "--gpus" in argv and argv[argv.index("--gpus") + 1] == "1"
    assert SECRET not in output(proc)
    assert not (folders / "results" / "tc").exists()


def test_dry_run_maps_host_paths_to_the_container(tao, folders):
    proc = tao("text_classification", "train", "-r", folders / "results" / "tc", "-k", SECRET, "--dry-run",
               "model.dataset.num_classes=2", f"training_ds.file_path={folders / 'data' / 'train.tsv'}",
               f"validation_ds.file_path={folders / 'data' / 'train.tsv'}",
               env=docker_env(tao.home, folders, DOCKER_HOST=NO_ENGINE))
    argv = dry_run_argv(proc)
    assert "training_ds.file_path=/data/train.tsv" in argv
    assert argv[argv.index("-r", argv.index("text_classification")) + 1] == "/results/tc"


def test_dry_run_gpu_selection(tao, folders):
    env = docker_env(tao.home, folders, DOCKER_HOST=NO_ENGINE)
    argv = dry_run_argv(tao(*TRAIN, "-k", SECRET, "-g", "2", "--dry-run", env=env))
    assert argv[argv.index("--gpus") + 1] == "2"
    argv = dry_run_argv(tao(*TRAIN, "-k", SECRET, "--gpu-index", "1,3", "--dry-run", env=env))
    assert argv[argv.index("--gpus") + 1] == '"device=1,3"'
    assert argv[argv.index("-g", argv.index("text_classification")) + 1] == "2"
    argv = dry_run_argv(tao(*TRAIN, "-k", SECRET, "-g", "0", "--dry-run", env=env))
    assert "--gpus" not in argv
    for bad in ("a,b", "0,0", "1;2"):
        proc = tao(*TRAIN, "-k", SECRET, "--gpu-index", bad, "--dry-run", env=env)
        assert proc.returncode == 2 and "--gpu-index takes GPU numbers" in proc.stderr, output(proc)


def test_docker_options_shape_the_container(tao, folders):
    mounts = json.loads((folders / "mounts.json").read_text())
    mounts["DockerOptions"] = {"shm_size": "2G", "ulimits": {"stack": 1048576}, "user": "1234:5678",
                               "network": "none", "ports": {"6006": 16006}, "gpu_ids": [0]}
    (folders / "mounts.json").write_text(json.dumps(mounts))
    argv = dry_run_argv(tao(*TRAIN, "-k", SECRET, "--dry-run",
                            env=docker_env(tao.home, folders, DOCKER_HOST=NO_ENGINE)))
    assert argv[argv.index("--shm-size") + 1] == "2G"
    assert "--ulimit=stack=1048576" in argv and "--ulimit=memlock=-1" in argv
    assert argv[argv.index("--user") + 1] == "1234:5678"
    assert argv[argv.index("--network") + 1] == "none"
    assert argv[argv.index("-p") + 1] == "16006:6006"
    assert argv[argv.index("--gpus") + 1] == '"device=0"'


def test_local_dry_run_masks_the_key(tao, folders):
    proc = tao(*TRAIN, "-k", SECRET, "--gpu-index", "2", "--dry-run",
               env=docker_env(tao.home, folders, TAO_RUNNER="local"))
    argv = dry_run_argv(proc)
    assert "TAO_KEY=***" in argv and "CUDA_VISIBLE_DEVICES=2" in argv
    assert argv[argv.index("-m") + 1] == "tao_launcher.entrypoint"
    assert SECRET not in output(proc)


def test_config_file_points_a_task_at_another_image(tao, folders):
    config = folders / "config.json"
    config.write_text(json.dumps({"images": {"default": "example.org/tao:any",
                                             "text_classification": "mine/tao:dev"}}))
    env = docker_env(tao.home, folders, DOCKER_HOST=NO_ENGINE, TAO_CONFIG_FILE=str(config))
    argv = dry_run_argv(tao(*TRAIN, "-k", SECRET, "--dry-run", env=env))
    assert "mine/tao:dev" in argv
    proc = tao("info", env=env)
    assert "text_classification: mine/tao:dev" in proc.stdout, output(proc)


@pytest.mark.parametrize("content, expected", [
    ('{"images": {"text_clasification": "x:y"}}', "unknown task \"text_clasification\"; did you mean text_classification?"),
    ('{"image": {}}', 'unknown key "image"'),
    ('{"images": {"default": 3}}', '"images" must map a task name'),
    ('{"images": ', ":1: not valid JSON"),
])
def test_bad_config_file_is_one_sentence(tao, folders, content, expected):
    config = folders / "config.json"
    config.write_text(content)
    proc = tao(*TRAIN, "-k", SECRET, "--dry-run",
               env=docker_env(tao.home, folders, DOCKER_HOST=NO_ENGINE, TAO_CONFIG_FILE=str(config)))
    assert proc.returncode == 2, output(proc)
    assert expected in proc.stderr and str(config) in proc.stderr
    assert_no_traceback(proc)


def test_version_warning_names_both_versions():
    ours = tao_launcher.__version__
    assert version_warning("img", {"org.opencontainers.image.version": ours}) is None
    text = version_warning("img:old", {"org.opencontainers.image.version": "0.0.1"})
    assert ours in text and "0.0.1" in text and "img:old" in text
    assert "unknown" in version_warning("img", {})


def test_no_engine_is_a_clear_error(tao, folders):
    env = docker_env(tao.home, folders, DOCKER_HOST=NO_ENGINE)
    proc = tao(*TRAIN, "-k", SECRET, env=env)
    assert proc.returncode == 2, output(proc)
    assert f"no Docker Engine answers at {NO_ENGINE}" in proc.stderr
    assert "--runner local" in proc.stderr
    assert_no_traceback(proc)
    assert not (folders / "results" / "tc").exists()
    for command in (["list"], ["stop", "--all"]):   # local jobs are still listed and stopped; Docker ones said missing
        proc = tao(*command, env=env)
        assert proc.returncode == 0, output(proc)
        assert f"tao: note: Docker jobs are not shown: no Docker Engine answers at {NO_ENGINE}" in proc.stderr
    proc = tao("stop", "0123456789ab", env=env)   # a container ID needs the engine
    assert proc.returncode == 2 and "no Docker Engine answers" in proc.stderr, output(proc)


def test_automatic_choice_says_why_it_runs_locally(tao, folders):
    env = clean_env(tao.home, TAO_MOUNTS_FILE=str(folders / "mounts.json"), DOCKER_HOST=NO_ENGINE)
    del env["TAO_RUNNER"]
    proc = tao("info", env=env)
    assert f"runner: local runner (no Docker Engine answers at {NO_ENGINE}: no such socket)" in proc.stdout, output(proc)
    proc = tao("info", env=dict(env, TAO_RUNNER="docker"))
    assert (f"runner: docker runner (chosen by TAO_RUNNER=docker); but it cannot run here: no Docker Engine "
            f"answers at {NO_ENGINE}") in proc.stdout, output(proc)
    env.pop("TAO_MOUNTS_FILE")
    proc = tao("info", env=env)
    assert "local runner (no Mounts in the mounts file" in proc.stdout, output(proc)


def test_stop_needs_ids_or_all(tao):
    proc = tao("stop")
    assert proc.returncode == 2 and "pass --all" in proc.stderr, output(proc)


def test_subtasks_that_use_no_gpu_ask_for_none_and_say_nothing(tao, folders):
    env = docker_env(tao.home, folders, DOCKER_HOST=NO_ENGINE)
    for args in (["text_classification", "download_specs", "-o", "/results/specs"], [*TRAIN, "-k", SECRET, "-g", "0"]):
        proc = tao(*args, "--dry-run", env=env)
        argv = dry_run_argv(proc)
        assert "--gpus" not in argv and not any(a.startswith("--ulimit") for a in argv), argv
        assert "tao: note:" not in proc.stderr, output(proc)   # nothing the engine could refuse: it is not asked


def test_tty_is_refused_in_one_sentence(tao, folders):
    mounts = json.loads((folders / "mounts.json").read_text())
    mounts["DockerOptions"] = {"tty": True}
    (folders / "mounts.json").write_text(json.dumps(mounts))
    proc = tao(*TRAIN, "-k", SECRET, "--dry-run", env=docker_env(tao.home, folders, DOCKER_HOST=NO_ENGINE))
    assert proc.returncode == 2, output(proc)
    assert f"{folders / 'mounts.json'}: DockerOptions.tty is not supported" in proc.stderr
    assert_no_traceback(proc)


def test_list_and_stop_offer_all_users(tao):
    for command in ("list", "stop"):
        proc = tao(command, "--help")
        assert "--all-users" in proc.stdout and "only yours" in proc.stdout, output(proc)


def test_the_container_side_takes_the_key_from_stdin_and_stops_when_stdin_ends():
    """launcher_link without an engine: the key is stdin's first line; stdin's end is SIGTERM to the process."""
    import subprocess
    import sys
    import time

    code = ("import os, signal, sys, time\n"
            "from tao_launcher.launcher_link import follow_launcher\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(130 if os.environ.get('TAO_KEY') == 'k-123' else 1))\n"
            "follow_launcher()\n"
            "print('ready', 'TAO_KEY_STDIN' in os.environ, 'TAO_STOP_ON_EOF' in os.environ, flush=True)\n"
            "time.sleep(60)\n")
    env = dict(os.environ, TAO_KEY_STDIN="1", TAO_STOP_ON_EOF="1")
    env.pop("TAO_KEY", None)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(b"k-123\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"ready False False\n"   # cleared, so worker processes do not read stdin
        closed = time.monotonic()
        proc.stdin.close()
        assert proc.wait(timeout=10) == 130
        assert time.monotonic() - closed < 3
        assert b"the launcher is gone" in proc.stderr.read()
    finally:
        proc.kill()

"""Shared test helpers: run the real `tao` command, the sample data, a model trained once per session."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tao_launcher" / "samples" / "sst2_sample"
DATASETS = Path(os.environ.get("TAO_TEST_DATASETS", REPO.parent / "shared" / "datasets"))
KEY = "k3y-that-must-never-leak-7f9c"
TAO = [sys.executable, "-c", "import sys; sys.argv[0] = 'tao'; from tao_launcher.launcher.cli import run; run()"]


def pytest_configure(config):
    """Every test session gets its own HOME, so that nothing of the developer's (a leftover
    ``~/.tao_mounts.json``, ``~/.tao/config.json``, caches) is read or written by a test.

    Set before collection, so it holds for this process and every ``tao`` it starts; the real
    HOME stays in ``TAO_TEST_REAL_HOME`` for the rare test that must name it."""
    import tempfile

    global SESSION_HOME
    if SESSION_HOME is None:
        SESSION_HOME = Path(tempfile.mkdtemp(prefix="tao-test-home-"))
        os.environ.setdefault("TAO_TEST_REAL_HOME", os.environ.get("HOME", ""))
        os.environ["HOME"] = str(SESSION_HOME)
        for name in [k for k in os.environ if k.startswith("TAO_") and k not in KEEP_TAO_ENV]:
            del os.environ[name]


def pytest_unconfigure(config):
    if SESSION_HOME is not None:
        shutil.rmtree(SESSION_HOME, ignore_errors=True)


SESSION_HOME: Path | None = None
# the TAO_* settings a developer may give the test run itself; every other one is dropped
KEEP_TAO_ENV = {"TAO_TEST_DATASETS", "TAO_REQUIRE_DOCKER", "TAO_TEST_REAL_HOME", "TAO_SERVE_ENV", "TAO_REQUIRE_SERVING"}


def tao_env(tmp_home: Path | None = None, **extra: str) -> dict:
    """The test process's environment without any TAO_* setting of the developer's, local runner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAO_")}
    env.update(TAO_RUNNER="local", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    if tmp_home is not None:
        env["HOME"] = str(tmp_home)
    env.update(extra)
    return env


def tao(*args: str, env: dict | None = None, timeout: float = 600, check: bool = False,
        cwd: Path | None = None, launcher: list = TAO) -> subprocess.CompletedProcess:
    """Run `tao ARGS...` as a user would; returns the finished process with text output.

    ``launcher`` is the command that starts tao (another user's, in the Docker tests)."""
    proc = subprocess.run(launcher + [str(a) for a in args], env=env or tao_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"tao {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def status(results: Path) -> dict:
    return json.loads((results / "status.json").read_text())


def lines(path: Path) -> list:
    return path.read_text(encoding="utf-8").splitlines()


def concurrently(**commands) -> dict:
    """Run ``name=[tao args]`` two at a time; returns the finished processes by name."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(tao, *args) for name, args in commands.items()}
        return {name: future.result() for name, future in futures.items()}


def assert_ok(proc) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


def assert_error(proc, code: int, *fragments: str) -> str:
    """Exit ``code`` with one ``tao: error:`` line holding every fragment, no traceback and no key."""
    assert proc.returncode == code, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tao: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert KEY not in proc.stderr and KEY not in proc.stdout
    return errors[0]


def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"real dataset {path} is absent (the benchmark data lives in ../shared/datasets)")
    return path


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 300):
    """Poll ``condition()`` until it is true (and return it) while ``proc`` still runs."""
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert proc.poll() is None, f"tao ended before {what}:\n{proc.stdout.read()}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def readme_script(heading: str) -> str:
    """The first bash block of the README section ``heading``, to run exactly as written."""
    section = (REPO / "README.md").read_text().split(heading, 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """The packaged SST-2-format sample, converted by dataset_convert."""
    root = tmp_path_factory.mktemp("sample")
    tao("text_classification", "dataset_convert", "-r", root / "convert",
        f"source_data_dir={SAMPLE}", f"target_data_dir={root / 'data'}", check=True)
    return root / "data"


TRAIN_FAST = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "training_ds.batch_size=16"]


def train_args(data: Path, results: Path, *extra: str, key_flag: bool = True) -> list:
    """A short train on ``data`` (container or host paths); ``key_flag=False`` leaves the key to TAO_KEY."""
    return ["text_classification", "train", "-r", results, *(["-k", KEY] if key_flag else []),
            "model.dataset.num_classes=2",
            f"training_ds.file_path={data / 'train.tsv'}", f"validation_ds.file_path={data / 'dev.tsv'}",
            f"model.class_labels.class_labels_file={data / 'labels.txt'}", *TRAIN_FAST, *extra]


@pytest.fixture(scope="session")
def trained(sample_data, tmp_path_factory) -> Path:
    """A model trained once on the sample: results folder of a finished train run."""
    results = tmp_path_factory.mktemp("trained") / "train"
    tao(*train_args(sample_data, results), check=True)
    return results


@pytest.fixture
def copy_of(tmp_path):
    def make(path: Path) -> Path:
        dest = tmp_path / ("copy-" + path.name)
        shutil.copy(path, dest)
        return dest
    return make


def tiny_speech_archive(dest: Path, key: str = KEY, seed: int = 0) -> Path:
    """A real speech_to_text archive with no training: two 16-wide blocks, random (seeded) weights, the character
    vocabulary; for the tests where what matters is how a model is read, run or exported, not what it learned."""
    import torch

    from tao_launcher.asr.blocks import build_blocks
    from tao_launcher.asr.features import MelFeatures
    from tao_launcher.asr.vocabulary import CharVocabulary
    from tao_launcher.core.model import write_model_archive
    from tao_launcher.tasks.speech_to_text.model import SpeechToTextNet, write_payload
    from tao_launcher.tasks.speech_to_text.spec import CHAR_LABELS

    torch.manual_seed(seed)
    blocks = build_blocks("custom", blocks=[{"filters": 16, "kernel": [11], "stride": [2], "separable": True},
                                            {"filters": 16, "kernel": [1]}])
    vocabulary = CharVocabulary(CHAR_LABELS)
    config = {"arch": "custom", "sample_rate": 16000, "preprocessor": MelFeatures(sample_rate=16000).config(),
              "spec_augment": {"freq_masks": 2, "freq_width": 15, "time_masks": 2, "time_width": 0.05},
              "blocks": blocks, "activation": "relu", "vocabulary": "char", "labels": vocabulary.labels,
              "num_classes": len(vocabulary) + 1}
    net = SpeechToTextNet(config)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_model_archive(dest, key, kind="tao", task="speech_to_text", metrics={},
                        write_payload=lambda folder: write_payload(folder, net, vocabulary))
    return dest


def sine_wav(path: Path, seconds: float = 0.5, rate: int = 8000, hz: float = 440.0) -> Path:
    """A mono 16-bit wav of a tone (any audio the speech subtasks can read)."""
    import numpy as np

    from tao_launcher.asr.audio import write_wav

    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate)
    return path

"""The README's Quickstart as a new user meets it: the first block is `make demo` and `make test`;
`make demo` and the "Step by step" block run as written, in a fresh HOME that holds a leftover
~/.tao_mounts.json (Docker runner, folders that do not exist here): no ../shared, no GPU, no Docker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from conftest import REPO, readme_script

POSITIVE, NEGATIVE = "a warm , funny and moving film .", "two hours i will never get back ."


def fresh_home(tmp_path):
    """A new user's environment: HOME is tmp_path, with the mounts file the container section leaves."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".tao_mounts.json").write_text(json.dumps({
        "Mounts": [{"source": str(tmp_path / "gone"), "destination": "/data"}], "Runner": "docker"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAO_") and k != "VIRTUAL_ENV"}
    env.update(HOME=str(home), HF_HUB_OFFLINE="1")
    return home, env


def commands(block: str) -> list:
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_first_block_is_make_demo_and_make_test():
    first = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    assert commands(first) == ["make demo", "make test"]
    assert commands(readme_script("## Quickstart")) == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: install serve-env$", makefile, re.M), "make test must install what is missing first"
    assert " install " in makefile.split("\ndemo:", 1)[1].split("\n\n")[0], "make demo must install first"


def test_make_demo_prints_the_summary_and_predicts_right(tmp_path):
    home, env = fresh_home(tmp_path)
    demo = tmp_path / "demo"
    proc = subprocess.run(["make", "--no-print-directory", "demo", f"DEMO_DIR={demo}", f"VENV={sys.prefix}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    summary = proc.stdout.split("==> demo summary", 1)[1]
    for what in ("accuracy:", "model:", "exported:", "logs:", "time:"):
        assert what in summary, summary
    model = demo / "results/train/checkpoints/trained-model.tao"
    assert str(model) in summary and model.is_file()
    assert (demo / "results/export/exported-model.eonnx").is_file()
    accuracy = json.loads((demo / "results/evaluate/status.json").read_text())["metrics"]["test_acc"]
    assert f"{accuracy:.3f}" in summary and accuracy >= 0.8
    if (demo / "results/train/plots").is_dir():
        assert str(demo / "results/train/plots") in summary
    for step in ("infer", "infer_onnx"):   # obvious sentences, right and confident, from both runtimes
        rows = {r["sentence"]: r for r in json.loads((demo / "results" / step / "infer_results.json").read_text())}
        assert rows[POSITIVE]["label"] == "positive" and rows[POSITIVE]["score"] > 0.8, rows
        assert rows["a tedious , lifeless mess ."]["label"] == "negative", rows
        assert rows[NEGATIVE]["label"] == "negative" and rows[NEGATIVE]["score"] > 0.8, rows
    assert "tao-demo" not in proc.stdout + proc.stderr   # the demo's key is never printed


def test_step_by_step_runs_end_to_end(tmp_path):
    home, env = fresh_home(tmp_path)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_script("### Step by step")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    w = home / "tao-quickstart"
    assert len(list((w / "specs/text_classification").glob("*.yaml"))) == 7
    assert json.loads((w / "results/download_specs/status.json").read_text())["state"] == "finished"
    assert json.loads((w / "results/train/status.json").read_text())["state"] == "finished"
    report = json.loads((w / "results/evaluate/evaluation_report.json").read_text())
    assert report["support"] == 60
    rows = {r["sentence"]: r for r in json.loads((w / "results/infer/infer_results.json").read_text())}
    assert rows[POSITIVE]["label"] == "positive" and rows[NEGATIVE]["label"] == "negative", rows
    onnx = json.loads((w / "results/infer_onnx/infer_results.json").read_text())
    assert len(onnx) == 60
    assert "my-model-key" not in proc.stdout + proc.stderr

"""The README's quickstart, run exactly as written, in a fresh HOME: no ../shared, no GPU, no Docker."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import REPO, readme_script


def test_readme_quickstart_runs_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAO_") and k != "VIRTUAL_ENV"}
    env.update(HOME=str(tmp_path), TAO_RUNNER="local", HF_HUB_OFFLINE="1")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_script("## Quickstart")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    w = tmp_path / "tao-quickstart"
    assert len(list((w / "specs").glob("*.yaml"))) == 7
    assert json.loads((w / "results/train/status.json").read_text())["state"] == "finished"
    report = json.loads((w / "results/evaluate/evaluation_report.json").read_text())
    assert report["support"] == 60
    onnx = json.loads((w / "results/infer_onnx/infer_results.json").read_text())
    assert len(onnx) == 60
    assert "my-model-key" not in proc.stdout + proc.stderr

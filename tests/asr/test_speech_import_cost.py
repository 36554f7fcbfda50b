"""speech_to_text's commands that do not train import neither Lightning nor transformers, and its
dataset_convert no torch (as tests/nlp/test_import_cost.py holds the NLP tasks to it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import KEY, sine_wav, tao_env, tiny_speech_archive

HEAVY = ("torch", "transformers", "pytorch_lightning", "lightning_fabric", "lightning")
PROBE = ("import json, sys\n"
         "from tao_launcher.entrypoint import main\n"
         "code = main(sys.argv[1:])\n"
         f"print('MODULES ' + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
         "sys.exit(code)\n")


def imported(tmp_path: Path, *args) -> set:
    proc = subprocess.run([sys.executable, "-c", PROBE, "speech_to_text", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=tao_env(tmp_path / "home", TAO_KEY=KEY))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("MODULES ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return set(json.loads(lines[-1][len("MODULES "):]))


def test_speech_subtasks_import_only_what_they_use(tmp_path):
    for take in range(6):
        sine_wav(tmp_path / "fsdd" / "recordings" / f"{take % 3}_tone_{take}.wav", hz=300 + 50 * take)
    convert = imported(tmp_path, "dataset_convert", "-r", tmp_path / "convert", "dataset_name=fsdd",
                       f"source_data_dir={tmp_path / 'fsdd'}", f"target_data_dir={tmp_path / 'data'}")
    assert not {"torch", "transformers"} & convert
    model = tiny_speech_archive(tmp_path / "model.tao")
    manifest = tmp_path / "data" / "test_manifest.json"
    for subtask, args in (("evaluate", [f"test_ds.manifest_filepath={manifest}"]),
                          ("infer", [f"input_manifest={manifest}"]), ("export", [])):
        modules = imported(tmp_path, subtask, "-r", tmp_path / subtask, "-m", model, *args)
        assert "torch" in modules and not (set(HEAVY) - {"torch"}) & modules, (subtask, modules)

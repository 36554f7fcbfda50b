"""The `tao` command line as a user runs it: a real subprocess, a clean HOME, the local runner.

Everything here is host side: no training, and the launcher must never import torch.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import conftest
import tao_launcher
from launcher_helpers import assert_no_traceback, clean_env, output, tao  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
ALL_TASKS = ("text_classification", "token_classification", "question_answering",
             "intent_slot_classification", "punctuation_and_capitalization", "speech_to_text")
SUBTASKS = ("download_specs", "dataset_convert", "train", "finetune", "evaluate", "infer", "export", "infer_onnx")
SPEC_FILES = ("dataset_convert.yaml", "train.yaml", "finetune.yaml", "evaluate.yaml", "infer.yaml",
              "export.yaml", "infer_onnx.yaml")
HEAVY_MODULES = ("torch", "transformers", "pytorch_lightning", "lightning", "onnx", "onnxruntime")
SECRET = "Zebra-Kestrel-7731-not-a-real-key"
TRAIN_REQUIRED = ["model.dataset.num_classes=2", "training_ds.file_path=/data/train.tsv",
                  "validation_ds.file_path=/data/dev.tsv"]


# ----------------------------------------------------------------------------- help

def test_help_lists_all_tasks(tao):
    proc = tao("--help")
    assert proc.returncode == 0, output(proc)
    for task in ALL_TASKS:
        assert task in proc.stdout
    assert "info" in proc.stdout


def test_version(tao):
    proc = tao("--version")
    assert proc.returncode == 0
    assert tao_launcher.__version__ in proc.stdout


def test_help_imports_no_torch_importtime(tmp_path):
    code = ("import sys; sys.argv = ['tao', '--help']\n"
            "from tao_launcher.launcher.cli import run\nrun()")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=tmp_path,
                          env=clean_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "text_classification" in proc.stdout
    imported = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert imported, "python -X importtime printed nothing"
    offenders = [line for line in imported if "torch" in line or "transformers" in line]
    assert not offenders, "tao --help imports heavy modules:\n" + "\n".join(offenders)


@pytest.mark.parametrize("argv", [["--help"], ["text_classification", "--help"],
                                  ["text_classification", "train", "--help"]],
                         ids=["tao", "task", "subtask"])
def test_help_leaves_heavy_modules_unimported(tmp_path, argv):
    """In a fresh interpreter: run click's main in-process, then look at sys.modules."""
    code = textwrap.dedent(f"""
        import json, sys
        from tao_launcher.launcher.cli import main
        try:
            main({argv!r}, prog_name="tao", standalone_mode=False)
        except SystemExit:
            pass
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY_MODULES!r})))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    assert heavy == [], f"`tao {' '.join(argv)}` imported {heavy}"


def test_task_help_lists_subtasks(tao):
    proc = tao("text_classification", "--help")
    assert proc.returncode == 0, output(proc)
    rows = proc.stdout.split("Commands:")[1].splitlines()
    listed = [line.split()[0] for line in rows if line.startswith("  ") and not line.startswith("   ")]
    assert listed == list(SUBTASKS)


def test_subtask_help_shows_spec_fields_and_example(tao):
    proc = tao("text_classification", "train", "--help")
    assert proc.returncode == 0, output(proc)
    for key in ("trainer.max_epochs", "training_ds.file_path", "optim.sched.name"):
        assert key in proc.stdout
    assert "number of passes over the training data" in proc.stdout   # the description of trainer.max_epochs
    assert "Example" in proc.stdout
    assert "tao text_classification train" in proc.stdout.split("Example")[-1]


# ----------------------------------------------------------------------------- usage errors

def test_unknown_task_suggests_closest(tao):
    proc = tao("text_clasification", "train")
    assert proc.returncode == 2
    assert "text_clasification" in proc.stderr
    assert "'text_classification'" in proc.stderr
    assert_no_traceback(proc)


def test_unknown_subtask_suggests_closest(tao):
    proc = tao("text_classification", "trian")
    assert proc.returncode == 2
    assert "'train'" in proc.stderr
    assert_no_traceback(proc)


def test_train_without_key(tao):
    results = tao.home / "results"
    proc = tao("text_classification", "train", "-r", results, *TRAIN_REQUIRED)
    assert proc.returncode == 2
    assert "-k" in proc.stderr and "TAO_KEY" in proc.stderr
    assert not results.exists()
    assert_no_traceback(proc)


def test_key_from_environment_is_accepted(tao):
    """With TAO_KEY set the key check passes and the next problem (the spec) is reported."""
    proc = tao("text_classification", "train", "trainer.max_epochs=abc", *TRAIN_REQUIRED,
               env=clean_env(tao.home, TAO_KEY=SECRET))
    assert proc.returncode == 2
    assert "TAO_KEY" not in proc.stderr
    assert "trainer.max_epochs must be an integer" in proc.stderr
    assert SECRET not in output(proc)


def test_unknown_option_is_a_usage_error(tao):
    proc = tao("text_classification", "train", "-k", SECRET, "--epochs", "3", *TRAIN_REQUIRED)
    assert proc.returncode == 2
    assert "--epochs" in proc.stderr
    assert SECRET not in output(proc)


def test_negative_gpus(tao):
    proc = tao("text_classification", "train", "-k", SECRET, "-g", "-1", *TRAIN_REQUIRED)
    assert proc.returncode == 2
    assert "-g" in proc.stderr


def test_key_never_printed_by_failing_spec(tao):
    results = tao.home / "results"
    proc = tao("text_classification", "train", "-k", SECRET, "-r", results, "trainer.max_epoch=2",
               *TRAIN_REQUIRED)
    assert proc.returncode == 2
    assert "trainer.max_epoch" in proc.stderr
    assert SECRET not in output(proc)


def test_key_never_printed_when_the_entrypoint_fails(tao):
    """A valid spec reaches the real entrypoint, which rejects the missing model archive."""
    results = tao.home / "results"
    (tao.home / "dev.tsv").write_text("a fine film .\t1\n")
    proc = tao("text_classification", "evaluate", "-k", SECRET, "-r", results,
               "-m", tao.home / "missing.tao", f"test_ds.file_path={tao.home / 'dev.tsv'}")
    assert proc.returncode == 2, output(proc)
    assert "missing.tao" in proc.stderr and "does not exist" in proc.stderr
    assert SECRET not in output(proc)
    assert not results.exists()
    assert_no_traceback(proc)


def test_job_keeps_key_out_of_argv_and_repr():
    from tao_launcher.launcher.runners import Job

    job = Job("text_classification", "train", spec="/specs/train.yaml", results="/results/tc",
              overrides=["trainer.max_epochs=2"], key=SECRET)
    args = job.entrypoint_args()
    assert SECRET not in " ".join(args)
    assert SECRET not in repr(job)
    assert args[:2] == ["text_classification", "train"]
    assert args[-1] == "trainer.max_epochs=2"


# ----------------------------------------------------------------------------- spec errors

def test_spec_errors_from_command_line_all_named(tao):
    results = tao.home / "results"
    proc = tao("text_classification", "train", "-k", SECRET, "-r", results,
               "trainer.max_epoch=2", "trainer.max_epochs=abc", "optim.name=lion",
               "training_ds.file_path=/data/train.tsv")
    assert proc.returncode == 2
    err = proc.stderr
    assert "the spec has 4 problems" in err
    assert "unknown key trainer.max_epoch; did you mean trainer.max_epochs?" in err
    assert "trainer.max_epochs must be an integer" in err and "'abc'" in err
    assert "optim.name must be one of adam, adamw, sgd" in err
    # ??? left unset: the field and an example override
    assert "validation_ds.file_path is required" in err and "validation_ds.file_path=/data/" in err
    # nothing started
    assert "tao: running" not in err
    assert not results.exists()
    assert SECRET not in output(proc)
    assert_no_traceback(proc)


SPEC_WITH_ERRORS = """\
trainer:
  max_epochs: 2
  max_epoch: 3
optim:
  lr: 2e-5
  name: adamw
model:
  dataset:
    max_seq_length: long
validation_ds:
  file_path: ???
"""


def test_spec_file_errors_name_file_and_line(tao):
    spec = tao.home / "train.yaml"
    spec.write_text(SPEC_WITH_ERRORS)
    results = tao.home / "results" / "train"
    proc = tao("text_classification", "train", "-e", spec, "-r", results, "-k", SECRET,
               "training_ds.file_path=/data/train.tsv", "model.dataset.num_classes=2")
    assert proc.returncode == 2, output(proc)
    err = proc.stderr
    assert "the spec has 3 problems" in err
    assert f"{spec}:3: unknown key trainer.max_epoch; did you mean trainer.max_epochs?" in err
    assert f"{spec}:9: model.dataset.max_seq_length must be an integer, got 'long'" in err
    assert "validation_ds.file_path is required" in err and "validation_ds.file_path=/data/" in err
    assert "tao: running" not in err
    assert not results.exists() and not results.parent.exists()
    assert SECRET not in output(proc)


def test_missing_spec_file(tao):
    results = tao.home / "results"
    proc = tao("text_classification", "train", "-e", tao.home / "nope.yaml", "-r", results, "-k", SECRET,
               *TRAIN_REQUIRED)
    assert proc.returncode == 2
    assert "nope.yaml" in proc.stderr and "does not exist" in proc.stderr
    assert not results.exists()


def test_invalid_yaml_names_line(tao):
    spec = tao.home / "bad.yaml"
    spec.write_text("trainer:\n  max_epochs: 2\n optim: [\n")
    proc = tao("text_classification", "train", "-e", spec, "-k", SECRET, *TRAIN_REQUIRED)
    assert proc.returncode == 2
    assert f"{spec}:" in proc.stderr and "not valid YAML" in proc.stderr
    assert_no_traceback(proc)


# ----------------------------------------------------------------------------- download_specs

def test_download_specs_writes_refuses_and_overwrites(tao):
    out = tao.home / "specs"
    proc = tao("text_classification", "download_specs", "-o", out, "-r", tao.home / "results")
    assert proc.returncode == 0, output(proc)
    assert sorted(p.name for p in out.iterdir()) == sorted(SPEC_FILES)
    for name in SPEC_FILES:
        data = yaml.safe_load((out / name).read_text())
        assert isinstance(data, dict) and data, name
    original = {name: (out / name).read_text() for name in SPEC_FILES}

    edited = original["train.yaml"] + "# my edit\n"
    (out / "train.yaml").write_text(edited)
    proc = tao("text_classification", "download_specs", "-o", out, "-r", tao.home / "results")
    assert proc.returncode == 2
    assert "--overwrite" in proc.stderr and str(out) in proc.stderr
    assert (out / "train.yaml").read_text() == edited
    assert sorted(p.name for p in out.iterdir()) == sorted(SPEC_FILES)   # no partial files left

    proc = tao("text_classification", "download_specs", "-o", out, "-r", tao.home / "results", "--overwrite")
    assert proc.returncode == 0, output(proc)
    assert {name: (out / name).read_text() for name in SPEC_FILES} == original
    assert sorted(p.name for p in out.iterdir()) == sorted(SPEC_FILES)


def test_download_specs_needs_output(tao):
    proc = tao("text_classification", "download_specs", "-r", tao.home / "results")
    assert proc.returncode == 2
    assert "-o" in proc.stderr


def test_download_specs_onto_a_file(tao):
    target = tao.home / "afile"
    target.write_text("x")
    proc = tao("text_classification", "download_specs", "-o", target)
    assert proc.returncode == 2
    assert "is a file" in proc.stderr
    assert target.read_text() == "x"


@pytest.mark.parametrize("task", ALL_TASKS)
def test_repo_specs_match_schema(tao, task):
    """specs/<task> is generated from the schemas (with the task's extra variants); it must not drift from them."""
    repo_specs = REPO / "specs" / task
    out = tao.home / "fresh"
    proc = tao(task, "download_specs", "-o", out)
    assert proc.returncode == 0, output(proc)
    hint = f"specs/{task} is out of date with the schemas: run `make specs` and commit the result"
    assert repo_specs.is_dir(), hint
    written = sorted(p.name for p in out.iterdir())
    assert set(SPEC_FILES) <= set(written)
    assert sorted(p.name for p in repo_specs.iterdir()) == written, hint
    for name in written:
        assert (repo_specs / name).read_text() == (out / name).read_text(), f"{name}: {hint}"


# ----------------------------------------------------------------------------- info

def test_info_without_mounts_file(tao):
    proc = tao("info")
    assert proc.returncode == 0, output(proc)
    assert tao_launcher.__version__ in proc.stdout
    assert "runner: local runner" in proc.stdout
    assert str(tao.home / ".tao_mounts.json") in proc.stdout
    assert "not found" in proc.stdout


def test_info_with_mounts_file(tao, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "results").mkdir()
    mounts = tmp_path / "mounts.json"
    mounts.write_text(json.dumps({
        "Mounts": [{"source": str(tmp_path / "data"), "destination": "/data", "read_only": True},
                   {"source": str(tmp_path / "results"), "destination": "/results"}],
        "Envs": [{"variable": "HF_HOME", "value": "/cache"}]}))
    proc = tao("info", env=clean_env(tao.home, TAO_MOUNTS_FILE=str(mounts)))
    assert proc.returncode == 0, output(proc)
    assert tao_launcher.__version__ in proc.stdout
    assert "local runner" in proc.stdout
    assert f"mounts file: {mounts}" in proc.stdout
    assert f"{tmp_path / 'data'} -> /data (read-only)" in proc.stdout
    assert f"{tmp_path / 'results'} -> /results" in proc.stdout
    assert "HF_HOME" in proc.stdout


def test_info_with_broken_mounts_file(tao, tmp_path):
    mounts = tmp_path / "mounts.json"
    mounts.write_text('{"Mounts": [}')
    proc = tao("info", env=clean_env(tao.home, TAO_MOUNTS_FILE=str(mounts)))
    assert proc.returncode == 2
    assert f"{mounts}:1" in proc.stderr
    assert_no_traceback(proc)


# ----------------------------------------------------------------------------- what --help and the README promise

def test_results_folder_is_required_and_help_says_so(tao):
    proc = tao("text_classification", "train", "-k", SECRET, *TRAIN_REQUIRED, "--dry-run")
    assert proc.returncode == 2, output(proc)
    assert "train needs a results folder: pass -r DIR" in proc.stderr
    assert_no_traceback(proc)
    helps = {sub: " ".join(tao("text_classification", sub, "--help").stdout.split())
             for sub in ("train", "download_specs")}
    assert "results folder: log.txt, status.json, outputs (required)" in helps["train"]
    assert "optional results folder" in helps["download_specs"] and "(required)" not in helps["download_specs"]


def test_download_specs_results_folder_receives_log_and_status(tao):
    out, results = tao.home / "specs", tao.home / "results"
    proc = tao("text_classification", "download_specs", "-o", out, "-r", results)
    assert proc.returncode == 0, output(proc)
    status = json.loads((results / "status.json").read_text())
    assert status["state"] == "finished" and status["subtask"] == "download_specs"
    assert status["artifacts"]["output_dir"] == str(out)
    assert "train.yaml" in (results / "log.txt").read_text()
    refused = tao("text_classification", "download_specs", "-o", out, "-r", tao.home / "results2")
    assert refused.returncode == 2 and not (tao.home / "results2").exists()   # -o refused before -r is made


def test_help_examples_and_readme_agree_on_spec_paths(tao):
    """download_specs -o /specs/<task>, then -e /specs/<task>/<subtask>.yaml: in --help and in the README."""
    assert "-e /specs/text_classification/train.yaml" in tao("text_classification", "train", "--help").stdout
    assert "-o /specs/text_classification" in tao("text_classification", "download_specs", "--help").stdout
    readme = (REPO / "README.md").read_text()
    spec_files = re.findall(r"-e (\S+\.yaml)", readme)
    assert len(spec_files) >= 4, spec_files
    from tao_launcher.registry import TASKS
    from tao_launcher.spec.download import default_specs

    for path in spec_files:  # /specs/<task>/<a file download_specs writes for that task>
        match = re.search(r"/specs/(\w+)/([\w.]+\.yaml)$", path)
        assert match and match.group(1) in TASKS, path
        assert match.group(2) in default_specs(TASKS[match.group(1)]), path
    for task, folder in re.findall(r"^tao (\w+) download_specs -o (\S+)", readme, re.M):
        assert folder.endswith(f"/specs/{task}"), folder


@pytest.mark.parametrize("argv", [["--help"], ["text_classification", "--help"]], ids=["tao", "task"])
def test_help_does_not_cut_descriptions(tao, argv):
    from tao_launcher.launcher.cli import SUBTASK_HELP, main

    proc = tao(*argv)
    assert proc.returncode == 0, output(proc)
    listing = " ".join(proc.stdout.split("Commands:")[1].split())
    assert "..." not in listing and "…" not in listing
    wanted = SUBTASK_HELP.values() if len(argv) == 2 else [c.help for c in main.commands.values()]
    for text in wanted:
        assert " ".join(text.split()) in listing, text


def test_num_classes_comes_from_the_labels_file(tao):
    base = ["text_classification", "train", "-k", SECRET, "-r", tao.home / "r", "--dry-run",
            "training_ds.file_path=/data/train.tsv", "validation_ds.file_path=/data/dev.tsv"]
    proc = tao(*base, "model.class_labels.class_labels_file=/data/labels.txt")
    assert proc.returncode == 0, output(proc)
    proc = tao(*base)
    assert proc.returncode == 2
    assert ("model.dataset.num_classes is required when model.class_labels.class_labels_file does not name "
            "the classes") in proc.stderr
    assert not (tao.home / "r").exists()

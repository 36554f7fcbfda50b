"""text_classification end to end through the real `tao` command: every subtask, its outputs and its errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import KEY, TAO, dataset, tao, tao_env, train_args, wait_until

TC = "text_classification"


def status(results: Path) -> dict:
    return json.loads((results / "status.json").read_text())


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text


# ----------------------------------------------------------------------------- the workflow

def test_train_writes_archive_status_metrics_and_masked_spec(trained):
    st = status(trained)
    assert st["state"] == "finished" and st["task"] == TC and st["subtask"] == "train"
    archive = trained / "checkpoints" / "trained-model.tao"
    assert archive.is_file() and st["artifacts"]["model"] == str(archive)
    assert not (trained / "checkpoints" / "last.ckpt").exists()  # the resume checkpoint goes once the archive is final
    assert 0.0 <= st["metrics"]["val_acc"] <= 1.0
    header = (trained / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in ("epoch", "val_acc", "val_precision_negative", "val_recall_positive", "val_f1_positive"):
        assert column in header
    saved = yaml.safe_load((trained / "spec.yaml").read_text())
    assert saved["encryption_key"] == "***" and saved["model"]["dataset"]["num_classes"] == 2
    assert_no_key(*(p.read_text(errors="replace") for p in trained.iterdir() if p.is_file()))
    best = st["best_model"]  # the kept model's validation: the last row of metrics.csv after one epoch
    last = (trained / "metrics.csv").read_text().splitlines()[-1].split(",")
    assert (best["monitor"], best["epoch"], best["step"]) == ("val_acc", int(last[0]) + 1, int(last[1]))
    assert best["value"] == st["metrics"]["val_acc"] == float(last[header.index("val_acc")])


def test_train_draws_plots_and_writes_tensorboard_events(trained):
    for name in ("loss.png", "val_metrics.png"):
        png = trained / "plots" / name
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert status(trained)["artifacts"]["plots"] == str(trained / "plots")
    events = list((trained / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 100


def test_evaluate_prints_and_saves_a_classification_report(trained, sample_data, tmp_path):
    proc = tao(TC, "evaluate", "-r", tmp_path / "ev", "-k", KEY, "-m", trained / "checkpoints/trained-model.tao",
               f"test_ds.file_path={sample_data / 'dev.tsv'}", check=True)
    report = json.loads((tmp_path / "ev" / "evaluation_report.json").read_text())
    assert report["support"] == 60
    assert set(report) >= {"negative", "positive", "accuracy", "macro_f1"}
    assert "precision" in proc.stdout and "negative" in proc.stdout
    assert status(tmp_path / "ev")["metrics"]["test_acc"] == pytest.approx(report["accuracy"])
    assert_no_key(proc.stdout, proc.stderr)
    png = tmp_path / "ev" / "confusion_matrix.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert status(tmp_path / "ev")["artifacts"]["confusion_matrix"] == str(png)


def test_infer_and_infer_onnx_agree_for_riva_and_onnx_exports(trained, sample_data, tmp_path):
    model = trained / "checkpoints/trained-model.tao"
    tao(TC, "infer", "-r", tmp_path / "inf", "-k", KEY, "-m", model, f"input_file={sample_data / 'dev.tsv'}",
        check=True)
    torch_out = json.loads((tmp_path / "inf" / "infer_results.json").read_text())
    assert len(torch_out) == 60 and {r["label"] for r in torch_out} <= {"negative", "positive"}
    for fmt, name in (("ONNX", "exported-model.eonnx"), ("RIVA", "exported-model.riva")):
        tao(TC, "export", "-r", tmp_path / fmt, "-k", KEY, "-m", model, f"export_format={fmt}", check=True)
        exported = tmp_path / fmt / name
        assert exported.is_file()
        tao(TC, "infer_onnx", "-r", tmp_path / f"onnx-{fmt}", "-k", KEY, "-m", exported,
            f"input_file={sample_data / 'dev.tsv'}", check=True)
        onnx_out = json.loads((tmp_path / f"onnx-{fmt}" / "infer_results.json").read_text())
        assert [r["label"] for r in onnx_out] == [r["label"] for r in torch_out]
        assert max(abs(a["score"] - b["score"]) for a, b in zip(onnx_out, torch_out)) <= 1e-4


def test_exported_onnx_graph_has_dynamic_batch_and_sequence_axes(trained, tmp_path):
    import onnx

    from tao_launcher.core.archive import open_archive

    tao(TC, "export", "-r", tmp_path / "ex", "-k", KEY, "-m", trained / "checkpoints/trained-model.tao",
        "export_format=ONNX", check=True)
    with open_archive(tmp_path / "ex" / "exported-model.eonnx", KEY) as folder:
        graph = onnx.load(str(folder / "model.onnx")).graph
        assert (folder / "tokenizer").is_dir() and (folder / "labels.txt").read_text().split() == ["negative", "positive"]
    for tensor in graph.input:
        dims = [d.dim_param for d in tensor.type.tensor_type.shape.dim]
        assert dims == ["batch", "sequence"]


def test_riva_export_carries_config_vocabulary_labels_and_graph(trained, tmp_path):
    from tao_launcher.core.archive import open_archive, read_archive_kind

    tao(TC, "export", "-r", tmp_path / "ex", "-k", KEY, "-m", trained / "checkpoints/trained-model.tao", check=True)
    riva = tmp_path / "ex" / "exported-model.riva"
    assert read_archive_kind(riva) == "riva"
    with open_archive(riva, KEY) as folder:
        names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        config = yaml.safe_load((folder / "riva_config.yaml").read_text())
    assert {"model.onnx", "labels.txt", "riva_config.yaml", "manifest.json", "tokenizer/vocab.txt"} <= names
    assert config["riva_model"]["task"] == TC


def test_infer_reads_input_batch_from_the_spec(trained, tmp_path):
    proc = tao(TC, "infer", "-r", tmp_path / "inf", "-k", KEY, "-m", trained / "checkpoints/trained-model.tao",
               'input_batch=["a wonderful , moving film .","a dull and lifeless mess ."]', check=True)
    lines = [line for line in proc.stdout.splitlines() if "\t" in line]
    assert len(lines) == 2 and lines[0].split("\t")[2] == "a wonderful , moving film ."
    assert all(0.0 <= float(line.split("\t")[1]) <= 1.0 for line in lines)


def test_finetune_continues_from_an_archive_and_writes_a_new_one(trained, sample_data, tmp_path):
    tao(TC, "finetune", "-r", tmp_path / "ft", "-k", KEY, "-m", trained / "checkpoints/trained-model.tao",
        f"finetuning_ds.file_path={sample_data / 'train.tsv'}", f"validation_ds.file_path={sample_data / 'dev.tsv'}",
        "trainer.max_steps=3", "trainer.enable_progress_bar=false", check=True)
    assert (tmp_path / "ft" / "checkpoints" / "trained-model.tao").is_file()
    assert status(tmp_path / "ft")["state"] == "finished"


def test_finetune_refuses_a_different_label_set(trained, sample_data, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("sports\npolitics\n")
    proc = tao(TC, "finetune", "-r", tmp_path / "ft", "-k", KEY, "-m", trained / "checkpoints/trained-model.tao",
               f"finetuning_ds.file_path={sample_data / 'train.tsv'}",
               f"validation_ds.file_path={sample_data / 'dev.tsv'}", f"model.class_labels.class_labels_file={labels}")
    assert proc.returncode == 2
    assert "do not match" in proc.stderr and "sports" in proc.stderr and "negative" in proc.stderr


def test_finetune_data_with_more_classes_than_the_model_is_refused(trained, tmp_path):
    data = tmp_path / "three.tsv"
    data.write_text("good film\t1\nbad film\t0\nso so film\t2\n")
    proc = tao(TC, "finetune", "-r", tmp_path / "ft", "-k", KEY, "-m", trained / "checkpoints/trained-model.tao",
               f"finetuning_ds.file_path={data}", f"validation_ds.file_path={data}")
    assert proc.returncode == 1
    assert f"{data}:3" in proc.stderr and "2 classes" in proc.stderr


# ----------------------------------------------------------------------------- bad input

def test_wrong_key_is_one_clear_sentence_and_exit_1(trained, tmp_path):
    model = trained / "checkpoints/trained-model.tao"
    proc = tao(TC, "infer", "-r", tmp_path / "inf", "-k", "not-the-key", "-m", model)
    assert proc.returncode == 1
    assert f"cannot open {model}: wrong key or corrupted file" in proc.stderr
    assert "Traceback" not in proc.stderr and "not-the-key" not in proc.stderr
    assert status(tmp_path / "inf")["state"] == "failed"


def test_corrupted_archive_is_refused(trained, tmp_path, copy_of):
    bad = copy_of(trained / "checkpoints/trained-model.tao")
    with open(bad, "r+b") as f:
        f.seek(bad.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))
    proc = tao(TC, "evaluate", "-r", tmp_path / "ev", "-k", KEY, "-m", bad, f"test_ds.file_path={bad}")
    assert proc.returncode == 1
    assert f"cannot open {bad}: wrong key or corrupted file" in proc.stderr


def test_unknown_spec_key_lists_the_closest_valid_key(sample_data, tmp_path):
    spec = tmp_path / "train.yaml"
    spec.write_text("trainer:\n  max_epochs: 1\n  max_epoch: 2\n")
    proc = tao(*train_args(sample_data, tmp_path / "r"), "-e", spec)
    assert proc.returncode == 2
    assert f"{spec}:3: unknown key trainer.max_epoch; did you mean trainer.max_epochs?" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_missing_required_value_names_the_field_and_an_override(tmp_path):
    proc = tao(TC, "train", "-r", tmp_path / "r", "-k", KEY, "model.dataset.num_classes=2")
    assert proc.returncode == 2
    assert "training_ds.file_path is required" in proc.stderr
    assert "training_ds.file_path=" in proc.stderr and "validation_ds.file_path is required" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_wrong_type_is_reported_before_any_work(sample_data, tmp_path):
    proc = tao(*train_args(sample_data, tmp_path / "r"), "trainer.max_epochs=two")
    assert proc.returncode == 2 and "trainer.max_epochs must be an integer, got 'two'" in proc.stderr


def test_malformed_tsv_line_names_file_and_line(sample_data, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a fine film\t1\nno tab on this line 0\na poor film\t0\n")
    proc = tao(*train_args(sample_data, tmp_path / "r"), f"training_ds.file_path={bad}")
    assert proc.returncode == 1
    assert f"{bad}:2: expected 'sentence<TAB>label'" in proc.stderr
    assert status(tmp_path / "r")["state"] == "failed"
    assert not (tmp_path / "r" / "checkpoints" / "trained-model.tao").exists()


def test_label_out_of_range_names_file_line_and_num_classes(sample_data, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a fine film\t1\nan odd film\t5\n")
    proc = tao(*train_args(sample_data, tmp_path / "r"), f"training_ds.file_path={bad}")
    assert proc.returncode == 1
    assert f"{bad}:2: label 5 is out of range for num_classes=2" in proc.stderr


def test_missing_data_file_is_a_usage_error_before_any_work(sample_data, tmp_path):
    proc = tao(*train_args(sample_data, tmp_path / "r"), f"training_ds.file_path={tmp_path / 'nope.tsv'}")
    assert proc.returncode == 2 and f"{tmp_path / 'nope.tsv'} does not exist" in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


def test_non_empty_results_folder_is_refused_without_overwrite(sample_data, tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    (results / "notes.txt").write_text("keep me")
    proc = tao(*train_args(sample_data, results))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "notes.txt" in proc.stderr
    assert (results / "notes.txt").read_text() == "keep me"


def test_finished_train_is_never_silently_overwritten(trained, sample_data):
    before = (trained / "checkpoints" / "trained-model.tao").stat().st_mtime_ns
    proc = tao(*train_args(sample_data, trained))
    assert proc.returncode == 2 and "already holds a finished text_classification train run" in proc.stderr
    assert (trained / "checkpoints" / "trained-model.tao").stat().st_mtime_ns == before
    assert status(trained)["state"] == "finished"


def test_model_of_the_wrong_kind_is_refused(trained, tmp_path):
    tao(TC, "export", "-r", tmp_path / "ex", "-k", KEY, "-m", trained / "checkpoints/trained-model.tao", check=True)
    proc = tao(TC, "infer", "-r", tmp_path / "inf", "-k", KEY, "-m", tmp_path / "ex" / "exported-model.riva")
    assert proc.returncode == 2 and ".riva archive" in proc.stderr


def test_unknown_encoder_says_what_was_looked_for(sample_data, tmp_path):
    proc = tao(*train_args(sample_data, tmp_path / "r"), "model.language_model.pretrained_model_name=bert-base-uncased")
    assert proc.returncode == 2
    assert "cannot find pretrained encoder 'bert-base-uncased'" in proc.stderr
    assert "all-minilm-l6-v2" in proc.stderr and "nothing is downloaded" in proc.stderr


# ----------------------------------------------------------------------------- resume and interruption

def _start_train(sample_data, results: Path, *extra: str) -> subprocess.Popen:
    args = train_args(sample_data, results, "trainer.checkpoint_every_n_steps=2", "trainer.max_epochs=2", *extra)
    return subprocess.Popen(TAO + [str(a) for a in args], env=tao_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_kill_9_during_train_then_same_command_resumes_and_finishes(sample_data, tmp_path):
    results = tmp_path / "r"
    proc = _start_train(sample_data, results)
    wait_until((results / "checkpoints" / "last.ckpt").exists, proc, "the first checkpoint")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)  # the entrypoint dies with the launcher (PDEATHSIG)
    assert status(results)["state"] == "running"
    assert not (results / "checkpoints" / "trained-model.tao").exists()
    second = tao(*train_args(sample_data, results, "trainer.checkpoint_every_n_steps=2", "trainer.max_epochs=2"))
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stderr
    st = status(results)
    assert st["state"] == "finished" and st["attempt"] == 2
    rows = (results / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[1] for row in rows[1:]] == ["15", "30"]  # 240 sentences / 16 a batch: no step lost or repeated
    from tao_launcher.core.archive import open_archive
    with open_archive(results / "checkpoints" / "trained-model.tao", KEY) as folder:
        assert (folder / "model.safetensors").stat().st_size > 1_000_000


def _entrypoint_command_lines() -> list:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "tao_launcher.entrypoint" in text:
            lines.append(text)
    return lines


def test_sigint_during_train_exits_130_and_marks_the_run_interrupted(sample_data, tmp_path):
    results = tmp_path / "r"
    proc = _start_train(sample_data, results)
    wait_until((results / "checkpoints" / "last.ckpt").exists, proc, "the first checkpoint")
    running = _entrypoint_command_lines()
    assert running and not any(KEY in line for line in running)  # the key is not in the process list
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert status(results)["state"] == "interrupted"
    assert not (results / "checkpoints" / "trained-model.tao").exists()


def test_two_cpu_processes_train_with_ddp(sample_data, tmp_path):
    results = tmp_path / "r"
    proc = tao(*train_args(sample_data, results, "trainer.max_steps=4", "optim.name=sgd", "optim.lr=0.01",
                           "model.dataset.class_balancing=weighted_loss"), "-g", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "running on the CPU with 2 processes" in proc.stderr
    assert "class weights for the loss" in proc.stderr
    st = status(results)
    assert st["state"] == "finished" and st["metrics"]["step"] == 4
    assert (results / "checkpoints" / "trained-model.tao").is_file()


def test_local_runner_reads_container_paths_and_takes_host_paths_beside_a_mounts_file(tmp_path):
    """One command line serves both runners: locally, a container path under a mount (in a flag, an
    override or the spec file) is read as its host folder, and a host path under no mount is used
    as given instead of being refused."""
    from conftest import SAMPLE

    data, results = tmp_path / "host-data", tmp_path / "host-results"
    (data / "raw").mkdir(parents=True)
    results.mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (data / "raw" / name).write_text((SAMPLE / name).read_text())
    mounts = tmp_path / "mounts.json"
    mounts.write_text(json.dumps({"Mounts": [{"source": str(data), "destination": "/data"},
                                             {"source": str(results), "destination": "/results"}],
                                  "Runner": "local"}))
    env = tao_env(TAO_MOUNTS_FILE=str(mounts))
    env.pop("TAO_RUNNER")   # the mounts file's Runner chooses
    (data / "convert.yaml").write_text("source_data_dir: /data/raw\n")
    proc = tao(TC, "dataset_convert", "-e", "/data/convert.yaml", "-r", "/results/convert",
               "target_data_dir=/data/converted", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Envs and DockerOptions are for the Docker runner only" in proc.stderr
    assert (data / "converted" / "train.tsv").is_file() and (results / "convert" / "status.json").is_file()
    spec = tmp_path / "elsewhere" / "convert.yaml"
    spec.parent.mkdir()
    spec.write_text(f"source_data_dir: {SAMPLE}\n")
    proc = tao(TC, "dataset_convert", "-e", spec, "-r", tmp_path / "elsewhere" / "convert",
               f"target_data_dir={tmp_path / 'elsewhere' / 'converted'}", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "elsewhere" / "converted" / "train.tsv").is_file()


def test_a_broken_mounts_file_does_not_stop_a_local_run(tmp_path):
    from conftest import SAMPLE

    mounts = tmp_path / "mounts.json"
    mounts.write_text('{"Mounts": [{"source": "/no/such/folder", "destination": "/data"}], "Runner": "docker"}')
    proc = tao(TC, "dataset_convert", "--runner", "local", "-r", tmp_path / "convert", f"source_data_dir={SAMPLE}",
               f"target_data_dir={tmp_path / 'converted'}", env=tao_env(TAO_MOUNTS_FILE=str(mounts)))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "converted" / "train.tsv").is_file()


# ----------------------------------------------------------------------------- real datasets

@pytest.mark.slow
def test_sst2_convert_and_short_train_beats_chance(tmp_path):
    sst2 = dataset("sst2")
    tao(TC, "dataset_convert", "-r", tmp_path / "conv", f"source_data_dir={sst2}",
        f"target_data_dir={tmp_path / 'data'}", check=True)
    lines = (tmp_path / "data" / "train.tsv").read_text().splitlines()
    assert len(lines) == 67349 and all(line.rsplit("\t", 1)[1] in "01" for line in lines[:1000])
    assert len((tmp_path / "data" / "dev.tsv").read_text().splitlines()) == 872
    tao(*train_args(tmp_path / "data", tmp_path / "train", "training_ds.num_samples=640",
                    "training_ds.batch_size=32", "optim.lr=3e-4"), check=True)  # 640 drawn at random (num_samples)
    assert status(tmp_path / "train")["metrics"]["val_acc"] > 0.65


@pytest.mark.slow
def test_imdb_tarball_converts_to_tsv(tmp_path):
    imdb = dataset("imdb")
    tao(TC, "dataset_convert", "-r", tmp_path / "conv", "dataset_name=imdb", f"source_data_dir={imdb}",
        f"target_data_dir={tmp_path / 'data'}", check=True)
    train = (tmp_path / "data" / "train.tsv").read_text(encoding="utf-8").splitlines()
    dev = (tmp_path / "data" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    assert len(train) == 25000 and len(dev) == 25000
    labels = [line.rsplit("\t", 1)[1] for line in train[:200]]
    assert set(labels) == {"0", "1"}  # shuffled: the first lines hold both classes
    assert all(line.count("\t") == 1 and "<br" not in line for line in train[:2000])


def test_lm_checkpoint_must_fit_the_encoder(sample_data, tmp_path):
    from safetensors.torch import save_file
    import torch

    bad = tmp_path / "bad.safetensors"
    save_file({"not.a.bert.weight": torch.zeros(2)}, str(bad))
    proc = tao(*train_args(sample_data, tmp_path / "r"), f"model.language_model.lm_checkpoint={bad}")
    assert proc.returncode == 2 and f"lm_checkpoint {bad} does not fit the encoder" in proc.stderr
    from tao_launcher.core.encoders import resolve_encoder

    good = resolve_encoder("all-minilm-l6-v2") / "model.safetensors"  # a BERT checkpoint with a pooler
    proc = tao(*train_args(sample_data, tmp_path / "ok"), f"model.language_model.lm_checkpoint={good}",
               "trainer.max_steps=1")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_same_seed_gives_the_same_training(sample_data, tmp_path):
    losses = []
    for name in ("a", "b"):
        tao(*train_args(sample_data, tmp_path / name, "trainer.max_steps=2", "trainer.seed=7"), check=True)
        losses.append(status(tmp_path / name)["metrics"]["val_loss"])
    assert losses[0] == losses[1]

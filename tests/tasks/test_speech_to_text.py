"""speech_to_text end to end through the real `tao` command, on real FSDD, LJSpeech and LibriSpeech clips.

dataset_convert of the whole of FSDD (a second), one short QuartzNet train on a slice (300 clips, 3 epochs:
the loss must fall; no accuracy is asked of so little training), then evaluate, infer and the two exports,
then infer_onnx, which must give infer's transcripts and, below the transcripts, the same log-probs. The
multi-word check: LJSpeech through convert -> Citrinet train (a few steps, a sentencepiece tokenizer) ->
evaluate -> export -> infer_onnx. The FSDD accuracy goal (WER <= 0.05) is a benchmark
(benchmarks/bench_speech_to_text.py), not a test.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import KEY, assert_error, assert_ok, concurrently, dataset, status, tao

ASR = "speech_to_text"
ARCHIVE = Path("checkpoints") / "trained-model.tao"
SMALL = ["model.encoder.channel_scale=0.25", "trainer.enable_progress_bar=false"]


def every_nth(manifest: Path, n: int, dest: Path) -> Path:
    """A slice of a manifest with every digit and speaker in it; paths made absolute (the slice lives elsewhere)."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines()][::n]
    for row in rows:
        row["audio_filepath"] = str(manifest.parent / row["audio_filepath"])
    dest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dest


@pytest.fixture(scope="session")
def fsdd(tmp_path_factory) -> dict:
    source = dataset("fsdd")
    root = tmp_path_factory.mktemp("asr")
    tao(ASR, "dataset_convert", "-r", root / "convert", "dataset_name=fsdd", f"source_data_dir={source}",
        f"target_data_dir={root / 'fsdd'}", check=True)
    return {"root": root, "data": root / "fsdd",
            "train": every_nth(root / "fsdd" / "train_manifest.json", 9, root / "train_slice.json"),
            "test": every_nth(root / "fsdd" / "test_manifest.json", 10, root / "test_slice.json")}


@pytest.fixture(scope="session")
def asr_trained(fsdd) -> Path:
    results = fsdd["root"] / "train"
    tao(ASR, "train", "-r", results, "-k", KEY, f"training_ds.manifest_filepath={fsdd['train']}",
        f"validation_ds.manifest_filepath={fsdd['test']}", "trainer.max_epochs=3", *SMALL, check=True)
    return results


@pytest.fixture(scope="session")
def asr_runs(asr_trained, fsdd) -> dict:
    root = fsdd["root"] / "runs"
    model = asr_trained / ARCHIVE
    clips = [fsdd["data"] / "wavs" / "test" / "7_jackson_0.wav", dataset("fsdd") / "recordings" / "3_theo_2.wav"]
    files = "file_paths=[" + ",".join(str(c) for c in clips) + "]"
    done = concurrently(
        evaluate=[ASR, "evaluate", "-r", root / "evaluate", "-k", KEY, "-m", model,
                  f"test_ds.manifest_filepath={fsdd['test']}"],
        infer=[ASR, "infer", "-r", root / "infer", "-k", KEY, "-m", model, files],
        export=[ASR, "export", "-r", root / "export", "-k", KEY, "-m", model],
        export_plain=[ASR, "export", "-r", root / "export_plain", "-k", KEY, "-m", model, "export_format=ONNX",
                      "encrypt=false"])
    done.update(concurrently(
        infer_manifest=[ASR, "infer", "-r", root / "infer_manifest", "-k", KEY, "-m", model,
                        f"input_manifest={fsdd['test']}"],
        infer_onnx=[ASR, "infer_onnx", "-r", root / "infer_onnx", "-k", KEY, "-m",
                    root / "export" / "exported-model.riva", f"input_manifest={fsdd['test']}"]))
    return {name: (proc, root / name) for name, proc in done.items()}


def metrics_rows(results: Path) -> list:
    with open(results / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_dataset_convert_resamples_fsdd_to_16k_with_the_standard_split(fsdd):
    import soundfile

    st = status(fsdd["root"] / "convert")
    assert st["state"] == "finished"
    assert st["metrics"]["train_utterances"] == 2700 and st["metrics"]["test_utterances"] == 300
    info = soundfile.info(str(fsdd["data"] / "wavs" / "test" / "7_jackson_0.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    first = json.loads((fsdd["data"] / "test_manifest.json").read_text().splitlines()[0])
    assert first["text"] in "zero one two three four five six seven eight nine".split()


def test_train_falls_in_loss_logs_wer_and_audio_throughput_and_keeps_the_best_wer(asr_trained):
    st = status(asr_trained)
    assert st["state"] == "finished" and st["task"] == ASR and (asr_trained / ARCHIVE).is_file()
    rows = metrics_rows(asr_trained)
    assert len(rows) == 3
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    for row in rows:
        assert 0.0 <= float(row["val_wer"]) <= 1.0 and 0.0 <= float(row["val_cer"]) <= 1.0
        assert float(row["train_audio_seconds_per_sec"]) > 0
    best = min(float(r["val_wer"]) for r in rows)
    assert st["best_model"]["monitor"] == "val_wer" and st["best_model"]["mode"] == "min"
    assert st["best_model"]["value"] == pytest.approx(best)
    plots = list((asr_trained / "plots").glob("*.png"))
    assert plots and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    assert not (asr_trained / "checkpoints" / "last.ckpt").exists()


def test_evaluate_reports_wer_and_cer_and_every_prediction(asr_runs):
    proc, folder = asr_runs["evaluate"]
    assert_ok(proc)
    metrics = status(folder)["metrics"]
    report = json.loads((folder / "evaluation_report.json").read_text())
    assert len(report["predictions"]) == report["utterances"] == 30 and report["words"] == 30
    assert metrics["test_wer"] == pytest.approx(report["word_errors"] / report["words"], abs=1e-6)
    assert metrics["test_cer"] == pytest.approx(report["char_errors"] / report["chars"], abs=1e-6)
    assert "WER" in proc.stdout and "real-time factor" in proc.stdout


def test_infer_transcribes_files_of_any_rate_and_prints_the_real_time_factor(asr_runs):
    proc, folder = asr_runs["infer"]
    assert_ok(proc)
    rows = json.loads((folder / "infer_results.json").read_text())
    assert [Path(r["audio_filepath"]).name for r in rows] == ["7_jackson_0.wav", "3_theo_2.wav"]  # 16 kHz, 8 kHz
    assert all(r["duration"] > 0.1 for r in rows) and "real-time factor" in proc.stdout


def test_riva_export_holds_the_acoustic_model_the_preprocessor_and_the_vocabulary(asr_runs):
    from tao_launcher.core.archive import open_archive

    proc, folder = asr_runs["export"]
    assert_ok(proc)
    with open_archive(folder / "exported-model.riva", KEY) as opened:
        config = yaml.safe_load((opened / "riva_config.yaml").read_text())["riva_model"]
        assert (opened / "model.onnx").is_file() and not (opened / "model.safetensors").exists()
    assert [i["name"] for i in config["inputs"]] == ["audio_signal", "length"]
    assert config["inputs"][0]["dims"] == [-1, 64, -1] and config["outputs"][0]["dims"] == [-1, -1, 29]
    assert config["labels"][0] == " " and config["blank_index"] == 28 and config["subsampling_factor"] == 2
    assert config["preprocessor"]["features"] == 64 and config["sample_rate"] == 16000


def test_infer_onnx_gives_infers_transcripts_and_log_probs(asr_runs, asr_trained, fsdd):
    """The CLI transcripts agree; below them, the exported graph gives the torch model's log-probs on real
    features with a padded batch (an untrained model's transcripts may be mostly empty)."""
    import numpy as np

    from tao_launcher.asr.audio import load_audio
    from tao_launcher.asr.dataset import audio_batch
    from tao_launcher.core.inference import onnx_runner, torch_runner
    from tao_launcher.core.model import load_export, load_model
    from tao_launcher.tasks.speech_to_text import model as family
    from tao_launcher.tasks.speech_to_text.model import SpeechToTextNet

    for name in ("infer_manifest", "infer_onnx"):
        assert_ok(asr_runs[name][0])
    torch_rows = json.loads((asr_runs["infer_manifest"][1] / "infer_results.json").read_text())
    onnx_rows = json.loads((asr_runs["infer_onnx"][1] / "infer_results.json").read_text())
    assert len(torch_rows) == 30 and [r["transcript"] for r in torch_rows] == [r["transcript"] for r in onnx_rows]

    net, _, config = load_model(asr_trained / ARCHIVE, KEY, ASR, family, SpeechToTextNet)
    plain = asr_runs["export_plain"][1] / "exported-model-onnx" / "model.onnx"
    model_bytes, _, _ = load_export(plain, KEY, ASR, family)
    clips = [load_audio(json.loads(line)["audio_filepath"], 16000) for line in fsdd["test"].read_text().splitlines()[:4]]
    batch = audio_batch(clips)
    features, lengths = net.preprocessor(batch["audio"], batch["lengths"])
    feeds = {"audio_signal": features.numpy(), "length": lengths.numpy()}
    (t_logprobs, t_lengths), (o_logprobs, o_lengths) = torch_runner(net)(feeds), onnx_runner(model_bytes)(feeds)
    assert np.array_equal(t_lengths, o_lengths)
    for row, n in enumerate(t_lengths):
        assert np.abs(t_logprobs[row, :n] - o_logprobs[row, :n]).max() < 1e-3


def test_ljspeech_citrinet_with_a_trained_tokenizer_runs_every_step(tmp_path):
    """The multi-word check: convert -> train (a few steps) -> evaluate -> export -> infer_onnx with subwords."""
    source = dataset("ljspeech_sample")
    assert_ok(tao(ASR, "dataset_convert", "-r", tmp_path / "convert", "dataset_name=ljspeech",
                  f"source_data_dir={source}", f"target_data_dir={tmp_path / 'lj'}", "test_ratio=0.1"))
    train, test = tmp_path / "lj" / "train_manifest.json", tmp_path / "lj" / "test_manifest.json"
    assert_ok(tao(ASR, "train", "-r", tmp_path / "train", "-k", KEY, "model.arch=citrinet_256",
                  "model.encoder.channel_scale=0.125", "model.tokenizer.vocab_size=64", "trainer.max_steps=3",
                  "training_ds.batch_size=8", f"training_ds.manifest_filepath={train}",
                  "training_ds.speed_perturb=[0.9,1.1]",
                  f"validation_ds.manifest_filepath={test}", "trainer.enable_progress_bar=false"))
    model = tmp_path / "train" / ARCHIVE
    n_train = len(train.read_text().splitlines())
    trained = re.search(r"training on (\d+) utterances \(with their copies at speeds 0\.9, 1\.1\)",
                        (tmp_path / "train" / "log.txt").read_text())
    # the copies are there; a few clips (of any speed) are too short for Citrinet's 8x stride and left out
    assert trained and 2 * n_train < int(trained.group(1)) <= 3 * n_train
    assert (tmp_path / "train" / "tokenizer" / "tokenizer.model").is_file()
    assert_ok(tao(ASR, "evaluate", "-r", tmp_path / "evaluate", "-k", KEY, "-m", model,
                  f"test_ds.manifest_filepath={test}"))
    assert status(tmp_path / "evaluate")["metrics"]["utterances"] == 10
    assert_ok(tao(ASR, "export", "-r", tmp_path / "export", "-k", KEY, "-m", model))
    proc = tao(ASR, "infer_onnx", "-r", tmp_path / "infer_onnx", "-k", KEY, "-m",
               tmp_path / "export" / "exported-model.riva", f"input_manifest={test}")
    assert_ok(proc)
    assert len(json.loads((tmp_path / "infer_onnx" / "infer_results.json").read_text())) == 10


def test_librispeech_sample_converts_its_test_clean_split(tmp_path):
    source = dataset("librispeech_sample")
    assert_ok(tao(ASR, "dataset_convert", "-r", tmp_path / "convert", "dataset_name=librispeech",
                  f"source_data_dir={source}", f"target_data_dir={tmp_path / 'ls'}"))
    rows = [json.loads(line) for line in (tmp_path / "ls" / "test_manifest.json").read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["text"].split()) > 3 for r in rows)
    assert not (tmp_path / "ls" / "train_manifest.json").exists()


def test_a_bad_manifest_line_is_named(tmp_path, fsdd):
    bad = tmp_path / "bad.json"
    lines = fsdd["test"].read_text().splitlines()[:3]
    bad.write_text(lines[0] + "\n" + '{"audio_filepath": "gone.wav", "duration": 1.0, "text": "one"}\n' + lines[2] + "\n")
    proc = tao(ASR, "train", "-r", tmp_path / "train", "-k", KEY, f"training_ds.manifest_filepath={bad}",
               f"validation_ds.manifest_filepath={fsdd['test']}", *SMALL)
    assert_error(proc, 1, "bad.json:2:", "gone.wav")

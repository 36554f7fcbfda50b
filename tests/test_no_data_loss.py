"""Nothing of the user's is lost by a run that tao refuses (docs/reliability.md, "What tao may delete"):
--overwrite never takes a folder that no tao run wrote, nor an input that lies inside the folder it replaces."""

from __future__ import annotations

import json

import pytest

from conftest import KEY, assert_error, assert_ok, tao
from tao_launcher.registry import TASKS


def finished_run(folder, task: str, subtask: str = "train"):
    """A results folder as a finished run leaves it: status.json, log.txt and the model archive."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"task": task, "subtask": subtask, "state": "finished"}))
    (folder / "log.txt").write_text("the log of the run\n")
    model = folder / "checkpoints" / "trained-model.tao"
    model.write_bytes(b"the only trained model")
    return model


@pytest.mark.parametrize("task", sorted(TASKS))
def test_overwrite_refuses_a_model_inside_the_folder_it_would_replace(task, tmp_path):
    results = tmp_path / "train"
    model = finished_run(results, task)
    proc = tao(task, "export", "-r", results, "-m", model, "-k", KEY, "--overwrite")
    assert proc.returncode == 2, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("tao: error:")]
    assert len(error) == 1 and f"-m {model} lies inside the results folder" in error[0], proc.stderr
    assert model.read_bytes() == b"the only trained model" and (results / "log.txt").is_file()


@pytest.mark.parametrize("subtask,name,content,flag", [
    ("export", "export.yaml", "export_format: ONNX\n", "-e"),                   # the spec file
    ("evaluate", "dev.tsv", "a fine film\t1\n", "test_ds.file_path"),          # a data file of the spec
], ids=["spec", "data"])
def test_overwrite_refuses_an_input_inside_the_folder_it_would_replace(subtask, name, content, flag, tmp_path):
    results = tmp_path / "r"
    finished_run(results, "text_classification", subtask)
    inside = results / name
    inside.write_text(content)
    (tmp_path / "m.tao").write_bytes(b"x")
    given = ["-e", inside] if flag == "-e" else [f"{flag}={inside}"]
    proc = tao("text_classification", subtask, *given, "-r", results, "-m", tmp_path / "m.tao", "-k", KEY,
               "--overwrite")
    assert proc.returncode == 2 and f"{flag} {inside} lies inside the results folder" in proc.stderr, proc.stderr
    assert inside.read_text() == content


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_a_folder_no_tao_run_wrote_is_never_replaced(overwrite, tmp_path):
    results = tmp_path / "mine"
    results.mkdir()
    (results / "notes.txt").write_text("keep me")
    (tmp_path / "m.tao").write_bytes(b"x")
    proc = tao("text_classification", "export", "-r", results, "-m", tmp_path / "m.tao", "-k", KEY, *overwrite)
    assert proc.returncode == 2 and "no tao run wrote (notes.txt)" in proc.stderr, proc.stderr
    assert [p.name for p in results.iterdir()] == ["notes.txt"] and (results / "notes.txt").read_text() == "keep me"


def test_overwrite_keeps_the_earlier_run_until_the_new_one_has_finished(tmp_path):
    from tao_launcher.core.results import ResultsFolder

    model = finished_run(tmp_path / "r", "t")
    folder = ResultsFolder(tmp_path / "r", "t", "train")
    folder.prepare(overwrite=True, resumable=True)
    assert not model.exists()                       # out of the new run's way, not deleted
    (tmp_path / "r" / "checkpoints").mkdir()
    (tmp_path / "r" / "checkpoints" / "trained-model.tao").write_bytes(b"the new model")
    folder.end("finished")
    folder.close()
    assert model.read_bytes() == b"the new model" and not (tmp_path / "r" / ".tao-replaced").exists()
    assert json.loads((tmp_path / "r" / "status.json").read_text())["state"] == "finished"


@pytest.mark.parametrize("state", ["failed", "interrupted"])
def test_a_failed_or_stopped_overwrite_puts_the_earlier_run_back(state, tmp_path):
    from tao_launcher.core.results import ResultsFolder

    model = finished_run(tmp_path / "r", "t")
    folder = ResultsFolder(tmp_path / "r", "t", "train")
    folder.prepare(overwrite=True, resumable=True)
    (tmp_path / "r" / "log.txt").write_text("the failed run's log\n")
    (tmp_path / "r" / "metrics.csv").write_text("epoch\n")
    folder.end(state, "it went wrong")
    folder.close()
    assert model.read_bytes() == b"the only trained model"
    assert (tmp_path / "r" / "log.txt").read_text() == "the log of the run\n"
    assert (tmp_path / "r" / "log.failed-overwrite.txt").read_text() == "the failed run's log\n"
    assert not (tmp_path / "r" / "metrics.csv").exists() and not (tmp_path / "r" / ".tao-replaced").exists()
    assert json.loads((tmp_path / "r" / "status.json").read_text())["state"] == "finished"


def test_the_next_run_puts_back_what_a_killed_overwrite_was_replacing(tmp_path):
    from tao_launcher.core.results import ResultsFolder

    model = finished_run(tmp_path / "r", "t")
    killed = ResultsFolder(tmp_path / "r", "t", "train")
    killed.prepare(overwrite=True, resumable=True)
    killed._release()                                # kill -9: no end, no close; the lock goes with the process
    folder = ResultsFolder(tmp_path / "r", "t", "evaluate")
    with pytest.raises(Exception, match="already holds"):   # the finished train run is back, and refused as such
        folder.prepare(overwrite=False, resumable=False)
    assert model.read_bytes() == b"the only trained model"
    assert json.loads((tmp_path / "r" / "status.json").read_text())["state"] == "finished"


def test_overwrite_with_bad_data_keeps_the_finished_run(tmp_path):
    results = tmp_path / "train"
    model = finished_run(results, "text_classification")
    bad = tmp_path / "train.tsv"
    bad.write_text("a fine film\t1\nno label here\n")
    proc = tao("text_classification", "train", "-r", results, "-k", KEY, "--overwrite",
               "model.dataset.num_classes=2", f"training_ds.file_path={bad}", f"validation_ds.file_path={bad}")
    assert proc.returncode == 1 and f"{bad}:2" in proc.stderr, proc.stderr
    assert model.read_bytes() == b"the only trained model"
    assert json.loads((results / "status.json").read_text())["state"] == "finished"
    assert (results / "log.failed-overwrite.txt").is_file()   # the failed attempt's log, for its error


# ----------------------------------------------------------------------------- dataset_convert's target

def files(folder, contents: dict):
    """``folder`` holding ``contents``: {relative path: text}."""
    for name, text in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def fsdd(folder):
    from conftest import sine_wav

    for name in ("1_amy_0.wav", "1_amy_5.wav", "2_amy_6.wav"):
        sine_wav(folder / "recordings" / name, seconds=0.1)
    return folder


def squad(folder):
    articles = [{"title": f"t{i}", "paragraphs": [{"context": "Ann lives in Paris.", "qas": [
        {"id": f"q{i}", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 13}]}]}]} for i in (1, 2)]
    return files(folder, {"squad.json": json.dumps({"data": articles})}) / "squad.json"


# per task: a tiny source as (its dataset_convert arguments but target_data_dir), a file convert writes, and a
# file of the user's beside its outputs that no rerun may touch
CONVERTS = {
    "text_classification": lambda src: (["dataset_name=sst2", "source_data_dir={}".format(files(src, {
        "train.tsv": "sentence\tlabel\nfine\t1\ndull\t0\n", "dev.tsv": "sentence\tlabel\nok\t1\n"}))],
        "train.tsv", "notes.txt"),
    "token_classification": lambda src: (["source_data_dir={}".format(files(src, {
        "eng.train": "Jim B-PER\nran O\n", "eng.testa": "Ann B-PER\n"}))], "text_train.txt", "notes.txt"),
    "punctuation_and_capitalization": lambda src: (["source_data_dir={}".format(files(src, {
        "prose.txt": "How are you? Fine.\nWell, I am here.\nSo am I.\n"}))], "labels_train.txt", "notes.txt"),
    # the source has no test split, and yet test.tsv is convert's: its ids would not match the new dicts
    "intent_slot_classification": lambda src: (["source_data_dir={}".format(files(src, {
        "train/seq.in": "to boston\n", "train/seq.out": "O B-to\n", "train/label": "flight\n"}))],
        "test.tsv", "notes.txt"),
    "question_answering": lambda src: ([f"source_file={squad(src)}", "dev_ratio=0.5"], "dev.json", "notes.txt"),
    "speech_to_text": lambda src: (["dataset_name=fsdd", f"source_data_dir={fsdd(src)}"], "train_manifest.json",
                                   "wavs/train/mine.wav"),
}


def converted(folder) -> dict:
    """Every file of a target but convert's record: {relative path: bytes}."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".tao-convert.json"}


@pytest.mark.parametrize("task", sorted(CONVERTS))
def test_dataset_convert_refuses_a_users_file_in_its_way_and_replaces_it_only_with_overwrite(task, tmp_path):
    args, name, _ = CONVERTS[task](tmp_path / "src")
    target = files(tmp_path / "data", {name: "mine", "notes.txt": "keep me"})
    proc = tao(task, "dataset_convert", "-r", tmp_path / "r1", *args, f"target_data_dir={target}")
    assert_error(proc, 2, f"target_data_dir {target} holds {name}, which dataset_convert did not write",
                 "add --overwrite")
    assert converted(target) == {name: b"mine", "notes.txt": b"keep me"} and not (tmp_path / "r1").exists()
    assert_ok(tao(task, "dataset_convert", "-r", tmp_path / "r2", *args, f"target_data_dir={target}", "--overwrite"))
    after = converted(target)
    assert after.get(name) != b"mine" and after["notes.txt"] == b"keep me"


@pytest.mark.parametrize("task", sorted(CONVERTS))
def test_a_rerun_of_dataset_convert_replaces_its_own_files_and_keeps_the_users(task, tmp_path):
    args, _, mine = CONVERTS[task](tmp_path / "src")
    target = tmp_path / "data"
    assert_ok(tao(task, "dataset_convert", "-r", tmp_path / "r1", *args, f"target_data_dir={target}"))
    first = converted(target)
    files(target, {mine: "my own file"})
    assert_ok(tao(task, "dataset_convert", "-r", tmp_path / "r2", *args, f"target_data_dir={target}"))
    assert converted(target) == {**first, mine: b"my own file"}


@pytest.mark.parametrize("task", sorted(CONVERTS))
def test_dataset_convert_into_its_own_source_folder_never_reads_its_output(task, tmp_path):
    """Twice into the source's folder: the same files again, or refused (the source's own files are where
    convert writes) with the source untouched."""
    args, _, _ = CONVERTS[task](tmp_path / "src")
    source = tmp_path / "src"
    before = converted(source)
    first = tao(task, "dataset_convert", "-r", tmp_path / "r1", *args, f"target_data_dir={source}")
    if task == "text_classification":   # SST-2's own train.tsv and dev.tsv
        assert_error(first, 2, "holds dev.tsv, train.tsv, which dataset_convert did not write")
        assert converted(source) == before
        return
    assert_ok(first)
    once = converted(source)
    assert_ok(tao(task, "dataset_convert", "-r", tmp_path / "r2", *args, f"target_data_dir={source}"))
    assert converted(source) == once

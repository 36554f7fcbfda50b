"""speech_to_text dataset_convert (tasks/speech_to_text/data.py): the four source layouts, built small in
tmp_path from sine waves, then the real FSDD, LibriSpeech and LJSpeech samples when they are here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import DATASETS
from tao_launcher.asr.audio import write_wav
from tao_launcher.asr.manifest import read_manifest
from tao_launcher.errors import DataError, UsageError
from tao_launcher.tasks.speech_to_text.data import convert


def tone(path: Path, seconds: float = 0.2, rate: int = 8000, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    if path.suffix == ".wav" and not kwargs:
        write_wav(path, samples, rate)
    else:
        soundfile.write(str(path), samples, rate, **kwargs)
    return path


def manifest_rows(path: Path) -> list:
    return [json.loads(text) for text in path.read_text().splitlines()]


def assert_converted(target: Path, name: str, count: int, rate: int = 16000) -> list:
    """The manifest's lines: ``count`` of them, each a mono 16-bit wav at ``rate`` under target/wavs, with
    the duration of the written file; read_manifest accepts it."""
    rows = manifest_rows(target / name)
    assert len(rows) == count
    for row in rows:
        assert row["audio_filepath"].startswith("wavs/")
        info = soundfile.info(str(target / row["audio_filepath"]))
        assert (info.samplerate, info.channels, info.subtype) == (rate, 1, "PCM_16")
        assert row["duration"] == pytest.approx(info.frames / rate, abs=1e-4)
    assert len(read_manifest(target / name)[0]) == count
    return rows


def left_alone(target: Path, *names: str) -> bool:
    """Nothing but ``names`` in ``target`` (or no target at all): a failed convert wrote nothing."""
    return not target.exists() or sorted(p.name for p in target.iterdir()) == sorted(names)


# ----------------------------------------------------------------------------- fsdd

def fsdd(root: Path, digits=range(3), takes=range(7), speaker="amy") -> Path:
    for digit in digits:
        for take in takes:
            tone(root / "recordings" / f"{digit}_{speaker}_{take}.wav", seconds=0.1 + 0.01 * take)
    return root


def test_fsdd_takes_0_to_4_are_test_and_transcripts_are_digit_words(tmp_path):
    tracked = []
    summary = convert("fsdd", fsdd(tmp_path / "src"), tmp_path / "out", track=lambda clips: tracked.append(clips) or clips)
    test = assert_converted(tmp_path / "out", "test_manifest.json", 15)
    train = assert_converted(tmp_path / "out", "train_manifest.json", 6)
    assert {r["audio_filepath"] for r in test} >= {"wavs/test/0_amy_0.wav", "wavs/test/2_amy_4.wav"}
    assert {r["audio_filepath"] for r in train} == {f"wavs/train/{d}_amy_{t}.wav" for d in range(3) for t in (5, 6)}
    assert {r["text"] for r in train} == {"zero", "one", "two"}
    assert next(r for r in test if r["audio_filepath"] == "wavs/test/1_amy_2.wav")["text"] == "one"
    assert summary["train_utterances"] == 6 and summary["test_utterances"] == 15
    assert summary["train_hours"] == pytest.approx(sum(r["duration"] for r in train) / 3600, abs=1e-4)
    assert summary["skipped"] == 0 and summary["removed_characters"] == {}
    assert sorted(summary["manifests"]) == ["test_manifest.json", "train_manifest.json"]
    assert len(tracked) == 1 and len(tracked[0]) == 21  # the one loop over the clips is tracked
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".tao-convert.json", "test_manifest.json",
                                                                    "train_manifest.json", "wavs"]


def test_fsdd_bad_file_name_is_an_error_naming_it_or_skipped_and_counted(tmp_path):
    src = fsdd(tmp_path / "src")
    stray = tone(src / "recordings" / "x_amy_1.wav")
    with pytest.raises(DataError, match=rf"^{stray}: not an FSDD recording name"):
        convert("fsdd", src, tmp_path / "out")
    assert left_alone(tmp_path / "out")
    summary = convert("fsdd", src, tmp_path / "out", skip_bad=True)
    assert summary["skipped"] == 1 and str(stray) in summary["skipped_reasons"][0]
    assert summary["train_utterances"] + summary["test_utterances"] == 21


def test_a_bad_clip_midway_leaves_nothing_half_written_and_keeps_the_users_files(tmp_path):
    src = fsdd(tmp_path / "src")
    junk = src / "recordings" / "2_amy_6.wav"  # sorted last: every other clip is written first
    junk.write_bytes(b"RIFF but not really a wave file")
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=rf"cannot read audio file {junk}: "):
        convert("fsdd", src, target)
    assert left_alone(target, "notes.txt")
    summary = convert("fsdd", src, target, skip_bad=True)
    assert summary["skipped"] == 1 and summary["train_utterances"] == 5
    assert left_alone(target, "notes.txt", "wavs", "train_manifest.json", "test_manifest.json", ".tao-convert.json")


def test_an_empty_recording_is_bad(tmp_path):
    src = fsdd(tmp_path / "src")
    empty = src / "recordings" / "0_amy_9.wav"
    write_wav(empty, np.zeros(0, np.float32), 8000)
    with pytest.raises(DataError, match=rf"^audio file {empty} is empty \(0 samples\)"):
        convert("fsdd", src, tmp_path / "out")
    assert convert("fsdd", src, tmp_path / "out", skip_bad=True)["skipped"] == 1


def test_a_rerun_replaces_its_own_wavs_folder(tmp_path):
    target = tmp_path / "out"
    convert("fsdd", fsdd(tmp_path / "a", digits=[1]), target)
    convert("fsdd", fsdd(tmp_path / "b", digits=[2], speaker="bob"), target)
    assert sorted(p.name for p in (target / "wavs" / "train").iterdir()) == ["2_bob_5.wav", "2_bob_6.wav"]
    assert_converted(target, "train_manifest.json", 2)


def test_wrong_dataset_name_or_layout_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="dataset_name 'timit' is not one of fsdd, librispeech"):
        convert("timit", tmp_path, tmp_path / "out")
    with pytest.raises(UsageError, match="no recordings/\\*.wav under"):
        convert("fsdd", tmp_path, tmp_path / "out")
    with pytest.raises(UsageError, match="does not exist"):
        convert("ljspeech", tmp_path / "none", tmp_path / "out")


# ----------------------------------------------------------------------------- librispeech

def librispeech(root: Path) -> Path:
    for subset, speaker, lines in (("train-clean-100", "19", ["IT'S 2 O'CLOCK", "ANOTHER ONE"]),
                                   ("test-clean", "61", ["A TEST"])):
        chapter = root / "LibriSpeech" / subset / speaker / "70"
        for i in range(len(lines)):
            tone(chapter / f"{speaker}-70-{i:04d}.flac", rate=16000, format="FLAC")
        (chapter / f"{speaker}-70.trans.txt").write_text(
            "".join(f"{speaker}-70-{i:04d} {text}\n" for i, text in enumerate(lines)))
    return root


def test_librispeech_subset_folders_decide_the_split_and_only_present_splits_are_written(tmp_path):
    summary = convert("librispeech", librispeech(tmp_path / "src"), tmp_path / "out")
    train = assert_converted(tmp_path / "out", "train_manifest.json", 2)
    assert [r["text"] for r in train] == ["it's two o'clock", "another one"]
    assert [r["text"] for r in assert_converted(tmp_path / "out", "test_manifest.json", 1)] == ["a test"]
    assert not (tmp_path / "out" / "dev_manifest.json").exists()
    assert summary["train_utterances"] == 2 and "dev_utterances" not in summary


def test_librispeech_flac_without_line_and_line_without_flac_name_the_transcript(tmp_path):
    src = librispeech(tmp_path / "src")
    trans = src / "LibriSpeech" / "train-clean-100" / "19" / "70" / "19-70.trans.txt"
    (trans.parent / "19-70-0001.flac").unlink()
    with pytest.raises(DataError, match=rf"^{trans}:2: 19-70-0001.flac does not exist"):
        convert("librispeech", src, tmp_path / "out")
    tone(trans.parent / "19-70-0001.flac", rate=16000, format="FLAC")
    tone(trans.parent / "19-70-0009.flac", rate=16000, format="FLAC")
    with pytest.raises(DataError, match=rf"^{trans}: no line for 19-70-0009.flac"):
        convert("librispeech", src, tmp_path / "out")
    assert left_alone(tmp_path / "out")
    summary = convert("librispeech", src, tmp_path / "out", skip_bad=True)
    assert summary["skipped"] == 1 and summary["train_utterances"] == 2


def test_librispeech_dev_subset_gets_a_dev_manifest(tmp_path):
    chapter = tmp_path / "dev-other" / "5" / "6"
    tone(chapter / "5-6-0000.flac", rate=16000, format="FLAC")
    (chapter / "5-6.trans.txt").write_text("5-6-0000 HELLO")  # no newline at the end, as the sample
    summary = convert("librispeech", tmp_path / "dev-other", tmp_path / "out")
    assert summary["manifests"] == ["dev_manifest.json"] and summary["dev_utterances"] == 1


# ----------------------------------------------------------------------------- ljspeech

def ljspeech(root: Path, n: int = 10) -> Path:
    lines = []
    for i in range(n):
        tone(root / "wavs" / f"LJ001-{i:04d}.wav", rate=22050)
        lines.append(f"LJ001-{i:04d}|In {1800 + i}, Mr. X|In eighteen hundred, Mister X" if i else
                     f"LJ001-{i:04d}|Only the text, 3 words|")
    (root / "metadata.csv").write_bytes("\r\n".join(lines).encode() + b"\r\n")  # CRLF, as the shared copy
    return root


def test_ljspeech_uses_the_normalized_column_and_a_seeded_test_share(tmp_path):
    summary = convert("ljspeech", ljspeech(tmp_path / "src"), tmp_path / "out", test_ratio=0.2)
    test = assert_converted(tmp_path / "out", "test_manifest.json", 2)
    train = assert_converted(tmp_path / "out", "train_manifest.json", 8)
    texts = {r["audio_filepath"].split("/")[-1]: r["text"] for r in test + train}
    assert texts["LJ001-0000.wav"] == "only the text three words"
    assert texts["LJ001-0003.wav"] == "in eighteen hundred mister x"
    assert summary["removed_characters"] == {",": 10}
    again = convert("ljspeech", tmp_path / "src", tmp_path / "again", test_ratio=0.2)
    assert manifest_rows(tmp_path / "again" / "test_manifest.json") == test
    assert again["test_hours"] == summary["test_hours"]
    other = convert("ljspeech", tmp_path / "src", tmp_path / "other", test_ratio=0.2, seed=7)
    assert other["test_utterances"] == 2


def test_ljspeech_small_ratio_still_tests_one_clip_and_missing_wav_names_the_line(tmp_path):
    src = ljspeech(tmp_path / "src", n=3)
    assert convert("ljspeech", src, tmp_path / "out", test_ratio=0.01)["test_utterances"] == 1
    (src / "wavs" / "LJ001-0002.wav").unlink()
    with pytest.raises(DataError, match=rf"^{src / 'metadata.csv'}:3: .*LJ001-0002.wav does not exist"):
        convert("ljspeech", src, tmp_path / "out2")
    assert left_alone(tmp_path / "out2")


def test_no_clip_left_after_skipping_is_an_error_and_leaves_no_target_folder(tmp_path):
    src = ljspeech(tmp_path / "src", n=2)
    for wav in (src / "wavs").iterdir():
        wav.write_bytes(b"")
    with pytest.raises(DataError, match=f"no clip of {src} could be converted"):
        convert("ljspeech", src, tmp_path / "out", skip_bad=True)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- manifest

def test_manifest_is_checked_resampled_normalised_and_written_under_its_own_name(tmp_path):
    src = tmp_path / "src"
    tone(src / "clips" / "a.flac", seconds=0.5, rate=44100, format="FLAC")
    tone(src / "clips" / "b.wav", seconds=0.25, rate=16000)
    (src / "my_set.json").write_text(
        json.dumps({"audio_filepath": "clips/a.flac", "duration": 0.5, "text": "Hello, World 2!"}) + "\n" +
        json.dumps({"audio_filepath": str(src / "clips" / "b.wav"), "duration": 0.25, "text": "B"}) + "\n")
    summary = convert("manifest", src / "my_set.json", tmp_path / "out")
    rows = assert_converted(tmp_path / "out", "my_set.json", 2)
    assert [r["text"] for r in rows] == ["hello world two", "b"]
    assert rows[0]["audio_filepath"] == "wavs/my_set/a.wav" and rows[0]["duration"] == pytest.approx(0.5, abs=1e-3)
    assert summary["my_set_utterances"] == 2 and summary["removed_characters"] == {",": 1, "!": 1}


def test_manifest_bad_line_fails_whole_or_is_skipped(tmp_path):
    tone(tmp_path / "a.wav")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"audio_filepath": "a.wav", "duration": 0.2, "text": "ok"}) + "\n" +
                        json.dumps({"audio_filepath": "a.wav", "duration": 3.0, "text": "long"}) + "\n")
    with pytest.raises(DataError, match=rf"^{manifest}:2: duration 3.0 s"):
        convert("manifest", manifest, tmp_path / "out")
    assert left_alone(tmp_path / "out")
    summary = convert("manifest", manifest, tmp_path / "out", skip_bad=True)
    assert summary["skipped"] == 1 and summary["m_utterances"] == 1


def test_a_nan_sample_is_bad_data_never_written_as_full_scale(tmp_path):
    tone(tmp_path / "a.wav")
    soundfile.write(str(tmp_path / "nan.wav"), np.full(1600, np.nan, np.float32), 8000, subtype="FLOAT")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"audio_filepath": "a.wav", "duration": 0.2, "text": "ok"}) + "\n" +
                        json.dumps({"audio_filepath": "nan.wav", "duration": 0.2, "text": "nan"}) + "\n")
    with pytest.raises(DataError, match=rf"^{manifest}:2: audio file .*nan.wav holds 1600 samples that are NaN"):
        convert("manifest", manifest, tmp_path / "out")
    assert left_alone(tmp_path / "out")
    summary = convert("manifest", manifest, tmp_path / "out", skip_bad=True)
    assert summary["skipped"] == 1 and summary["m_utterances"] == 1
    assert [r["text"] for r in assert_converted(tmp_path / "out", "m.json", 1)] == ["ok"]
    src = fsdd(tmp_path / "fsdd", digits=[1], takes=[5])   # a source layout without a manifest: its file named
    soundfile.write(str(src / "recordings" / "2_amy_5.wav"), np.full(800, np.inf, np.float32), 8000, subtype="FLOAT")
    with pytest.raises(DataError, match=rf"^audio file {src / 'recordings' / '2_amy_5.wav'} holds 800 samples"):
        convert("fsdd", src, tmp_path / "fsdd_out")


def test_a_transcript_empty_once_normalised_is_bad(tmp_path):
    tone(tmp_path / "a.wav")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"audio_filepath": "a.wav", "duration": 0.2, "text": "?!"}) + "\n")
    with pytest.raises(DataError, match=rf"^{manifest}:1: transcript '\?!' is empty once normalised"):
        convert("manifest", manifest, tmp_path / "out")


# ----------------------------------------------------------------------------- the real samples

def real(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent (the shared datasets folder is not on this machine)")
    return path


def test_real_fsdd_converts_to_the_standard_2700_300_split_at_16_khz(tmp_path):
    summary = convert("fsdd", real("fsdd"), tmp_path / "out")
    assert (summary["train_utterances"], summary["test_utterances"], summary["skipped"]) == (2700, 300, 0)
    test = assert_converted(tmp_path / "out", "test_manifest.json", 300)
    assert all(r["audio_filepath"].split("_")[-1] in {f"{t}.wav" for t in range(5)} for r in test)
    assert 0.1 < summary["train_hours"] < 1


def test_real_librispeech_sample_is_one_test_split_of_normalised_text(tmp_path):
    summary = convert("librispeech", real("librispeech_sample"), tmp_path / "out")
    rows = assert_converted(tmp_path / "out", "test_manifest.json", 4)
    assert summary["manifests"] == ["test_manifest.json"]
    assert rows[0]["text"].startswith("he hoped there would be stew for dinner")


def test_real_ljspeech_sample_splits_90_10_with_22_khz_resampled(tmp_path):
    summary = convert("ljspeech", real("ljspeech_sample"), tmp_path / "out")
    assert (summary["train_utterances"], summary["test_utterances"]) == (90, 10)
    rows = assert_converted(tmp_path / "out", "train_manifest.json", 90)
    assert all(set(r["text"]) <= set(" abcdefghijklmnopqrstuvwxyz'") for r in rows)

"""The ASR layer's files: audio read/resample/write (asr/audio.py), NeMo manifests (asr/manifest.py) and
transcript normalisation (asr/text.py). Sine waves written by write_wav stand in for speech."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tao_launcher.asr.audio import audio_info, change_speed, load_audio, read_audio, resample, write_wav
from tao_launcher.asr.dataset import speed_copies
from tao_launcher.asr.manifest import Utterance, read_manifest, write_manifest
from tao_launcher.asr.text import CHAR_VOCABULARY, normalize_transcript, number_words
from tao_launcher.errors import DataError


def sine(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


# ----------------------------------------------------------------------------- audio

def test_wav_round_trip_is_mono_16_bit_and_within_one_quantisation_step(tmp_path):
    wave = sine(0.5, 16000)
    write_wav(tmp_path / "a.wav", wave, 16000)
    info = soundfile.info(str(tmp_path / "a.wav"))
    assert (info.channels, info.subtype, info.samplerate) == (1, "PCM_16", 16000)
    back, rate = read_audio(tmp_path / "a.wav")
    assert rate == 16000 and back.dtype == np.float32 and back.shape == wave.shape
    assert np.max(np.abs(back - wave)) <= 1 / 32768 + 1e-6
    assert audio_info(tmp_path / "a.wav") == (8000, 16000, 0.5)
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temp file left beside it


def test_write_wav_clips_beyond_full_scale_and_replaces_an_old_file(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros(10, np.float32), 8000)
    write_wav(tmp_path / "a.wav", np.array([2.0, -2.0, 0.25], np.float32), 8000)
    back, _ = read_audio(tmp_path / "a.wav")
    assert back[0] == pytest.approx(1.0, abs=1e-4) and back[1] == -1.0 and back[2] == pytest.approx(0.25, abs=1e-4)


def test_multichannel_file_is_mixed_to_mono(tmp_path):
    left, right = sine(0.1, 8000, amplitude=0.6), np.zeros(800, np.float32)
    soundfile.write(str(tmp_path / "st.flac"), np.stack([left, right], axis=1), 8000, subtype="PCM_24")
    mono, rate = read_audio(tmp_path / "st.flac")
    assert rate == 8000 and mono.ndim == 1 and np.allclose(mono, left / 2, atol=1e-5)


@pytest.mark.parametrize("src, dst", [(8000, 16000), (22050, 16000), (16000, 16000), (44100, 8000)])
def test_resample_gives_the_new_length_and_keeps_the_pitch(src, dst):
    out = resample(sine(1.0, src, freq=300), src, dst)
    assert out.dtype == np.float32 and abs(len(out) - dst) <= 1
    assert peak_hz(out, dst) == pytest.approx(300, abs=2)


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_change_speed_scales_duration_and_pitch_together(speed):
    out = change_speed(sine(1.0, 16000, freq=300), 16000, speed)
    assert out.dtype == np.float32 and abs(len(out) - 16000 / speed) <= 1
    assert peak_hz(out, 16000) == pytest.approx(300 * speed, abs=2)


def test_speed_copies_keep_the_originals_first_and_scale_durations():
    utterances = [Utterance(Path("/a.wav"), 2.0, "a", 1), Utterance(Path("/b.wav"), 1.0, "b", 2)]
    copies = speed_copies(utterances, [1.1, 0.8, 1.0, 1.1])
    assert [(c.utterance.text, c.speed) for c in copies] == [
        ("a", 1.0), ("b", 1.0), ("a", 0.8), ("b", 0.8), ("a", 1.1), ("b", 1.1)]
    assert copies[2].duration == pytest.approx(2.5) and copies[4].duration == pytest.approx(2.0 / 1.1)
    assert [c.speed for c in speed_copies(utterances)] == [1.0, 1.0]
    slowed = speed_copies(utterances, [0.8, 1.1], max_duration=2.0)  # a 2.5 s copy is over the limit
    assert [(c.utterance.text, c.speed) for c in slowed] == [("a", 1.0), ("b", 1.0), ("b", 0.8), ("a", 1.1), ("b", 1.1)]
    clip = sine(0.1, 8000)
    assert change_speed(clip, 8000, 1.0) is clip  # the recorded copy is not resampled


def test_load_audio_resamples_only_when_the_rates_differ(tmp_path):
    write_wav(tmp_path / "a.wav", sine(0.25, 8000), 8000)
    assert load_audio(tmp_path / "a.wav", 16000).shape == (4000,)
    assert load_audio(tmp_path / "a.wav", 8000).shape == (2000,)


def test_unreadable_and_missing_audio_name_the_file_the_reason_and_the_fix(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio at all")
    for reader in (read_audio, audio_info):
        with pytest.raises(DataError, match=rf"cannot read audio file {junk}: .*[Ff]ormat.*; convert it to mono"):
            reader(junk)
        with pytest.raises(DataError, match=f"audio file {tmp_path / 'no.wav'} does not exist"):
            reader(tmp_path / "no.wav")


def test_a_nan_or_infinite_sample_is_bad_data_naming_the_file_and_when(tmp_path):
    wave = sine(0.5, 16000)
    soundfile.write(str(tmp_path / "clean.wav"), wave, 16000, subtype="FLOAT")
    wave[[4000, 4001, 6000]] = [np.nan, np.inf, -np.inf]
    soundfile.write(str(tmp_path / "nan.wav"), wave, 16000, subtype="FLOAT")
    for reader in (read_audio, audio_info):   # audio_info reads a float file whole: only it can hold them
        with pytest.raises(DataError, match=rf"^audio file {tmp_path / 'nan.wav'} holds 3 samples that are NaN or "
                                            rf"infinite \(the first at 0.250 s\): export it again"):
            reader(tmp_path / "nan.wav")
    assert audio_info(tmp_path / "clean.wav") == (8000, 16000, 0.5)


# ----------------------------------------------------------------------------- manifests

@pytest.fixture
def clips(tmp_path) -> Path:
    """A folder with a manifest-ready audio/ subfolder: a.wav 0.5 s, b.wav 0.25 s, empty.wav 0 s, junk.wav, and
    nan.wav (float samples, two of them NaN or infinite)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    write_wav(audio / "a.wav", sine(0.5, 16000), 16000)
    write_wav(audio / "b.wav", sine(0.25, 16000), 16000)
    write_wav(audio / "empty.wav", np.zeros(0, np.float32), 16000)
    (audio / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    soundfile.write(str(audio / "nan.wav"), np.array([0.1, np.nan, 0.2, np.inf], np.float32), 16000, subtype="FLOAT")
    return tmp_path


def line(audio="audio/a.wav", duration=0.5, text="hello", **extra) -> str:
    return json.dumps({"audio_filepath": audio, "duration": duration, "text": text, **extra})


def test_manifest_reads_relative_paths_from_its_own_folder_and_ignores_blank_lines_and_extra_keys(clips):
    manifest = clips / "m.json"
    manifest.write_text(line(speaker="x") + "\n\n" + line(str(clips / "audio" / "b.wav"), 0.25, " two words ") + "\n")
    utterances, skipped = read_manifest(manifest)
    assert skipped == []
    assert utterances == [Utterance(clips / "audio" / "a.wav", 0.5, "hello", 1),
                          Utterance(clips / "audio" / "b.wav", 0.25, "two words", 3)]


BAD_LINES = [
    ("{not json", "not JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    (json.dumps({"duration": 0.5, "text": "x"}), "no 'audio_filepath'"),
    (json.dumps({"audio_filepath": "audio/a.wav", "text": "x"}), "no 'duration'"),
    (line(audio=7), "audio_filepath 7 is not a path"),
    (line(duration="0.5"), "duration '0.5' is not a number of seconds"),
    (line(duration=True), "duration True is not a number"),
    (line(text=["x"]), r"text \['x'\] is not a string"),
    (json.dumps({"audio_filepath": "audio/a.wav", "duration": 0.5}), r"no transcript \('text' is missing\)"),
    (line(text="   "), "empty transcript"),
    (line(audio="audio/none.wav"), r"audio file .*none.wav does not exist; fix audio_filepath .*manifest's folder"),
    (line(audio="audio/junk.wav"), r"cannot read audio file .*junk.wav: "),
    (line(audio="audio/empty.wav", duration=0), r"audio file .*empty.wav is empty \(0 samples\)"),
    (line(duration=0.75), r"duration 0.75 s but .*a.wav lasts 0.5000 s; set duration"),
    (line(audio="audio/nan.wav", duration=0), r"audio file .*nan.wav holds 2 samples that are NaN or infinite"),
]


@pytest.mark.parametrize("bad, message", BAD_LINES)
def test_manifest_bad_line_names_manifest_and_line(clips, bad, message):
    manifest = clips / "m.json"
    manifest.write_text(line() + "\n" + bad + "\n" + line() + "\n")
    with pytest.raises(DataError, match=rf"^{manifest}:2: {message}"):
        read_manifest(manifest)
    utterances, skipped = read_manifest(manifest, skip_bad=True)
    assert [u.line for u in utterances] == [1, 3]
    assert len(skipped) == 1 and skipped[0].startswith(f"{manifest}:2: ")


def test_manifest_without_audio_checks_reads_only_the_lines(clips):
    manifest = clips / "m.json"
    manifest.write_text(line(audio="audio/none.wav", duration=9.0) + "\n")
    assert read_manifest(manifest, check_audio=False)[0][0].audio_filepath == clips / "audio" / "none.wav"


def test_duration_tolerance_decides_what_disagrees(clips):
    manifest = clips / "m.json"
    manifest.write_text(line(duration=0.55) + "\n")
    assert len(read_manifest(manifest)[0]) == 1
    with pytest.raises(DataError, match=":1: duration 0.55 s"):
        read_manifest(manifest, duration_tolerance=0.01)


def test_manifest_text_may_be_left_out_for_infer_input(clips):
    manifest = clips / "m.json"
    manifest.write_text(json.dumps({"audio_filepath": "audio/a.wav", "duration": 0.5}) + "\n")
    assert read_manifest(manifest, require_text=False)[0][0].text == ""


def test_manifest_with_no_utterances_is_an_error_that_gives_the_first_reason(clips):
    manifest = clips / "m.json"
    manifest.write_text("\n\n")
    with pytest.raises(DataError, match=f"manifest {manifest} holds no utterances \\(it is empty\\)"):
        read_manifest(manifest)
    manifest.write_text(line(text="") + "\n" + line(audio="audio/none.wav") + "\n")
    with pytest.raises(DataError, match=rf"all 2 lines were skipped, the first as: {manifest}:1: empty transcript"):
        read_manifest(manifest, skip_bad=True)
    with pytest.raises(DataError, match=f"manifest {clips / 'none.json'} does not exist"):
        read_manifest(clips / "none.json")


def test_write_manifest_is_relative_under_its_folder_absolute_elsewhere_and_reads_back(clips, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "c.wav"
    write_wav(elsewhere, sine(0.5, 16000), 16000)
    manifest = clips / "out" / "m.json"
    manifest.parent.mkdir()
    rows = [Utterance(clips / "audio" / "a.wav", 0.5, "a", 1),
            {"audio_filepath": elsewhere, "duration": 0.5, "text": "c", "speaker": "s"}]
    assert write_manifest(manifest, rows, relative_to=clips) == 2
    written = [json.loads(text) for text in manifest.read_text().splitlines()]
    assert written == [{"audio_filepath": "audio/a.wav", "duration": 0.5, "text": "a"},
                       {"audio_filepath": str(elsewhere), "duration": 0.5, "text": "c", "speaker": "s"}]
    assert [p.name for p in manifest.parent.iterdir()] == ["m.json"]
    # default: relative to the manifest's own folder, which read_manifest resolves against
    write_manifest(clips / "m.json", rows)
    assert json.loads((clips / "m.json").read_text().splitlines()[0])["audio_filepath"] == "audio/a.wav"
    assert [u.audio_filepath for u in read_manifest(clips / "m.json")[0]] == [clips / "audio" / "a.wav", elsewhere]


def test_the_shipped_fsdd_manifests_read_with_their_relative_paths():
    from conftest import DATASETS

    test = DATASETS / "fsdd" / "manifest_test.jsonl"
    if not test.is_file():
        pytest.skip(f"{test} is absent (the shared datasets folder is not on this machine)")
    utterances, skipped = read_manifest(test)
    assert len(utterances) == 300 and not skipped
    assert {u.text for u in utterances} == {number_words(d) for d in range(10)}


# ----------------------------------------------------------------------------- transcripts

def test_char_vocabulary_is_nemos_quartznet_labels():
    assert CHAR_VOCABULARY[0] == " " and CHAR_VOCABULARY[1:27] == list("abcdefghijklmnopqrstuvwxyz")
    assert CHAR_VOCABULARY[27] == "'" and len(CHAR_VOCABULARY) == 28


@pytest.mark.parametrize("n, words", [(0, "zero"), (13, "thirteen"), (21, "twenty one"), (100, "one hundred"),
                                      (1990, "one thousand nine hundred ninety"),
                                      (2_000_005, "two million five")])
def test_number_words_are_plain_cardinals(n, words):
    assert number_words(n) == words


@pytest.mark.parametrize("text, normalized, removed", [
    ("HE HOPED THERE WOULD BE STEW", "he hoped there would be stew", {}),
    ("Chapter 21, page 1,000.", "chapter twenty one page one thousand", {",": 1, ".": 1}),
    ("the 2nd and 21st; 3.5 kg", "the second and twenty first three point five kg", {";": 1}),
    ("rock\u2018n\u2019roll \u201cquoted\u201d", "rock'n'roll quoted", {"\u201c": 1, "\u201d": 1}),
    ("x-ray a/b_c \u2014 end", "x ray a b c end", {}),
    ("  Caf\u00e9\tna\u00efve  ", "cafe naive", {}),
    ("100% \u00a31", "one hundred one", {"%": 1, "\u00a3": 1}),
])
def test_transcripts_are_normalised_to_the_vocabulary_and_removals_counted(text, normalized, removed):
    assert normalize_transcript(text) == (normalized, removed)


def test_numbers_stay_digits_when_not_spelt_and_then_are_removed():
    assert normalize_transcript("room 42", spell_numbers=False) == ("room", {"4": 1, "2": 1})

"""speech_to_text data: the manifests train and evaluate read (``read_utterances``), and dataset_convert from four
source layouts to NeMo manifests of 16-bit mono wavs.

What it writes into ``target`` (what train, evaluate and infer read; the manifest format is in
``tao_launcher/asr/manifest.py``)::

    train_manifest.json, test_manifest.json   (dev_manifest.json where the source has a dev split)
    wavs/<split>/<name>.wav                   mono 16-bit PCM at ``sample_rate``, resampled once here

Manifest paths are relative to ``target``, durations are those of the written files, and transcripts are
normalised to the character vocabulary (``asr/text.py``): the characters removed are counted in the
summary. A rerun replaces the manifests it writes and, in ``wavs/<split>/`` of each split it writes, the wavs
an earlier convert wrote there (those the new manifest does not name are removed); a file the user put in
``wavs/<split>/`` stays, and a user's file at a name this convert writes is refused unless ``--overwrite``
(core/convert.py keeps the list of what a convert wrote). Everything is staged in a hidden folder inside
``target`` and moved into place at the end, wavs before manifests, so a bad file leaves nothing half-written;
a failed convert removes a ``target`` it created.

Source layouts (``dataset_name``):

- ``fsdd`` (Free Spoken Digit Dataset): ``source/recordings/{digit}_{speaker}_{take}.wav`` (8 kHz; the
  recordings folder itself is accepted too). The standard split: takes 0-4 -> test (300 of 3000 clips),
  the rest -> train. Transcript: the digit's word, "zero".."nine". Other wav names are an error.
- ``librispeech``: ``source/**/{spk}/{chapter}/{spk}-{chapter}-{utt}.flac`` beside
  ``{spk}-{chapter}.trans.txt``, one ``ID TRANSCRIPT`` a line. The subset folder above decides the split:
  ``train-*`` -> train, ``dev-*`` -> dev, ``test-*`` -> test; only the splits present are written. A flac
  without its transcript line, or a line without its flac, is an error naming the .trans.txt file (and line).
- ``ljspeech``: ``source/metadata.csv`` (``id|text|normalized text`` a line, no header; the normalized
  column, else the text) and ``source/wavs/{id}.wav`` (22.05 kHz). A seeded shuffle puts ``test_ratio`` of
  the clips (at least 1, when test_ratio > 0) into test, the rest into train.
- ``manifest``: ``source`` is a NeMo manifest file; it is checked (``read_manifest``), its audio resampled
  and its transcripts normalised, and ONE manifest of the same file name is written, its wavs under
  ``wavs/<its stem>/``.

A bad clip (unreadable or empty audio, missing or empty transcript, a file name not in the layout) is a
DataError naming where it is; with ``skip_bad`` it is left out and its sentence returned in the summary.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

from tao_launcher.asr.audio import load_audio, write_wav
from tao_launcher.asr.manifest import Utterance, read_manifest, write_manifest
from tao_launcher.asr.text import normalize_transcript, number_words
from tao_launcher.core.convert import check_not_converted, not_converted, staged_into, written
from tao_launcher.core.textfiles import SUBSET_SEED, read_lines, subset
from tao_launcher.errors import DataError, UsageError

TASK = "speech_to_text"
log = logging.getLogger("tao.speech_to_text")
DATASETS = ("fsdd", "librispeech", "ljspeech", "manifest")
SPLITS = ("train", "dev", "test")
FSDD_NAME = re.compile(r"(\d)_([^_]+)_(\d+)\.wav")
LIBRISPEECH_SUBSET = re.compile(r"(train|dev|test)-")
Bad = Callable[[str], None]  # raises the sentence as a DataError, or records it (skip_bad)


@dataclass
class Clip:
    """One source clip: its split (None: the seeded train/test split decides), the output wav's name,
    its source audio, its raw transcript, and where it is named (file:line) for error messages ("": the
    audio file's own name says it); ``wav``: where it is written, relative to the target (``_name_wavs``)."""
    split: Optional[str]
    name: str
    audio: Path
    text: str
    where: str
    wav: str = ""


def manifest_name(split: str) -> str:
    return f"{split}_manifest.json"


# ----------------------------------------------------------------------------- what train and evaluate read

def read_utterances(ds, *, require_text: bool = True, training: bool = False, seed: int = SUBSET_SEED,
                    ) -> List[Utterance]:
    """The utterances of a dataset section's manifest: checked (asr/manifest.py), bad lines skipped and counted
    when ``skip_bad_files``, cut to the duration limits (training), then ``num_samples`` of them drawn with ``seed``
    (``textfiles.subset``: a subset that lacks characters of the whole manifest's transcripts is warned about)."""
    utterances, skipped = read_manifest(ds.manifest_filepath, skip_bad=ds.skip_bad_files, require_text=require_text)
    for sentence in skipped[:5]:
        log.warning("skipped %s", sentence)
    if skipped:
        log.warning("skipped %d bad line(s) of %s (skip_bad_files=true)", len(skipped), ds.manifest_filepath)
    if training:
        kept = [u for u in utterances if ds.min_duration <= u.duration <= ds.max_duration]
        if len(kept) < len(utterances):
            log.info("left out %d utterance(s) of %s outside %.1f-%.1f s (min_duration, max_duration)",
                     len(utterances) - len(kept), ds.manifest_filepath, ds.min_duration, ds.max_duration)
        if not kept:
            raise DataError(f"no utterance of {ds.manifest_filepath} lasts between min_duration={ds.min_duration} "
                            f"and max_duration={ds.max_duration} seconds: widen the limits")
        utterances = kept
    return subset(utterances, ds.num_samples, source=ds.manifest_filepath, seed=seed, unit="utterances",
                  what="transcript characters", labels=lambda u: sorted(set(u.text) - {" "}))


# ----------------------------------------------------------------------------- the four source layouts

def _fsdd(source: Path, bad: Bad) -> List[Clip]:
    folder = source / "recordings" if (source / "recordings").is_dir() else source
    files = not_converted(sorted(folder.glob("*.wav")))  # never a convert's own wavs/<split>/ given back as source
    if not files:
        raise UsageError(f"no recordings/*.wav under {source}: source_data_dir must be the free-spoken-digit-"
                         f"dataset folder (or its recordings folder)")
    clips = []
    for file in files:
        match = FSDD_NAME.fullmatch(file.name)
        if not match:
            bad(f"{file}: not an FSDD recording name {{digit}}_{{speaker}}_{{take}}.wav; rename or remove it")
            continue
        digit, _, take = match.groups()
        clips.append(Clip("test" if int(take) < 5 else "train", file.stem, file, number_words(int(digit)), ""))
    return clips


def _librispeech(source: Path, bad: Bad) -> List[Clip]:
    transcripts = sorted(source.rglob("*.trans.txt"))
    if not transcripts:
        raise UsageError(f"no *.trans.txt under {source}: source_data_dir must be a LibriSpeech folder "
                         f"(LibriSpeech/<subset>/<speaker>/<chapter>/)")
    clips, listed = [], set()
    for trans in transcripts:
        subset = next((p for p in reversed(trans.absolute().parts[:-1]) if LIBRISPEECH_SUBSET.match(p)), None)
        if subset is None:
            raise UsageError(f"{trans} is in no train-*, dev-* or test-* folder, which decides its split: keep "
                             f"LibriSpeech's subset folders (e.g. test-clean)")
        for number, line in read_lines(trans):
            if not line.strip():
                continue
            utt, _, text = line.strip().partition(" ")
            flac = trans.parent / f"{utt}.flac"
            listed.add(flac)
            if not flac.is_file():
                bad(f"{trans}:{number}: {flac.name} does not exist; restore it or delete the line")
            else:
                clips.append(Clip(LIBRISPEECH_SUBSET.match(subset).group(1), utt, flac, text, f"{trans}:{number}"))
    for flac in sorted(set(source.rglob("*.flac")) - listed):
        trans = flac.parent / f"{'-'.join(flac.stem.split('-')[:2])}.trans.txt"
        bad(f"{trans}: no line for {flac.name}; add '{flac.stem} TRANSCRIPT' to it or remove the flac")
    return clips


def _ljspeech(source: Path, bad: Bad) -> List[Clip]:
    metadata = source / "metadata.csv"
    if not metadata.is_file():
        raise UsageError(f"{metadata} does not exist: source_data_dir must be the LJSpeech folder with "
                         f"metadata.csv and wavs/")
    clips = []
    for number, line in read_lines(metadata):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2 or not fields[0].strip():
            bad(f"{metadata}:{number}: expected 'id|text|normalized text', got {line[:60]!r}; fix the line")
            continue
        text = fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]
        wav = source / "wavs" / f"{fields[0].strip()}.wav"
        if not wav.is_file():
            bad(f"{metadata}:{number}: {wav} does not exist; restore it or delete the line")
            continue
        clips.append(Clip(None, wav.stem, wav, text, f"{metadata}:{number}"))
    return clips


def _manifest(source: Path, bad: Bad, skip_bad: bool) -> List[Clip]:
    if not source.is_file():
        raise UsageError(f"{source} is not a file: dataset_name=manifest takes a NeMo manifest file as "
                         f"source_data_dir")
    check_not_converted(source, "source_data_dir")  # a target equal to its folder holds this convert's manifest
    utterances, skipped = read_manifest(source, skip_bad=skip_bad)
    for sentence in skipped:
        bad(sentence)
    return [Clip(source.stem, u.audio_filepath.stem, u.audio_filepath, u.text, f"{source}:{u.line}")
            for u in utterances]


def _split(clips: List[Clip], test_ratio: float, seed: int, source: Path) -> None:
    """Give the clips without a split one: a seeded ``test_ratio`` share to test, the rest to train."""
    free = [clip for clip in clips if clip.split is None]
    n_test = min(max(1, round(len(free) * test_ratio)), len(free) - 1) if test_ratio > 0 and free else 0
    if test_ratio > 0 and len(free) == 1:
        raise UsageError(f"{source} holds 1 clip: too few for train and test; set test_ratio=0 or add clips")
    order = list(range(len(free)))
    random.Random(seed).shuffle(order)
    test = set(order[:n_test])
    for i, clip in enumerate(free):
        clip.split = "test" if i in test else "train"


# ----------------------------------------------------------------------------- dataset_convert

def convert(dataset_name: str, source: Path, target: Path, *, sample_rate: int = 16000, test_ratio: float = 0.1,
            skip_bad: bool = False, seed: int = 42, overwrite: bool = False,
            track: Callable[[List], Iterable] = lambda clips: clips) -> Dict[str, object]:
    """Write the manifests and wavs of ``source`` into ``target`` (see the module docstring); ``overwrite``: the
    user lets it replace files of those names that no dataset_convert wrote (core/convert.py).

    Returns per split ``<split>_utterances`` and ``<split>_hours``, ``manifests`` (the files written),
    ``skipped`` (a count) with ``skipped_reasons`` (one sentence each), and ``removed_characters`` (each
    character outside the vocabulary that normalisation removed, and how often). ``track(clips)`` wraps the
    loop over the clips (a progress bar: core/progress.py)."""
    source, target = Path(source), Path(target)
    if dataset_name not in DATASETS:
        raise UsageError(f"dataset_name {dataset_name!r} is not one of {', '.join(DATASETS)}")
    if not source.exists():
        raise UsageError(f"source_data_dir {source} does not exist: download the dataset there first")
    if target.exists() and not target.is_dir():
        raise UsageError(f"target_data_dir {target} is a file: give a folder (it is created when missing)")
    if not 0 <= test_ratio < 1:
        raise UsageError(f"test_ratio {test_ratio!r} must be in [0, 1): the share of clips for test")
    skipped: List[str] = []

    def bad(sentence: str) -> None:
        if not skip_bad:
            raise DataError(sentence)
        skipped.append(sentence)

    if dataset_name == "manifest":
        clips = _manifest(source, bad, skip_bad)
    else:
        clips = {"fsdd": _fsdd, "librispeech": _librispeech, "ljspeech": _ljspeech}[dataset_name](source, bad)
    _split(clips, test_ratio, seed, source)
    _name_wavs(clips)
    splits = list(dict.fromkeys(clip.split for clip in clips))
    manifests = [source.name] if dataset_name == "manifest" else [manifest_name(split) for split in splits]
    earlier_wavs = {name for name in written(target) if name.split("/")[:2] in [["wavs", split] for split in splits]}
    names = {clip.wav for clip in clips} | set(manifests) | earlier_wavs  # an earlier convert's wavs of these splits go
    with staged_into(target, names, overwrite=overwrite) as stage:
        summary = _write_dataset(dataset_name, source, clips, stage, sample_rate, bad, track)
    summary.update(skipped=len(skipped), skipped_reasons=skipped)
    return summary


def _write_dataset(dataset_name: str, source: Path, clips: List[Clip], stage: Path, sample_rate: int,
                   bad: Bad, track: Callable[[List], Iterable]) -> Dict[str, object]:
    """Write every split's wavs and manifest into ``stage`` (core/convert.py moves them into place): the summary."""
    rows, removed = _write_clips(clips, stage, sample_rate, bad, track)
    splits = [split for split, split_rows in rows.items() if split_rows]
    if not splits:
        raise DataError(f"no clip of {source} could be converted: check that source_data_dir holds the "
                        f"{dataset_name} layout with readable audio and transcripts")
    summary: Dict[str, object] = {"manifests": []}
    for split in splits:
        name = source.name if dataset_name == "manifest" else manifest_name(split)
        write_manifest(stage / name, rows[split], relative_to=stage)
        summary["manifests"].append(name)
        summary[f"{split}_utterances"] = len(rows[split])
        summary[f"{split}_hours"] = round(sum(row["duration"] for row in rows[split]) / 3600, 4)
    summary["removed_characters"] = dict(removed.most_common())
    return summary


def _name_wavs(clips: List[Clip]) -> None:
    """Give each clip its wav's path, ``wavs/<split>/<name>.wav``, unique in its split (a/x.wav, b/x.wav: the
    second is x-N.wav, N its place in the list): named before any is written, so the target is checked first."""
    used = set()
    for number, clip in enumerate(clips, start=1):
        name = clip.name if (clip.split, clip.name) not in used else f"{clip.name}-{number}"
        used.add((clip.split, name))
        clip.wav = f"wavs/{clip.split}/{name}.wav"


def _write_clips(clips: List[Clip], stage: Path, sample_rate: int, bad: Bad, track: Callable[[List], Iterable]):
    """Resample, normalise and write every clip to its wav in ``stage``: (rows per split, removed chars)."""
    rows: Dict[str, List[dict]] = {split: [] for split in dict.fromkeys(list(SPLITS) + [c.split for c in clips])}
    removed: Counter = Counter()

    def write(clip: Clip) -> None:
        at = f"{clip.where}: " if clip.where else ""
        text, gone = normalize_transcript(clip.text)
        try:
            samples = load_audio(clip.audio, sample_rate)
        except DataError as err:
            return bad(f"{at}{err}")
        if not samples.size:
            return bad(f"{at}audio file {clip.audio} is empty (0 samples); record it again or leave it out")
        if not text:
            return bad(f"{at}transcript {clip.text!r} is empty once normalised to a-z, space and apostrophe; "
                       f"give the words spoken")
        removed.update(gone)
        wav = stage / clip.wav
        wav.parent.mkdir(parents=True, exist_ok=True)
        write_wav(wav, samples, sample_rate)
        rows[clip.split].append({"audio_filepath": wav, "duration": len(samples) / sample_rate, "text": text})

    for clip in track(clips):
        write(clip)
    return rows, removed

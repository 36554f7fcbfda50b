"""NeMo manifests: the list of utterances that every speech_to_text subtask reads and dataset_convert writes.

Format (NeMo's ``audio_filepath``/``duration``/``text`` JSON lines)::

    {"audio_filepath": "wavs/train/0_george_10.wav", "duration": 0.7448, "text": "zero"}

- one JSON object a line, UTF-8; blank lines are ignored; other keys (``speaker``, ``offset``...) are ignored
- ``audio_filepath``: a file libsndfile reads (wav, flac, ogg...); a relative path is read from the
  manifest's own folder, so a dataset folder can move as a whole
- ``duration``: the clip's length in seconds; it must agree with the file (within ``duration_tolerance``)
- ``text``: the transcript, not empty (infer's input manifests may leave it out: ``require_text=False``)

A bad line is a DataError ``MANIFEST:LINE: what; fix``, or, with ``skip_bad``, left out and described in
the list of skipped lines that ``read_manifest`` returns beside the utterances.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple, Union

from tao_launcher.asr.audio import audio_info
from tao_launcher.core.textfiles import check_file, read_lines
from tao_launcher.errors import DataError

LINE_FORM = '{"audio_filepath": "...", "duration": SECONDS, "text": "..."}'


@dataclass
class Utterance:
    audio_filepath: Path  # absolute
    duration: float
    text: str
    line: int             # where it is in its manifest, for error messages


def _parse(path: Path, number: int, line: str, check_audio: bool, duration_tolerance: float,
           require_text: bool) -> Utterance:
    """One manifest line as an Utterance; a DataError naming ``path:number`` when it is not one."""
    where = f"{path}:{number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not JSON ({err.msg}); write one object a line: {LINE_FORM}") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: a JSON {type(row).__name__}, not an object; write one object a line: {LINE_FORM}")
    for key in ("audio_filepath", "duration"):
        if key not in row:
            raise DataError(f"{where}: no {key!r}; every line needs audio_filepath and duration: {LINE_FORM}")
    audio, duration, text = row["audio_filepath"], row["duration"], row.get("text")
    if not isinstance(audio, str) or not audio.strip():
        raise DataError(f"{where}: audio_filepath {audio!r} is not a path; give the audio file's path as a string")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < float("inf"):
        raise DataError(f"{where}: duration {duration!r} is not a number of seconds; give the clip's length, "
                        f"e.g. 1.25")
    if text is not None and not isinstance(text, str):
        raise DataError(f"{where}: text {text!r} is not a string; give the transcript in quotes")
    if require_text and text is None:
        raise DataError(f"{where}: no transcript ('text' is missing); add the words spoken, or leave the line out")
    if require_text and not text.strip():
        raise DataError(f"{where}: empty transcript; add the words spoken, or leave the line out")
    file = Path(audio) if Path(audio).is_absolute() else path.parent.absolute() / audio
    if check_audio:
        if not file.is_file():
            raise DataError(f"{where}: audio file {file} does not exist; fix audio_filepath (a relative path is "
                            f"read from the manifest's folder {path.parent.absolute()})")
        try:
            frames, _, seconds = audio_info(file)
        except DataError as err:
            raise DataError(f"{where}: {err}") from None
        if not frames:
            raise DataError(f"{where}: audio file {file} is empty (0 samples); record it again or leave the "
                            f"line out")
        if abs(seconds - duration) > duration_tolerance:
            raise DataError(f"{where}: duration {duration} s but {file} lasts {seconds:.4f} s; set duration to "
                            f"the file's length")
    return Utterance(file, float(duration), (text or "").strip(), number)


def read_manifest(path: Union[str, Path], *, check_audio: bool = True, skip_bad: bool = False,
                  duration_tolerance: float = 0.1, require_text: bool = True,
                  ) -> Tuple[List[Utterance], List[str]]:
    """(utterances, one sentence per skipped line). ``check_audio`` reads each file's header (not its
    samples): it exists, is readable, is not empty and lasts ``duration`` seconds."""
    path = Path(path)
    check_file(path, "manifest", "check the manifest path in the spec (dataset_convert writes "
                                 "train_manifest.json and test_manifest.json)")
    utterances: List[Utterance] = []
    skipped: List[str] = []
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            utterances.append(_parse(path, number, line, check_audio, duration_tolerance, require_text))
        except DataError as err:
            if not skip_bad:
                raise
            skipped.append(str(err))
    if not utterances:
        why = f"all {len(skipped)} lines were skipped, the first as: {skipped[0]}" if skipped else "it is empty"
        raise DataError(f"manifest {path} holds no utterances ({why}); write one line per clip: {LINE_FORM}")
    return utterances, skipped


def write_manifest(path: Union[str, Path], utterances: Iterable[Union[Utterance, dict]],
                   relative_to: Optional[Union[str, Path]] = None) -> int:
    """Write a manifest atomically (temp name, then rename); returns the number of lines.

    Audio paths under ``relative_to`` (default: the manifest's folder) are written relative to it, so the
    folder can move as a whole; others stay absolute (a relative path in a dict is read from the current
    folder). A dict keeps its other keys."""
    path = Path(path)
    base = Path(relative_to if relative_to is not None else path.parent).absolute()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            for item in utterances:
                row = dict(item) if isinstance(item, dict) else {
                    "audio_filepath": item.audio_filepath, "duration": item.duration, "text": item.text}
                audio = Path(row["audio_filepath"]).absolute()
                row["audio_filepath"] = audio.relative_to(base).as_posix() if audio.is_relative_to(base) else str(audio)
                row["duration"] = round(float(row["duration"]), 4)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count

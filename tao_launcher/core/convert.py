"""Where every dataset_convert writes, and what it may replace there.

A converter names up front the files it owns in the target (paths relative to it, ``wavs/train/x.wav``):
those it writes now, and those of an earlier convert that this one supersedes (a dev split it no longer
writes). ``check_target`` refuses, before any work, a target holding a file at one of those names that no
dataset_convert wrote, unless the user consents (``--overwrite``): a user's own file is never replaced
silently. The converter then writes into the staging folder ``staged_into(target, names)`` yields; when the
block ends without an error, each staged file replaces the file of that name in ``target`` and the owned
names it did not write are removed. When it fails, ``target`` holds what it held before: nothing
half-written, and a target folder this call created is removed again.

What a convert wrote is kept in ``target/.tao-convert.json`` (``RECORD``)::

    {"written": ["dev.tsv", "train.tsv", "wavs/train/0_amy_5.wav", ...]}

the paths, relative to the target, of every file a dataset_convert wrote there and that is still there (it
is rewritten, before the files move into place, by each convert into the target). A missing or unreadable
record is read as empty: every file is then the user's.

A converter reading a folder skips the files a convert wrote (``not_converted``), and a named source file
that a convert wrote is refused (``check_not_converted``): a target equal to, or inside, the source never
feeds a rerun its own output as source data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Set

from tao_launcher.errors import UsageError

RECORD = ".tao-convert.json"
log = logging.getLogger("tao")


def written(target: Path) -> Set[str]:
    """The paths (relative to ``target``) that dataset_convert wrote there, from its record."""
    try:
        names = json.loads((Path(target) / RECORD).read_text(encoding="utf-8"))["written"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    # only paths inside the target: a record edited to name ../x must not let a convert remove it
    return {name for name in names if isinstance(name, str) and not Path(name).is_absolute()
            and ".." not in Path(name).parts}


def check_target(target: Path, names: Iterable[str], *, overwrite: bool = False) -> List[str]:
    """Refuse a target that holds, at one of ``names``, something no dataset_convert wrote (a folder always,
    a file unless ``overwrite``); returns the user's files that ``overwrite`` lets the convert replace."""
    target = Path(target)
    if not target.is_dir():
        return []
    ours = written(target)
    theirs = sorted(name for name in set(names) - ours
                    if (target / name).exists() or (target / name).is_symlink())
    folders = [name for name in theirs if (target / name).is_dir()]
    if folders:
        raise UsageError(f"target_data_dir {target} holds the folder {folders[0]} where dataset_convert writes "
                         f"a file: move it out of {target}, or give another target_data_dir")
    if theirs and not overwrite:
        shown = ", ".join(theirs[:3]) + (f" and {len(theirs) - 3} more" if len(theirs) > 3 else "")
        raise UsageError(f"target_data_dir {target} holds {shown}, which dataset_convert did not write and would "
                         f"replace: move {'it' if len(theirs) == 1 else 'them'} out of {target} or give another "
                         f"target_data_dir, or add --overwrite to let dataset_convert replace "
                         f"{'it' if len(theirs) == 1 else 'them'}")
    return theirs


@contextlib.contextmanager
def staged_into(target: Path, names: Iterable[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield the staging folder; on success move each file written there into ``target`` and remove the
    owned ``names`` left from an earlier convert that this one did not write (see the module docstring)."""
    target, names = Path(target), set(names)
    replaced = check_target(target, names, overwrite=overwrite)
    created = [folder for folder in (target, *target.parents) if not folder.exists()]  # the deepest first
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".convert-", dir=target) as staging:
            stage = Path(staging)
            yield stage
            staged = {file.relative_to(stage).as_posix(): file for file in stage.rglob("*") if file.is_file()}
            undeclared = set(staged) - names
            if undeclared:
                raise RuntimeError(f"dataset_convert wrote {sorted(undeclared)[:3]}, which it did not name up front")
            kept = {name for name in written(target) | set(replaced) if (target / name).is_file()}
            _write_record(target, stage, sorted(kept | set(staged)))  # first: a kill mid-move leaves no file unowned
            for name, file in sorted(staged.items(), key=lambda item: -item[0].count("/")):  # an index file last
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(file, target / name)
    except BaseException:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    stale = sorted((names & kept) - set(staged))
    for name in stale:
        (target / name).unlink(missing_ok=True)
    if replaced:
        log.warning("replaced %s in %s, which no dataset_convert had written (--overwrite)", ", ".join(replaced),
                    target)
    earlier = [name for name in stale if name not in replaced]
    if earlier:
        log.info("removed %s from %s: an earlier dataset_convert wrote them, and they would not match this one's "
                 "files", ", ".join(earlier[:5]) + (f" and {len(earlier) - 5} more" if len(earlier) > 5 else ""),
                 target)


def _write_record(target: Path, stage: Path, names: List[str]) -> None:
    tmp = stage / RECORD  # not among the staged files: they were listed before this was written
    tmp.write_text(json.dumps({"written": names}, indent=0) + "\n", encoding="utf-8")
    os.replace(tmp, target / RECORD)


def not_converted(files: Iterable[Path]) -> List[Path]:
    """``files`` less those a dataset_convert wrote (named by the record of their folder or of one above)."""
    records: Dict[Path, Set[str]] = {}  # each folder's record, read once
    return [Path(file) for file in files if not _converted(Path(file), records)]


def check_not_converted(file: Path, what: str) -> None:
    """Refuse a named source file that a dataset_convert wrote: converting its own output again is no data."""
    if _converted(Path(file), {}):
        raise UsageError(f"{what} {file} was written by dataset_convert (see {RECORD} in its folder), not taken "
                         f"from the original dataset: give the downloaded source")


def _converted(file: Path, records: Dict[Path, Set[str]]) -> bool:
    """Whether the record of a folder holding ``file`` (at any depth) names it."""
    absolute = file.absolute()
    for folder in absolute.parents:
        if folder not in records:
            records[folder] = written(folder)
        if records[folder] and absolute.relative_to(folder).as_posix() in records[folder]:
            return True
    return False

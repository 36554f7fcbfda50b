"""Where every dataset_convert writes: a staging folder inside the target, moved into place only on success.

A converter writes its files into the folder ``staged_into(target)`` yields. When the block ends without an
error, each staged file replaces the file of that name in ``target``, and each staged folder the folder of
that name (the earlier one goes aside first, and is deleted only once the new one is in place). When it
fails, ``target`` holds what it held before: nothing half-written (a target folder this call created stays,
empty).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence


@contextlib.contextmanager
def staged_into(target: Path, last: Sequence[str] = ()) -> Iterator[Path]:
    """Yield the staging folder; on success move its entries into ``target``, the names in ``last`` after
    the others (a manifest after the audio it names, so that it never names a file not yet in place)."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=target) as staging:
        stage = Path(staging)
        yield stage
        aside = Path(tempfile.mkdtemp(prefix=".replaced-", dir=target))
        try:
            for entry in sorted(stage.iterdir(), key=lambda p: p.name in last):
                _move_into(entry, target / entry.name, aside)
        finally:
            shutil.rmtree(aside, ignore_errors=True)


def _move_into(entry: Path, dest: Path, aside: Path) -> None:
    """``entry`` to ``dest``; a folder merges into an existing folder entry by entry (its subfolders replaced)."""
    if entry.is_dir() and dest.is_dir():
        for child in entry.iterdir():
            if child.is_dir() and (dest / child.name).exists():
                os.replace(dest / child.name, aside / f"{dest.name}-{child.name}")
            os.replace(child, dest / child.name)
        return
    os.replace(entry, dest)

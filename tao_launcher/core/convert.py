"""Where every dataset_convert writes: a staging folder inside the target, moved into place only on success.

A converter writes its files into the folder ``staged_into(target)`` yields. When the block ends without an
error, each staged file replaces the file of that name in ``target``. When it fails, ``target`` holds what it
held before: nothing half-written (a target folder this call created stays, empty).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def staged_into(target: Path) -> Iterator[Path]:
    """Yield the staging folder; on success move each file written there into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=target) as staging:
        stage = Path(staging)
        yield stage
        for file in stage.iterdir():
            os.replace(file, target / file.name)

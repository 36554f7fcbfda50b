"""Named moments where the fault tests (tests/test_faults.py) stop a run; inert in normal use.

A test cannot hit "during validation" or "during the archive write" with timers on a loaded
machine, so the code says where those moments are. With ``TAO_TEST_PAUSE_AT=<point>`` and
``TAO_TEST_PAUSE_DIR=<folder>`` in its environment, the process that reaches ``<point>`` writes
``<folder>/<point>`` (its pid) and sleeps there until it is killed or interrupted. Without the
variable ``pause_point`` returns at once.

Points: ``train-step`` (a training step done, before any checkpoint of the first epoch when
``checkpoint_every_n_steps`` > 1), ``checkpoint-write`` (last.ckpt's temp file written, not yet
renamed), ``checkpoint-saved`` (last.ckpt in place), ``validation`` (inside a validation loop),
``archive-write`` (the model archive's temp file written but for its final chunk).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT_ENV = "TAO_TEST_PAUSE_AT"
PAUSE_DIR_ENV = "TAO_TEST_PAUSE_DIR"


def active() -> bool:
    return bool(os.environ.get(PAUSE_AT_ENV))


def pause_point(name: str) -> None:
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    marker = Path(os.environ.get(PAUSE_DIR_ENV, ".")) / name
    marker.write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)

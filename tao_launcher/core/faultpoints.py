"""Named moments where the fault tests (tests/test_faults.py) stop a run, and faults they inject; inert in
normal use.

A test cannot hit "during validation" or "during the archive write" with timers on a loaded
machine, so the code says where those moments are. With ``TAO_TEST_PAUSE_AT=<point>`` and
``TAO_TEST_PAUSE_DIR=<folder>`` in its environment, the process that reaches ``<point>`` writes
``<folder>/<point>`` (its pid) and sleeps there until it is killed or interrupted. Without the
variable ``pause_point`` returns at once.

Points: ``train-step`` (a training step done, before any checkpoint of the first epoch when
``checkpoint_every_n_steps`` > 1), ``checkpoint-write`` (last.ckpt's temp file written, not yet
renamed), ``checkpoint-saved`` (last.ckpt in place), ``validation`` (inside a validation loop),
``archive-write`` (the model archive's temp file written but for its final chunk), ``overwrite-aside``
(--overwrite has moved one entry of the earlier run into .tao-replaced/, not yet the others), ``put-back`` (one
entry of .tao-replaced/ is back in place, not yet the others); core/results.py.

Injected faults: with ``TAO_TEST_FAULT=<fault>``, ``poison(<fault>, value)`` returns NaN instead of ``value``
(a diverging run, which no tiny test run produces on every task). Faults: ``nan-training-loss`` (every
training batch's loss, core/module.py ``TaoModule.training_step``), ``nan-validation`` (val_loss and the
monitored metric as core/trainer.py ``StopOnNonFinite`` reads them after each validation).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT_ENV = "TAO_TEST_PAUSE_AT"
PAUSE_DIR_ENV = "TAO_TEST_PAUSE_DIR"
FAULT_ENV = "TAO_TEST_FAULT"


def active() -> bool:
    return bool(os.environ.get(PAUSE_AT_ENV))


def pause_point(name: str) -> None:
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    marker = Path(os.environ.get(PAUSE_DIR_ENV, ".")) / name
    marker.write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)


def poison(fault: str, value):
    """``value`` (a number or a tensor), or NaN in its place where ``TAO_TEST_FAULT`` names ``fault``."""
    return value * float("nan") if os.environ.get(FAULT_ENV) == fault else value

"""The container's end of the Docker runner's link to its launcher: the container's stdin.

The Docker runner attaches to the container's stdin (``docker run -i``) and keeps that
connection open for as long as it lives. The connection carries two things:

- the key, as its first line, where ``TAO_KEY_STDIN=1``: so it lands in no file, no argument
  and no container setting (``docker inspect`` shows nothing of it), on the host or inside;
- the launcher's life, where ``TAO_STOP_ON_EOF=1``: when the launcher dies (kill -9, a closed
  SSH session, a cancelled CI job), the engine closes the container's stdin; the entrypoint
  then stops as on ``docker stop`` (SIGTERM to itself: ``status.json`` says ``interrupted``),
  and exits after ``HARD_STOP_S`` should that hang. The engine then removes the container
  (auto-remove), so nothing trains on and nothing is left behind.

Only the Docker runner sets these variables: the local runner's child shares the user's
terminal, where stdin means something else.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Optional

KEY_STDIN_ENV = "TAO_KEY_STDIN"
STOP_ON_EOF_ENV = "TAO_STOP_ON_EOF"
HARD_STOP_S = 6          # from the launcher's death to the container's exit, at the latest
EXIT_INTERRUPTED = 130   # tao_launcher.errors.EXIT_INTERRUPTED, without importing the rest


def follow_launcher() -> None:
    """Take the key from stdin and watch stdin's end, as the environment asks.

    The key goes into this process's ``TAO_KEY`` (where ``read_key`` finds it, and where the
    worker processes of a multi-GPU run inherit it); both variables are cleared, so that those
    workers neither read nor watch the stdin they share with this process.
    """
    read_key = os.environ.pop(KEY_STDIN_ENV, None) == "1"
    watch = os.environ.pop(STOP_ON_EOF_ENV, None) == "1"
    if read_key:
        line = _read_line()
        if line is None:
            _launcher_gone()
        elif line:
            os.environ["TAO_KEY"] = line
    if watch:
        threading.Thread(target=_watch, name="tao-launcher-link", daemon=True).start()


def _read_line() -> Optional[str]:
    """The first line of stdin without reading past it; None at EOF before a newline."""
    data = bytearray()
    while True:
        byte = os.read(0, 1)
        if not byte:
            return None
        if byte == b"\n":
            return data.decode("utf-8", errors="replace").rstrip("\r")
        data += byte


def _watch() -> None:
    try:
        while os.read(0, 4096):
            pass               # nothing else is sent; whatever comes is ignored
    except OSError:
        pass
    _launcher_gone()


def _launcher_gone() -> None:
    logging.getLogger("tao").warning("the launcher is gone (the container's stdin closed): stopping")
    timer = threading.Timer(HARD_STOP_S, os._exit, (EXIT_INTERRUPTED,))
    timer.daemon = True
    timer.start()
    os.kill(os.getpid(), signal.SIGTERM)

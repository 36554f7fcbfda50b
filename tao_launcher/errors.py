"""Errors that end a command with one clear sentence and a known exit code.

Every error a user can cause is a ``TaoError``: the launcher and the in-container
entrypoint print its message (never a traceback) and exit with its code.
Exit codes: 0 success, 1 the subtask failed, 2 a usage or spec error, 130 interrupted, 128 + N the subtask
was killed by signal N (the launcher says so: ``launcher.runners.report_killed``).
"""

import errno
import os

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class TaoError(Exception):
    """A failure the user can act on; ``str(err)`` is the whole message."""

    exit_code = EXIT_FAILED


class UsageError(TaoError):
    """Wrong command line, spec or mounts file: nothing has run yet."""

    exit_code = EXIT_USAGE


class DataError(TaoError):
    """A data file that cannot be read as its documented format (names file:line)."""

    exit_code = EXIT_FAILED


class ArchiveError(TaoError):
    """An archive that cannot be opened: wrong key, corrupt, or not an archive."""

    exit_code = EXIT_FAILED


def crash_report(what: str, log_file=None) -> str:
    """The one sentence for an unexpected exception (call it in an ``except`` block): what failed and
    where its traceback is, never the traceback itself. The traceback goes to ``log_file`` when the
    caller has already logged it there, else to a new file under ``~/.tao/logs`` (or the temp folder)."""
    import sys
    import time
    import traceback
    from pathlib import Path

    err = sys.exc_info()[1]
    summary = " ".join(f"{type(err).__name__}: {err}".split())[:300]
    if log_file is None:
        text = traceback.format_exc()
        import tempfile
        for folder in (Path.home() / ".tao" / "logs", Path(tempfile.gettempdir())):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                log_file = folder / f"tao-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
                log_file.write_text(text)
                break
            except OSError:
                log_file = None
    where = f"; the full traceback is in {log_file}" if log_file else ""
    return f"internal error in {what} ({summary}){where}; please report it with that file"


def disk_problem(err: OSError) -> "TaoError | None":
    """A full disk or quota, or a read-only file system, met while writing: one sentence that names the
    file, instead of a traceback (``None`` for any other OSError)."""
    if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return None
    where = f" while writing {err.filename}" if err.filename else ""
    if err.errno == errno.EROFS:
        return TaoError(f"the file system is read-only{where}: pass a folder on a writable disk")
    return TaoError(f"no space left on the device{where}: free some space (df -h shows it) or pass a "
                    f"folder on another disk, then run again")

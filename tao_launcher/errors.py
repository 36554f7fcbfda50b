"""Errors that end a command with one clear sentence and a known exit code.

Every error a user can cause is a ``TaoError``: the launcher and the in-container
entrypoint print its message (never a traceback) and exit with its code.
Exit codes: 0 success, 1 the subtask failed, 2 a usage or spec error, 130 interrupted.
"""

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

"""The in-container entrypoint: ``python -m tao_launcher.entrypoint TASK SUBTASK [flags] [key=value ...]``.

Both runners call it with the same arguments. It resolves the spec, prepares the results
folder, seeds the run (the one place where that happens), runs the subtask function that the
registry names and records the outcome in ``status.json``. The key comes from ``TAO_KEY`` or
the file named by ``TAO_KEY_FILE``,
never from the command line; ``TAO_PATH_MAP`` (local runner) maps container paths to host paths.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import List, Optional

from tao_launcher.errors import (
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, TaoError, UsageError, crash_report, disk_problem)
from tao_launcher.launcher_link import follow_launcher
from tao_launcher.registry import TASKS, RunContext

log = logging.getLogger("tao")
RESUMABLE = {"train", "finetune"}


def read_key() -> Optional[str]:
    if os.environ.get("TAO_KEY"):
        return os.environ["TAO_KEY"]
    key_file = os.environ.get("TAO_KEY_FILE")
    if key_file:
        try:
            return Path(key_file).read_text().strip() or None
        except OSError:
            raise UsageError(f"cannot read the key file named by TAO_KEY_FILE ({key_file})") from None
    return None


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tao-entrypoint")
    parser.add_argument("task")
    parser.add_argument("subtask")
    parser.add_argument("-e", dest="spec")
    parser.add_argument("-r", dest="results")
    parser.add_argument("-m", dest="model")
    parser.add_argument("-o", dest="output")
    parser.add_argument("-g", dest="gpus", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("overrides", nargs="*")
    return parser.parse_intermixed_args(argv)


class Shutdown:
    """SIGINT and SIGTERM end the run as interrupted (exit 130), once, never as a crash.

    At a terminal one Ctrl-C reaches this process twice (from the terminal and forwarded by the
    launcher), and a user may press it again while the run cleans up: only the first signal acts,
    by raising KeyboardInterrupt, and only while ``armed``. Every later signal is noted and
    ignored, so that cleanup, status.json and atexit callbacks are never cut short. ``hold``
    defers a signal (the folder is being prepared, or the outcome is being recorded); ``arm``
    acts on one that came meanwhile. An interrupt that lands where Python swallows it (a
    ``__del__`` run by the garbage collector) is raised again, never printed.
    """

    def __init__(self) -> None:
        self.signals: List[int] = []
        self.armed = True
        self.acted = False   # a signal ended the work (what the outcome says, whatever exception came of it)

    def install(self) -> None:
        self.signals, self.armed, self.acted = [], True, False   # a new run (main may be called again in-process)
        self.working = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)
        if getattr(sys.unraisablehook, "__self__", None) is not self:
            self._previous_hook = sys.unraisablehook
            sys.unraisablehook = self._unraisable

    def _unraisable(self, unraisable) -> None:
        """The interrupt raised where Python cannot let it out (a ``__del__``, an atexit callback) is
        swallowed: never print it; while the work runs, raise it again at the next safe point."""
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and self.signals:
            if self.acted and self.working:   # again in a moment, from outside this context
                import threading

                self.acted, self.armed = False, True
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
            return
        self._previous_hook(unraisable)

    def check(self) -> None:
        """After the work returned: an interrupt that some code swallowed still ends the run as interrupted."""
        if self.acted:
            raise KeyboardInterrupt

    @staticmethod
    def ignore_from_now_on() -> None:
        """At exit: Python's finalization puts SIG_DFL back for a Python handler, so that a late copy
        of the Ctrl-C (the launcher forwards it again) would kill the process after it has said
        ``tao: interrupted``; an ignored signal stays ignored."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)

    def __call__(self, signum, _frame) -> None:
        self.signals.append(signum)
        if self.armed and not self.acted:
            self.armed, self.acted = False, True
            raise KeyboardInterrupt

    def hold(self) -> None:
        self.armed = self.working = False

    def arm(self) -> None:
        self.armed = self.working = True
        if self.signals and not self.acted:
            self.armed, self.acted = False, True
            raise KeyboardInterrupt


shutdown = Shutdown()


def run(argv: List[str]) -> int:
    # Ctrl-C, `tao stop` and `docker stop` may come at any moment, imports included (see Shutdown)
    shutdown.install()
    follow_launcher()   # Docker runner: the key from stdin; stdin's end (the launcher died) stops the run

    from tao_launcher.paths import PATH_MAP_ENV, PathMap

    args = parse_args(argv)
    to_host = PathMap.from_json(os.environ.get(PATH_MAP_ENV, "[]")).to_host
    if args.task not in TASKS or args.subtask not in TASKS[args.task].subtasks:
        raise UsageError(f"unknown task or subtask: {args.task} {args.subtask}")
    task = TASKS[args.task]
    if args.subtask == "download_specs":
        return _download_specs(task, Path(to_host(args.output)), args.results and Path(to_host(args.results)),
                               args.overwrite)

    from tao_launcher.spec.load import (check_paths, file_problem, folder_problem, input_paths, map_paths, resolve_spec,
                                        to_dict)
    subtask = task.subtasks[args.subtask]
    schema = subtask.schema()
    spec_file = Path(to_host(args.spec)) if args.spec else None
    spec = resolve_spec(schema, spec_file, args.overrides)
    map_paths(spec, to_host)
    check_paths(spec)
    if not args.results:
        raise UsageError("a results folder is required: pass -r DIR")
    key = read_key()
    model = Path(to_host(args.model)) if args.model else None
    if model is not None and file_problem(model):
        raise UsageError(f"model archive {model} {file_problem(model)}: check the -m path")
    results_path = Path(to_host(args.results))
    problem = folder_problem(results_path)
    if problem:
        raise UsageError(f"results folder {results_path} {problem}")
    if args.overwrite:
        refuse_inputs_inside(results_path, [("-m", model), ("-e", spec_file),
                                            *((key, Path(value)) for key, value in input_paths(spec))])

    from tao_launcher.core.results import LOG_FILE, MASK, ResultsFolder
    results = ResultsFolder(results_path, task.name, args.subtask)
    created = not results_path.exists()  # an exit-2 error removes what this run created: "nothing has run"
    shutdown.hold()  # the folder is locked and marked running in one piece; a signal now acts right after
    try:
        results.prepare(args.overwrite, resumable=args.subtask in RESUMABLE)
    except OSError as err:
        _discard(results_path, created)
        raise disk_problem(err) or UsageError(
            f"cannot write to results folder {results_path} ({err.strerror or err}): pass a folder you can "
            f"write to") from None
    except UsageError:
        _discard(results_path, created)
        raise
    try:
        try:
            try:
                shutdown.arm()
                results.use_work_dir()
                results.start_logging(key)
                import yaml
                saved = to_dict(spec)
                if key:
                    saved["encryption_key"] = MASK
                results.save_spec(yaml.safe_dump(saved, sort_keys=False))
                context = RunContext(task.name, args.subtask, results, key, model, args.gpus, args.overwrite)
                function = subtask.function()
                trainer_spec = getattr(spec, "trainer", None)
                if trainer_spec is not None:  # before the subtask draws any weights: heads, dropout, shuffling
                    from tao_launcher.core.trainer import seed_everything
                    seed_everything(trainer_spec.seed)
                function(spec, context)
                shutdown.check()
            finally:
                shutdown.hold()   # from here on the outcome is recorded whole, whatever signal comes
        except BaseException as err:
            # Lightning turns Ctrl-C into its own shutdown and sys.exit(1): the signal decides, not the exception
            if shutdown.acted or isinstance(err, KeyboardInterrupt):
                _end_quietly(results, "interrupted", "stopped by the user")
                raise KeyboardInterrupt from None
            if isinstance(err, UsageError) and created:
                _discard(results_path, created)
                raise
            if isinstance(err, OSError) and disk_problem(err):
                err = disk_problem(err)
            if isinstance(err, TaoError):
                _end_quietly(results, "failed", str(err))
                raise err from None
            message = crash_report(f"{task.name} {args.subtask}", _log_traceback(results.path / LOG_FILE))
            _end_quietly(results, "failed", message)
            raise TaoError(message) from None
        results.end("finished")
        log.info("%s %s finished; results in %s", task.name, args.subtask, results.path)
    finally:
        results.close()   # temp files and partials gone, folder lock released: on every exit path
    return EXIT_OK


def refuse_inputs_inside(results: Path, inputs) -> None:
    """--overwrite replaces the results folder's contents: a run must not read a file it is about to replace
    (``tao evaluate -r TRAIN -m TRAIN/checkpoints/trained-model.tao --overwrite`` would lose the model)."""
    if not results.is_dir():
        return
    inside = results.resolve()
    for what, path in inputs:
        if path is not None and inside in Path(path).resolve().parents:
            raise UsageError(f"{what} {path} lies inside the results folder {results}, whose contents --overwrite "
                             f"replaces: pass another -r folder, or move {Path(path).name} out of it first")


def _log_traceback(log_file: Path) -> Optional[Path]:
    """Append the current exception's traceback to log.txt only (the terminal gets one sentence); the
    file, or None when even that cannot be written (crash_report then writes one of its own)."""
    try:
        with open(log_file, "a", encoding="utf-8") as out:
            out.write(f"internal error:\n{traceback.format_exc()}")
        return log_file
    except OSError:
        return None


def _discard(path: Path, created: bool) -> None:
    """Remove a results folder this run created and then refused to use (exit 2: nothing has run)."""
    if not created:
        return
    import logging as _logging
    import shutil
    root = _logging.getLogger()
    for handler in list(root.handlers):  # the log file inside the folder
        if isinstance(handler, _logging.FileHandler) and Path(handler.baseFilename).parent == path:
            root.removeHandler(handler)
            handler.close()
    shutil.rmtree(path, ignore_errors=True)


def _end_quietly(results, state: str, message: str) -> None:
    """Record the end in status.json; a disk that is full cannot take even that, and must not hide the error."""
    try:
        results.end(state, message)
    except OSError:
        pass


def _download_specs(task, output: Path, results_dir: Optional[Path], overwrite: bool) -> int:
    """-o receives the spec files; -r, optional here, receives log.txt and status.json as for any subtask."""
    from tao_launcher.spec.download import check_output, download_specs

    check_output(output, overwrite)   # refused before -r is created
    if results_dir is None:
        for path in download_specs(task, output, overwrite):
            print(f"wrote {path}", flush=True)
        return EXIT_OK
    from tao_launcher.core.results import ResultsFolder
    results = ResultsFolder(results_dir, task.name, "download_specs")
    results.prepare(overwrite, resumable=False)
    try:
        results.start_logging(None)
        try:
            for path in download_specs(task, output, overwrite):
                log.info("wrote %s", path)
        except BaseException as err:
            _end_quietly(results, "interrupted" if isinstance(err, KeyboardInterrupt) else "failed", str(err))
            raise
        results.record(output_dir=str(output))
        results.end("finished")
    finally:
        results.close()   # folder lock released
    return EXIT_OK


def forget_interrupted_exec() -> None:
    """CPython 3.11 marks a KeyboardInterrupt raised inside ``exec`` of a string (a dataclass or a
    namedtuple being built while a module imports) as unhandled even when it was caught, and then ends
    ``python -m`` by killing itself with SIGINT, after the run said ``tao: interrupted`` and chose exit
    130. An exec that completes clears the mark."""
    exec("pass")


def main(argv: Optional[List[str]] = None) -> int:
    try:
        try:
            return run(list(sys.argv[1:] if argv is None else argv))
        finally:
            shutdown.hold()   # the end is decided: a late signal must not cut the exit (atexit callbacks)
    except TaoError as err:
        print(f"tao: error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        forget_interrupted_exec()
        print("tao: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the guard: one sentence, the traceback in a file
        problem = disk_problem(err) if isinstance(err, OSError) else None
        message = str(problem) if problem else crash_report("the tao entrypoint")
        print(f"tao: error: {message}", file=sys.stderr, flush=True)
        return EXIT_FAILED


if __name__ == "__main__":
    exit_code = main()
    Shutdown.ignore_from_now_on()
    sys.exit(exit_code)

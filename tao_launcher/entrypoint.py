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

from tao_launcher.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, TaoError, UsageError
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


def run(argv: List[str]) -> int:
    # Ctrl-C, `tao stop` and `docker stop` may come at any moment, imports included: from here
    # on, SIGINT and SIGTERM both end the run as interrupted (exit 130), never as a crash.
    interrupted: List[int] = []

    def on_signal(signum, _frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    from tao_launcher.launcher.mounts import PathMap

    args = parse_args(argv)
    to_host = PathMap.from_json(os.environ.get("TAO_PATH_MAP", "[]")).to_host
    if args.task not in TASKS or args.subtask not in TASKS[args.task].subtasks:
        raise UsageError(f"unknown task or subtask: {args.task} {args.subtask}")
    task = TASKS[args.task]
    if args.subtask == "download_specs":
        from tao_launcher.spec.download import download_specs
        for path in download_specs(task, Path(to_host(args.output)), args.overwrite):
            print(f"wrote {path}")
        return EXIT_OK

    from tao_launcher.spec.load import map_paths, resolve_spec, to_dict
    if not task.available:
        raise UsageError(f"{task.name} is planned, not available yet: 'tao --help' lists the available tasks")
    subtask = task.subtasks[args.subtask]
    schema = subtask.schema()
    spec_file = Path(to_host(args.spec)) if args.spec else None
    spec = resolve_spec(schema, spec_file, args.overrides)
    map_paths(spec, to_host)
    if not args.results:
        raise UsageError("a results folder is required: pass -r DIR")
    key = read_key()
    model = Path(to_host(args.model)) if args.model else None
    if model is not None and not model.is_file():
        raise UsageError(f"model archive {model} does not exist: check the -m path")

    from tao_launcher.core.results import MASK, ResultsFolder
    results = ResultsFolder(Path(to_host(args.results)), task.name, args.subtask)
    results.prepare(args.overwrite, resumable=args.subtask in RESUMABLE)
    try:
        results.start_logging(key)
        import yaml
        saved = to_dict(spec)
        if key:
            saved["encryption_key"] = MASK
        results.save_spec(yaml.safe_dump(saved, sort_keys=False))
        context = RunContext(task.name, args.subtask, results, key, model, args.gpus)
        function = subtask.function()
        trainer_spec = getattr(spec, "trainer", None)
        if trainer_spec is not None:  # before the subtask draws any weights: heads, dropout, shuffling
            from tao_launcher.core.trainer import seed_everything
            seed_everything(trainer_spec.seed)
        function(spec, context)
    except BaseException as err:
        # Lightning turns Ctrl-C into its own shutdown and sys.exit(1): the signal decides, not the exception
        if interrupted or isinstance(err, KeyboardInterrupt):
            results.end("interrupted", "stopped by the user")
            raise KeyboardInterrupt from None
        if isinstance(err, TaoError):
            results.end("failed", str(err))
            raise
        log.error("internal error:\n%s", traceback.format_exc())
        results.end("failed", f"internal error: {type(err).__name__}: {err}")
        raise
    results.end("finished")
    log.info("%s %s finished; results in %s", task.name, args.subtask, results.path)
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except TaoError as err:
        print(f"tao: error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        print("tao: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as err:  # logged with its traceback above when the run had started
        print(f"tao: error: internal error: {type(err).__name__}: {err} (see log.txt in the results folder)",
              file=sys.stderr, flush=True)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

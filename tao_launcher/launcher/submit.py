"""From a parsed command line to a finished run: map paths, check the spec, pick a runner, run.

The spec is resolved here too, on the host, so that a typo fails in a fraction of a second
instead of after a container start; the entrypoint resolves it again where it runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

from tao_launcher.errors import UsageError
from tao_launcher.launcher.mounts import MountsConfig, PathMap, load_mounts
from tao_launcher.launcher.runners import KEY_ENV, Job, select_runner

NEEDS_MODEL = {"finetune", "evaluate", "infer", "export", "infer_onnx"}
NEEDS_KEY = NEEDS_MODEL | {"train"}


def submit(task, subtask: str, schema, *, spec: Optional[str], results: Optional[str], key: Optional[str],
           gpus: int, model: Optional[str], output: Optional[str], overwrite: bool, runner: Optional[str],
           overrides: List[str], gpu_index: Optional[str] = None, dry_run: bool = False) -> int:
    if not task.available:
        raise UsageError(f"{task.name} is planned but not available in this version of tao; "
                         f"'tao --help' lists the tasks marked available")
    key = key or os.environ.get(KEY_ENV) or None
    if subtask in NEEDS_KEY and not key:
        raise UsageError(f"{subtask} needs the model key: pass -k KEY or set {KEY_ENV} "
                         f"(the environment variable keeps it out of the process list)")
    if subtask in NEEDS_MODEL and not model:
        raise UsageError(f"{subtask} needs a model archive: pass -m /path/to/trained-model.tao")
    if subtask == "download_specs" and not output:
        raise UsageError("download_specs needs an output folder: pass -o DIR")
    if gpus < 0:
        raise UsageError(f"-g must be 0 or more, got {gpus}")
    gpu_ids = parse_gpu_index(gpu_index)
    if gpu_ids:
        gpus = len(gpu_ids)
    for item in overrides:
        if item.startswith("-"):
            raise UsageError(f"unknown option {item}; see 'tao {task.name} {subtask} --help'")

    mounts = load_mounts()
    from tao_launcher.launcher.images import image_for
    image = image_for(task)
    chosen = select_runner(runner, mounts, image)
    to_container = container_view(mounts, chosen.name)
    job = Job(task=task.name, subtask=subtask, gpus=gpus, gpu_ids=gpu_ids, overwrite=overwrite, key=key, image=image,
              spec=to_container(spec, "spec file (-e)"), results=to_container(results, "results folder (-r)"),
              model=to_container(model, "model (-m)"), output=to_container(output, "output folder (-o)"))
    job.overrides = map_overrides(schema, overrides, to_container)
    if schema is not None:
        check_spec(schema, job, mounts)
    if dry_run:
        print(chosen.dry_run(job, mounts), flush=True)
        return 0
    print(f"tao: running {task.name} {subtask} with the {chosen.describe()}", file=sys.stderr, flush=True)
    return chosen.run(job, mounts)


def parse_gpu_index(text: Optional[str]) -> List[str]:
    """``--gpu-index 0,2`` -> ["0", "2"]; GPU indices are small non-negative integers, each once."""
    if not text:
        return []
    ids = [part.strip() for part in text.split(",")]
    if not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise UsageError(f"--gpu-index takes GPU numbers separated by commas, each once (for example 0,1); "
                         f"got {text!r}")
    return ids


def container_view(mounts: MountsConfig, runner: str):
    """A function mapping a user path to the container's view (identity for the local runner without mounts)."""
    path_map = PathMap(mounts.mounts)

    def convert(value: Optional[str], what: str) -> Optional[str]:
        if not value:
            return value
        if not mounts.mounts:
            if runner == "docker":
                raise UsageError(f"the docker runner needs a mounts file to see {what} {value}: create "
                                 f"~/.tao_mounts.json (see .tao_mounts.example.json) or use --runner local")
            return str(Path(os.path.expanduser(value)).absolute())
        return path_map.to_container(value, what)

    return convert


def map_overrides(schema, overrides: List[str], to_container) -> List[str]:
    if schema is None:
        return list(overrides)
    from tao_launcher.spec.load import path_keys

    paths = set(path_keys(schema))
    mapped = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key.strip() in paths and value not in ("", "null", "???"):
            item = f"{key}={to_container(value, key.strip())}"
        mapped.append(item)
    return mapped


def check_spec(schema, job: Job, mounts: MountsConfig) -> None:
    from tao_launcher.spec.load import resolve_spec

    spec_file = PathMap(mounts.mounts).to_host(job.spec) if job.spec else None
    resolve_spec(schema, Path(spec_file) if spec_file else None, job.overrides)

"""From a parsed command line to a finished run: map paths, check the spec, pick a runner, run.

The spec is resolved here too, on the host, so that a typo fails in a fraction of a second
instead of after a container start; the entrypoint resolves it again where it runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from tao_launcher.errors import UsageError
from tao_launcher.launcher.mounts import MountsConfig, load_mounts, mounts_file_path
from tao_launcher.launcher.runners import KEY_ENV, Job, Runner, requested_runner, select_runner
from tao_launcher.paths import PathMap

NEEDS_MODEL = {"finetune", "evaluate", "infer", "export", "infer_onnx"}
NEEDS_KEY = NEEDS_MODEL | {"train"}


def submit(task, subtask: str, schema, *, spec: Optional[str], results: Optional[str], key: Optional[str],
           gpus: int, model: Optional[str], output: Optional[str], overwrite: bool, runner: Optional[str],
           overrides: List[str], gpu_index: Optional[str] = None, dry_run: bool = False) -> int:
    key = key or os.environ.get(KEY_ENV) or None
    plain_onnx = subtask == "infer_onnx" and (model or "").endswith(".onnx")  # export_format=ONNX encrypt=false
    if subtask in NEEDS_KEY and not key and not plain_onnx:
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

    from tao_launcher.launcher.images import image_for
    image = image_for(task)
    chosen, mounts = runner_and_mounts(runner, image)
    to_container = container_view(mounts, chosen.name)
    job = Job(task=task.name, subtask=subtask, gpus=gpus, gpu_ids=gpu_ids, overwrite=overwrite, key=key, image=image,
              spec=to_container(spec, "spec file (-e)"), results=to_container(results, "results folder (-r)"),
              model=to_container(model, "model (-m)"), output=to_container(output, "output folder (-o)"))
    job.overrides = map_overrides(schema, overrides, to_container)
    if schema is not None:
        check_spec(schema, job, mounts)
    if subtask != "download_specs" and not results:   # after the spec: its mistakes are the more telling
        raise UsageError(f"{subtask} needs a results folder: pass -r DIR (it receives log.txt, status.json "
                         f"and the outputs)")
    if dry_run:
        print(chosen.dry_run(job, mounts), flush=True)
        return 0
    print(f"tao: running {task.name} {subtask} with the {chosen.describe()}{ignored_mounts_note(chosen)}",
          file=sys.stderr, flush=True)
    return chosen.run(job, mounts)


def runner_and_mounts(requested: Optional[str], image: Optional[str]) -> Tuple[Runner, MountsConfig]:
    """The runner, and the mounts file as that runner sees it.

    Mounts, Envs and DockerOptions describe a container, so the mounts file can only help a
    local run, never stop it: the local runner uses it just to read container paths such as
    ``/data/x`` (TAO's spelling, so one command line serves both runners) as their host folder,
    and uses every other path as given. Asked for by --runner or TAO_RUNNER, it reads the file
    only if it parses; a broken or leftover file is then ignored. Otherwise the file takes part
    in the choice (its Runner)."""
    requested = requested_runner(requested)
    if requested == "local":
        try:
            mounts = load_mounts()
        except UsageError:
            mounts = MountsConfig()
    else:
        mounts = load_mounts()
    chosen = select_runner(requested, mounts, image)
    if chosen.name == "local":
        mounts = MountsConfig(mounts=mounts.mounts)   # paths only: Envs and DockerOptions are a container's
    return chosen, mounts


def ignored_mounts_note(chosen: Runner) -> str:
    """For a local run beside a mounts file: what the file does (and does not do) for it."""
    path = mounts_file_path()
    if chosen.name != "local" or not path.exists():
        return ""
    return (f"; host paths are used as given, container paths under a mount of {path} are read from "
            f"its source folder, and its Envs and DockerOptions are for the Docker runner only")


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
    """A function mapping a user path to the runner's view: the container's for the Docker
    runner; for the local runner an absolute host path (a container path under a mount
    destination is read as the host folder it mounts; nothing is refused)."""
    path_map = PathMap(mounts.mounts)

    def convert(value: Optional[str], what: str) -> Optional[str]:
        if not value:
            return value
        if runner == "local":
            return str(Path(os.path.expanduser(path_map.to_host(value))).absolute())
        if not mounts.mounts:
            raise UsageError(f"the docker runner needs a mounts file to see {what} {value}: create "
                             f"~/.tao_mounts.json (see .tao_mounts.example.json) or use --runner local")
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
        if sep and key.strip() in paths and value.strip() not in ("", "null", "~", "???", '""', "''"):
            item = f"{key}={_map_value(value, key.strip(), to_container)}"
        mapped.append(item)
    return mapped


def _map_value(value: str, key: str, to_container) -> str:
    """One path, or a list of paths (``file_paths=[a.wav,b.wav]``): each mapped, the list written back as JSON."""
    if not value.lstrip().startswith("["):
        return to_container(value, key)
    import json

    import yaml

    try:
        items = yaml.safe_load(value)
    except yaml.YAMLError:
        return value  # the spec loader reports the broken list with its key
    if not isinstance(items, list):
        return value
    return json.dumps([to_container(str(v), key) if isinstance(v, str) else v for v in items])


def check_spec(schema, job: Job, mounts: MountsConfig) -> None:
    from tao_launcher.spec.load import resolve_spec

    spec_file = PathMap(mounts.mounts).to_host(job.spec) if job.spec else None
    resolve_spec(schema, Path(spec_file) if spec_file else None, job.overrides)

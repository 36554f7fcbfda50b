"""download_specs: write a task's default spec files, one per subtask, from its schemas.

The same function writes the repository's ``specs/`` folder (``make specs``), so the
shipped files and the schemas cannot drift apart (a test checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from tao_launcher.errors import UsageError
from tao_launcher.spec.render import render_yaml


def default_specs(task) -> Dict[str, str]:
    """``{"train.yaml": text, ...}`` for every subtask of ``task`` that takes a spec, plus the task's variants:
    ``SPEC_VARIANTS`` in its spec.py maps a file name to (subtask, {dotted key: value}, what it is for)."""
    import importlib

    out = {}
    for subtask in task.spec_subtasks():
        schema = subtask.schema()
        title = (f"Default spec of `tao {task.name} {subtask.name}`: every field, its default and what it does.\n"
                 f"Override any field on the command line as key=value.\nExample:\n  {schema.example}")
        out[f"{subtask.name}.yaml"] = render_yaml(schema, title)
    variants = getattr(importlib.import_module(f"{task.package}.spec"), "SPEC_VARIANTS", {})
    for name, (subtask, values, purpose) in variants.items():
        schema = task.subtasks[subtask].schema()
        title = (f"`tao {task.name} {subtask}` spec: {purpose}.\nEvery field, its value and what it does; override "
                 f"any field on the command line as key=value.")
        out[name] = render_yaml(schema, title, values)
    return out


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder unless ``overwrite``; before anything is written."""
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output} is a file: pass a folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise UsageError(f"output folder {output} is not empty: pass an empty or new folder to -o, "
                         f"or add --overwrite to replace the spec files in it")


def download_specs(task, output: Path, overwrite: bool) -> List[Path]:
    """Write the default specs into ``output``; refuse a non-empty folder unless ``overwrite``."""
    check_output(output, overwrite)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in default_specs(task).items():
        tmp = output / f".{name}.partial"
        tmp.write_text(text)
        tmp.replace(output / name)
        written.append(output / name)
    return written


if __name__ == "__main__":  # make specs: regenerate specs/<task>/ for every available task
    import sys

    from tao_launcher.registry import TASKS

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "specs")
    for task in TASKS.values():
        for path in download_specs(task, root / task.name, overwrite=True):
            print(path)

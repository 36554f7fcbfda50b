"""The registry: every task, its subtasks, and for each subtask its spec schema and its function; and
the runners a subtask can run with.

The task table is the contract between the launcher and the tasks. ``tao --help``, ``download_specs``,
the entrypoint and ``tests/test_task_contract.py`` all read it, and nothing else looks a task up.
A subtask names its schema and function as ``module:attribute``, resolved only when that subtask
runs or its help is shown: the launcher lists every task without importing torch.

What a task package provides (docs/adding_a_task.md): ``spec.py`` with one schema per subtask
(``TrainSpec``, ...; no torch), ``subtasks.py`` with one typed function per subtask
(``def train(spec: TrainSpec, run: RunContext) -> Dict``), and beside them its data, model and
metrics. A user file (``~/.tao/config.json``, key ``images``; see launcher/images.py) may point
a task at another image.

``RUNNERS`` names each runner's class the same way, resolved only when that runner is chosen:
``--runner``, the mounts file's ``Runner`` and the automatic choice read this table, so another
runner (SLURM, torchrun) joins with a row.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from tao_launcher import __version__

SUBTASKS = ("download_specs", "dataset_convert", "train", "finetune", "evaluate", "infer", "export", "infer_onnx")
# the schema class of each subtask in a task's spec.py (download_specs has none: it writes the others)
SPEC_CLASSES = {"dataset_convert": "DatasetConvertSpec", "train": "TrainSpec", "finetune": "FinetuneSpec",
                "evaluate": "EvaluateSpec", "infer": "InferSpec", "export": "ExportSpec",
                "infer_onnx": "InferOnnxSpec"}
IMAGE_REPOSITORY = "tao-launcher"
# One shared PyTorch image for every task, as TAO's "-pyt" image: torch, transformers and
# Lightning are nearly all of its size, so per-domain images would mostly duplicate them.
SHARED_IMAGE_FLAVOUR = "pyt"


# runner name -> its class; in the order of the automatic choice, which takes the first that can run
# here (``Runner.why_not``): the last one always can
RUNNERS = {"docker": "tao_launcher.launcher.docker_runner:DockerRunner",
           "local": "tao_launcher.launcher.runners:LocalRunner"}


def resolve(ref: str) -> Any:
    """The object a ``module:attribute`` reference names, imported now."""
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Subtask:
    """A subtask: its spec schema and its function, by reference (``None`` for download_specs,
    which the entrypoint runs itself from the task's other schemas)."""

    name: str
    schema_ref: Optional[str] = None
    function_ref: Optional[str] = None

    def schema(self) -> type:
        return resolve(self.schema_ref)

    def function(self) -> Callable:
        return resolve(self.function_ref)


@dataclass
class RunContext:
    """What a subtask function gets besides its spec (built by the entrypoint)."""

    task: str
    subtask: str
    results: "ResultsFolder"  # noqa: F821  (tao_launcher.core.results)
    key: Optional[str]
    model: Optional[Path]
    gpus: int
    overwrite: bool = False   # --overwrite: also lets dataset_convert replace files it did not write in its target


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    package: str                      # tao_launcher.tasks.<name>
    image_flavour: str = SHARED_IMAGE_FLAVOUR
    subtasks: Dict[str, Subtask] = field(default_factory=dict)

    @property
    def image(self) -> str:
        """The default image (repository:tag); ``images.image_for`` applies the user's config."""
        return f"{IMAGE_REPOSITORY}:{__version__}-{self.image_flavour}"

    def spec_subtasks(self) -> Tuple[Subtask, ...]:
        """The subtasks that take a spec (all but download_specs)."""
        return tuple(s for s in self.subtasks.values() if s.schema_ref)


def task(name: str, summary: str, subtasks: Tuple[str, ...] = SUBTASKS, package: Optional[str] = None) -> Task:
    """A task whose package (default ``tao_launcher.tasks.<name>``) follows the layout above."""
    package = package or f"tao_launcher.tasks.{name}"
    table = {s: Subtask(s) if s == "download_specs" else
             Subtask(s, f"{package}.spec:{SPEC_CLASSES[s]}", f"{package}.subtasks:{s}") for s in subtasks}
    return Task(name, summary, package, subtasks=table)


TASKS: Dict[str, Task] = {t.name: t for t in (
    task("text_classification", "sentence classification (sentiment, domain) on a BERT encoder"),
    task("token_classification", "named-entity recognition (CoNLL-2003 style)"),
    task("question_answering", "extractive question answering (SQuAD v1.1/v2.0)"),
    task("intent_slot_classification", "joint intent and slot filling (ATIS, SNIPS)"),
    task("punctuation_and_capitalization", "restore punctuation and capitals in ASR output"),
    task("speech_to_text", "speech recognition with QuartzNet, Jasper or Citrinet (CTC)"),
)}

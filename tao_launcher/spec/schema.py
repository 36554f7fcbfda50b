"""Building blocks for spec schemas: a field with help text, the sections every task shares, and the shapes of
the subtask schemas built from a task's own sections.

A spec schema is a plain dataclass tree. Each leaf is declared with ``spec_field`` so
that its default, its type, its one-line description and whether it names a file are
all in one place; ``load.py`` validates against it, ``render.py`` writes the default YAML
and the ``--help`` text from it.

A task's spec.py declares what is its own (its model, data and head sections, its examples' arguments) and
builds its subtask schemas with the factories at the end of this file: ``train_spec`` (and ``finetune_spec``
from it), ``evaluate_spec``, ``dataset_convert_spec`` and ``subtask_spec`` (export, infer_onnx), each with an
example from ``Examples``; ``data_section`` builds a dataset section, ``subset_section`` a finetune model section.
``nlp/spec.py`` adds the sections the NLP tasks share.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, make_dataclass
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

REQUIRED = "???"  # OmegaConf's marker for a value the user must set


# How a path field is checked before any work (``load.check_paths``): "file" an existing file to read,
# "dir" an existing folder to read, "exists" either, "out_dir" a folder to write (created when missing,
# so it must not be a file and its nearest existing parent must be a writable folder), True unchecked.
PATH_KINDS = (True, "file", "dir", "exists", "out_dir")


def spec_field(default: Any = REQUIRED, help: str = "", *, path: Any = False, choices: tuple = (),
               min: Optional[float] = None, max: Optional[float] = None, min_exclusive: bool = False,
               max_exclusive: bool = False, also: tuple = (), length: Optional[int] = None) -> Any:
    """Declare a spec leaf: its default, its one-line help and everything the loader checks.

    ``path`` marks values the launcher maps between host and container, and says what they must name
    (``PATH_KINDS``). ``choices`` lists the allowed values of a string. ``min``/``max`` bound a number (each
    item of a list of numbers), inclusive unless ``min_exclusive``/``max_exclusive``; ``also`` lists values
    allowed outside the range (``-1`` for "no limit"); ``length`` fixes the length of a list. The loader
    refuses anything else with one sentence that names the field and the range, and ``--help`` shows the
    range beside the default.
    """
    if path not in (False,) + PATH_KINDS:
        raise ValueError(f"path must be one of {PATH_KINDS}, got {path!r}")
    metadata = {"help": help, "path": path, "choices": tuple(choices),
                "range": Range(min, max, min_exclusive, max_exclusive, tuple(also)), "length": length}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric field: ``min``..``max`` (either may be open or absent), or ``also``."""

    min: Optional[float] = None
    max: Optional[float] = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    also: tuple = ()

    def __bool__(self) -> bool:
        return self.min is not None or self.max is not None

    def contains(self, value: float) -> bool:
        if value in self.also:
            return True
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            return False
        if self.max is not None and (value >= self.max if self.max_exclusive else value > self.max):
            return False
        return True

    def describe(self) -> str:
        """``1 to 100``, ``at least 0``, ``more than 0 and at most 10``, ``... (or -1)``."""
        low = high = None
        if self.min is not None:
            low = ("more than " if self.min_exclusive else "at least ") + _num(self.min)
        if self.max is not None:
            high = ("less than " if self.max_exclusive else "at most ") + _num(self.max)
        if low and high:
            exclusive = self.min_exclusive or self.max_exclusive
            text = f"{low} and {high}" if exclusive else f"{_num(self.min)} to {_num(self.max)}"
        else:
            text = low or high or "any number"
        if self.also:
            text += " (or " + ", ".join(_num(a) for a in self.also) + ")"
        return text


def _num(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def section(cls: type, help: str = "") -> Any:
    """Declare a nested section (a dataclass) with its own defaults."""
    return dataclasses.field(default_factory=cls, metadata={"help": help, "path": False, "choices": (),
                                                            "range": Range(), "length": None})


# Bounds that many fields share: declared once here, so every task reads the same.
POSITIVE = dict(min=1, max=2**31 - 1)                    # counts: epochs, batch sizes, layers
NON_NEGATIVE = dict(min=0, max=2**31 - 1)                # checkpoint intervals, warmup steps
WORKERS = dict(min=0, max=64)                            # DataLoader worker processes
COUNT_OR_ALL = dict(min=1, max=2**31 - 1, also=(-1,))    # num_samples, max_steps: -1 means no limit
FRACTION = dict(min=0.0, max=1.0)                        # ratios, weights
DROPOUT = dict(min=0.0, max=1.0, max_exclusive=True)     # a dropout of 1 zeroes every activation
SEQ_LENGTH = dict(min=3, max=512)                        # sub-tokens, [CLS] and [SEP] included; 512: BERT positions
LEARNING_RATE = dict(min=0.0, min_exclusive=True, max=10.0)
SHARE = dict(min=0.0, max=1.0, max_exclusive=True)       # a share split off a dataset (dev_ratio): not all of it
SEED = dict(min=0, max=2**32 - 1)                        # random seeds (numpy takes 32 bits)
ONNX_OPSET = dict(min=11, max=20)   # torch.onnx (TorchScript exporter) writes up to 20; BERT fails at 9 (dynamic Slice)


@dataclass
class TrainerSpec:
    """PyTorch Lightning trainer settings (names follow Lightning's Trainer arguments)."""

    max_epochs: int = spec_field(1, "number of passes over the training data", **POSITIVE)
    max_steps: int = spec_field(-1, "stop after this many optimizer steps (-1: no limit, max_epochs decides)",
                                 **COUNT_OR_ALL)
    precision: str = spec_field("32", "numeric precision: 32, 16-mixed or bf16-mixed (mixed needs a GPU for 16)",
                                choices=("32", "16-mixed", "bf16-mixed"))
    gradient_clip_val: float = spec_field(0.0, "clip gradients to this norm (0: no clipping)",
                                         min=0.0, max=1e6)
    accumulate_grad_batches: int = spec_field(1, "optimizer step every N batches", min=1, max=10000)
    val_check_interval: float = spec_field(1.0, "validate every fraction of an epoch", min=0.0,
                                          min_exclusive=True, max=1.0)
    log_every_n_steps: int = spec_field(10, "write training metrics every N steps", **POSITIVE)
    checkpoint_every_n_steps: int = spec_field(50, "also save checkpoints/last.ckpt every N steps, for resume after a crash (0: only at epoch end)",
                                           **NON_NEGATIVE)
    seed: int = spec_field(42, "random seed for weights init, shuffling and dropout", **SEED)
    enable_progress_bar: bool = spec_field(True, "show progress bars on the terminal (never in a log or pipe)")
    monitor: Optional[str] = spec_field(None, "validation metric that picks the epoch to keep, e.g. val_loss "
                                              "(null: the task's main metric)")
    monitor_mode: str = spec_field("auto", "max or min: whether a higher or lower monitor is better (auto: the "
                                           "task's direction, min for a *loss, *wer, *cer or *error)",
                                   choices=("auto", "max", "min"))
    save_best_model: bool = spec_field(True, "archive the weights of the best validation by monitor "
                                             "(false: of the last step)")


@dataclass
class SchedSpec:
    """Learning-rate schedule (NeMo names)."""

    name: str = spec_field("WarmupAnnealing", "WarmupAnnealing (linear warmup then linear decay), CosineAnnealing, or none",
                           choices=("WarmupAnnealing", "CosineAnnealing", "none"))
    warmup_ratio: float = spec_field(0.1, "fraction of all steps spent warming up", **FRACTION)
    warmup_steps: Optional[int] = spec_field(None, "warmup steps; overrides warmup_ratio when set", **NON_NEGATIVE)
    min_lr: float = spec_field(0.0, "learning rate at the end of annealing", min=0.0, max=10.0)


@dataclass
class OptimSpec:
    """Optimizer and its schedule."""

    name: str = spec_field("adamw", "optimizer: adam, adamw, sgd or novograd (NeMo's, for speech models)",
                           choices=("adam", "adamw", "sgd", "novograd"))
    lr: float = spec_field(5e-5, "peak learning rate", **LEARNING_RATE)
    weight_decay: float = spec_field(0.01, "decoupled weight decay (adamw), L2 (adam, sgd), or added to the "
                                           "normalised gradient (novograd)", min=0.0, max=10.0)
    momentum: float = spec_field(0.9, "momentum, sgd only", min=0.0, max=1.0, max_exclusive=True)
    betas: List[float] = spec_field([0.9, 0.999], "Adam and novograd betas (two numbers)", min=0.0, max=1.0,
                                   max_exclusive=True, length=2)
    sched: SchedSpec = section(SchedSpec, "learning-rate schedule")


@dataclass
class LanguageModelSpec:
    """The pretrained encoder."""

    pretrained_model_name: str = spec_field(
        "all-minilm-l6-v2",
        "encoder: a packaged short name (all-minilm-l6-v2), a local folder, or a model in the local Hugging Face cache")
    lm_checkpoint: Optional[str] = spec_field(None, "optional safetensors file with encoder weights to load",
                                              path="file")


@dataclass
class SpecBase:
    """Fields every subtask spec may carry. Subclasses add their sections."""

    example: ClassVar[str] = ""

    def problems(self) -> List[str]:
        """Rules between fields, checked once every field is valid on its own: a sentence per broken rule."""
        return []


@dataclass
class TritonSpec:
    """export_format=TRITON: the Triton model repository that ``tao serve`` serves (core/triton_repository.py)."""

    model_name: Optional[str] = spec_field(None, "the model's name in the repository and in requests (default: the "
                                                 "task's name); letters, digits, '_', '-' and '.'")
    max_batch_size: int = spec_field(16, "the largest batch Triton's dynamic batcher puts together", min=1, max=1024)
    max_queue_delay_us: int = spec_field(2000, "how long a request may wait for others to batch with, in "
                                               "microseconds", min=0, max=1_000_000)
    instances: int = spec_field(1, "copies of the model Triton runs side by side (each its own process)", min=1,
                                max=64)


@dataclass
class ExportFields(SpecBase):
    """The fields of every task's export (a task's ExportSpec is ``subtask_spec("ExportSpec", <its example>,
    base=ExportFields)``; speech_to_text's subclasses it to narrow export_format to RIVA and ONNX)."""

    export_format: str = spec_field("RIVA", "RIVA (.riva archive), ONNX (encrypted .eonnx; plain with "
                                    "encrypt=false), TRITON (a Triton model repository for tao serve) or HF (a "
                                    "Hugging Face folder: from_pretrained)",
                                    choices=("RIVA", "ONNX", "TRITON", "HF"))
    encrypt: bool = spec_field(True, "ONNX and TRITON: false writes plain files (model.onnx, tokenizer, labels) that "
                               "onnxruntime opens; RIVA is always encrypted, HF never")
    export_to: Optional[str] = spec_field(None, "name in the results folder (default exported-model.riva, "
                                          "exported-model.eonnx, exported-model-onnx/, exported-model-triton/, "
                                          "exported-model-hf/)")
    onnx_opset: int = spec_field(17, "ONNX opset version (what torch.onnx writes)", **ONNX_OPSET)
    triton: TritonSpec = section(TritonSpec, "export_format=TRITON: the model repository's settings")


# ----------------------------------------------------------------------------- sections made by functions

Fields = Sequence[Tuple[str, Any, Any]]  # (name, type, spec_field(...) or section(...)), as make_dataclass takes them
SECTION_FACTORIES = True  # a module of factories: what it makes belongs to the module that called it (make_section)


def make_section(name: str, fields: Fields, bases: tuple = (), namespace: Optional[Dict[str, Any]] = None) -> type:
    """``dataclasses.make_dataclass``, with the class's module that of the spec.py that asked for it (the first
    caller outside a module that sets ``SECTION_FACTORIES``), as if written there: bound there to ``name``, its
    instances pickle."""
    cls = make_dataclass(name, list(fields), bases=bases, namespace=namespace)
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("SECTION_FACTORIES"):
        frame = frame.f_back
    cls.__module__ = frame.f_globals["__name__"]
    return cls


# ----------------------------------------------------------------------------- dataset sections

def shuffle_field(why: str) -> Tuple[str, Any, Any]:
    """A training section's ``shuffle``: on, with ``why`` saying how its batches are formed."""
    return ("shuffle", bool, spec_field(True, f"shuffle every epoch ({why})"))


def data_section(name: str, files: Fields, batch_size: int, batch_help: str, samples: str, training: Fields = (),
                 after: Fields = ()) -> type:
    """A dataset section ``{<files>, batch_size, num_samples, <training>, <after>, num_workers}``.

    ``files`` name the data (a file, a prefix, a manifest); ``batch_help`` says what a batch counts ("sentences per
    batch"), ``samples`` what num_samples counts ("lines"); ``training`` holds what only a training section has
    (``shuffle_field`` among it), ``after`` what the task adds to every section."""
    return make_section(name, [
        *files,
        ("batch_size", int, spec_field(batch_size, batch_help, **POSITIVE)),
        ("num_samples", int, spec_field(-1, f"use N {samples} drawn at random (seed: trainer.seed, else 42), in file "
                                              f"order (-1: all)", **COUNT_OR_ALL)),
        *training, *after,
        ("num_workers", int, spec_field(0, "DataLoader worker processes (0: load in the main process)", **WORKERS)),
    ])


def subset_section(name: str, section_cls: type, *names: str) -> type:
    """A section of some of ``section_cls``'s fields, declared as there (a finetune model section: the settings
    of the model that fine-tuning may still change)."""
    hints = typing.get_type_hints(section_cls)
    by_name = {f.name: f for f in dataclasses.fields(section_cls)}
    return make_section(name, [(n, hints[n], _copy_field(by_name[n])) for n in names])


def _copy_field(f: dataclasses.Field, help: Optional[str] = None) -> Any:
    """A new field with ``f``'s default and metadata (``help`` replacing its help when given)."""
    metadata = dict(f.metadata, **({} if help is None else {"help": help}))
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return dataclasses.field(default_factory=f.default_factory, metadata=metadata)  # type: ignore[misc]
    return dataclasses.field(default=f.default, metadata=metadata)


# ----------------------------------------------------------------------------- subtask schemas

@dataclass(frozen=True)
class Examples:
    """The example command lines of a task's subtasks (``--help`` and the spec files' titles show them), all in
    one convention: ``tao <task> <subtask> [-e <spec>] -r <results>/<subtask> [-m <model>] -k $KEY <args>``, with
    the model that train writes (the export, for infer_onnx; none for train and dataset_convert, which writes
    into <results>/convert and takes no key). A task gives only each subtask's arguments:
    ``EXAMPLE("evaluate", "data_dir=/data/ner")``."""

    task: str                              # token_classification
    results: str                           # /results/ner: a results folder per subtask below it
    exported: str = "exported-model.eonnx"  # what export writes, for infer_onnx's -m

    def __call__(self, subtask: str, args: str, spec: bool = False) -> str:
        """``spec``: name the shipped spec file with -e (train always does)."""
        line = [f"tao {self.task} {subtask}"]
        if spec or subtask == "train":
            line.append(f"-e /specs/{self.task}/{subtask}.yaml")
        line.append(f"-r {self.results}/{'convert' if subtask == 'dataset_convert' else subtask}")
        if subtask == "infer_onnx":
            line.append(f"-m {self.results}/export/{self.exported}")
        elif subtask not in ("dataset_convert", "train"):
            line.append(f"-m {self.results}/train/checkpoints/trained-model.tao")
        if subtask != "dataset_convert":
            line.append("-k $KEY")
        return " ".join(line + [args])


def subtask_spec(name: str, example: str, fields: Fields = (), *, base: type = SpecBase,
                 problems: Optional[Callable[[Any], List[str]]] = None) -> type:
    """A subtask's schema class ``name`` (the name ``registry.py`` looks up): ``base``'s fields, then ``fields``,
    with the ``example`` that ``--help`` and the spec file's title show and, when given, the ``problems`` rule
    between its fields (``SpecBase.problems``)."""
    namespace: Dict[str, Any] = {"example": example}
    if problems is not None:
        namespace["problems"] = problems
    return make_section(name, fields, bases=(base,), namespace=namespace)


def _data_dir(help: Optional[str]) -> Fields:
    return [("data_dir", str, spec_field(REQUIRED, help, path="dir"))] if help else []


def _in_data_dir(help: str, data_dir: Optional[str]) -> str:
    return help + (" (files in data_dir)" if data_dir else "")


def train_spec(example: str, model: type, training: type, validation: type, optim: type = OptimSpec, *,
               data_dir: Optional[str] = None, model_help: str = "the model",
               validation_help: str = "validation data, evaluated every epoch", extra: Fields = (),
               problems: Optional[Callable[[Any], List[str]]] = None) -> type:
    """``TrainSpec``: ``[data_dir,] trainer, model, training_ds, validation_ds, <extra>, optim``.

    ``data_dir`` (its help) for a task whose data files are named inside one folder; ``extra`` sections go
    after the data (question_answering's decoding); ``problems`` checks rules between fields."""
    return subtask_spec("TrainSpec", example, [
        *_data_dir(data_dir),
        ("trainer", TrainerSpec, section(TrainerSpec, "training loop")),
        ("model", model, section(model, model_help)),
        ("training_ds", training, section(training, _in_data_dir("training data", data_dir))),
        ("validation_ds", validation, section(validation, validation_help)),
        *extra,
        ("optim", optim, section(optim, "optimizer")),
    ], problems=problems)


def finetune_spec(train: type, example: str, model: Optional[type], *, model_help: str = "the model comes from -m",
                  data: Optional[str] = None, **helps: str) -> type:
    """``FinetuneSpec``: the sections of ``train`` (a ``train_spec``) in its order, with ``finetuning_ds`` in place of
    ``training_ds`` (help ``data``; default: the training data's, of fine-tuning) and the task's finetune
    ``model`` section in place of the model (or none: the model comes whole from -m). ``helps`` replace the help
    of other fields by name (``data_dir=...``). Train's rules between fields (``problems``) are not carried over."""
    hints = typing.get_type_hints(train)
    fields = []
    for f in dataclasses.fields(train):
        if f.name == "model":
            if model is not None:
                fields.append(("model", model, section(model, model_help)))
        elif f.name == "training_ds":
            help = data or "fine-tuning" + f.metadata["help"][len("training"):]
            fields.append(("finetuning_ds", hints[f.name], _copy_field(f, help)))
        else:
            fields.append((f.name, hints[f.name], _copy_field(f, helps.pop(f.name, None))))
    if helps:
        raise ValueError(f"finetune_spec: {train.__name__} has no fields {sorted(helps)}")
    return subtask_spec("FinetuneSpec", example, fields)


def evaluate_spec(example: str, test: type, *, data_dir: Optional[str] = None, test_help: str = "labelled test data",
                  extra: Fields = ()) -> type:
    """``EvaluateSpec``: ``[data_dir,] test_ds, <extra>``."""
    return subtask_spec("EvaluateSpec", example, [
        *_data_dir(data_dir),
        ("test_ds", test, section(test, _in_data_dir(test_help, data_dir))),
        *extra,
    ])


def dataset_convert_spec(example: str, source: str, target: str, *, source_kind: str = "dir",
                         dataset: Optional[Tuple[str, str, tuple]] = None, extra: Fields = ()) -> type:
    """``DatasetConvertSpec``: ``[dataset_name,] source_data_dir, target_data_dir, <extra>``.

    ``dataset`` is dataset_name's (default, help, choices); ``source`` and ``target`` the helps of the folder
    (or file: ``source_kind``, a ``PATH_KINDS`` value) to read and the folder to write."""
    name = [("dataset_name", str, spec_field(dataset[0], dataset[1], choices=dataset[2]))] if dataset else []
    return subtask_spec("DatasetConvertSpec", example, [
        *name,
        ("source_data_dir", str, spec_field(REQUIRED, source, path=source_kind)),
        ("target_data_dir", str, spec_field(REQUIRED, target, path="out_dir")),
        *extra,
    ])


def split_seed() -> Tuple[str, Any, Any]:
    """dataset_convert's ``seed`` of the train/dev split."""
    return ("seed", int, spec_field(42, "seed of the train/dev split", **SEED))

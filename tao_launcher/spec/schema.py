"""Building blocks for spec schemas: a field with help text, and the sections every task shares.

A spec schema is a plain dataclass tree. Each leaf is declared with ``spec_field`` so
that its default, its type, its one-line description and whether it names a file are
all in one place; ``load.py`` validates against it, ``render.py`` writes the default YAML
and the ``--help`` text from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, List, Optional

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
    seed: int = spec_field(42, "random seed for weights init, shuffling and dropout", min=0, max=2**32 - 1)
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
class ExportFields(SpecBase):
    """The fields of every task's export (a task's ExportSpec subclasses it and adds its example; speech_to_text
    narrows export_format to RIVA and ONNX)."""

    export_format: str = spec_field("RIVA", "RIVA (.riva for Riva ServiceMaker), ONNX (encrypted .eonnx; plain with "
                                    "encrypt=false) or HF (a Hugging Face folder: from_pretrained)",
                                    choices=("RIVA", "ONNX", "HF"))
    encrypt: bool = spec_field(True, "ONNX only: false writes a plain folder (model.onnx, tokenizer, labels) that "
                               "onnxruntime opens; RIVA is always encrypted, HF never")
    export_to: Optional[str] = spec_field(None, "name in the results folder (default exported-model.riva, "
                                          "exported-model.eonnx, exported-model-onnx/, exported-model-hf/)")
    onnx_opset: int = spec_field(17, "ONNX opset version (what torch.onnx writes)", **ONNX_OPSET)

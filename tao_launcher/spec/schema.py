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


def spec_field(default: Any = REQUIRED, help: str = "", *, path: bool = False,
               choices: tuple = ()) -> Any:
    """Declare a spec leaf. ``path=True`` marks values the launcher maps between host and container."""
    metadata = {"help": help, "path": path, "choices": tuple(choices)}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls: type, help: str = "") -> Any:
    """Declare a nested section (a dataclass) with its own defaults."""
    return dataclasses.field(default_factory=cls, metadata={"help": help, "path": False, "choices": ()})


@dataclass
class TrainerSpec:
    """PyTorch Lightning trainer settings (names follow Lightning's Trainer arguments)."""

    max_epochs: int = spec_field(1, "number of passes over the training data")
    max_steps: int = spec_field(-1, "stop after this many optimizer steps (-1: no limit, max_epochs decides)")
    precision: str = spec_field("32", "numeric precision: 32, 16-mixed or bf16-mixed (mixed needs a GPU for 16)",
                                choices=("32", "16-mixed", "bf16-mixed"))
    gradient_clip_val: float = spec_field(0.0, "clip gradients to this norm (0: no clipping)")
    accumulate_grad_batches: int = spec_field(1, "optimizer step every N batches")
    val_check_interval: float = spec_field(1.0, "validate every fraction of an epoch (float) ")
    log_every_n_steps: int = spec_field(10, "write training metrics every N steps")
    checkpoint_every_n_steps: int = spec_field(50, "also save checkpoints/last.ckpt every N steps, for resume after a crash (0: only at epoch end)")
    seed: int = spec_field(42, "random seed for weights init, shuffling and dropout")
    enable_progress_bar: bool = spec_field(True, "show a progress bar on the terminal")


@dataclass
class SchedSpec:
    """Learning-rate schedule (NeMo names)."""

    name: str = spec_field("WarmupAnnealing", "WarmupAnnealing (linear warmup then linear decay), CosineAnnealing, or none",
                           choices=("WarmupAnnealing", "CosineAnnealing", "none"))
    warmup_ratio: float = spec_field(0.1, "fraction of all steps spent warming up")
    warmup_steps: Optional[int] = spec_field(None, "warmup steps; overrides warmup_ratio when set")
    min_lr: float = spec_field(0.0, "learning rate at the end of annealing")


@dataclass
class OptimSpec:
    """Optimizer and its schedule."""

    name: str = spec_field("adamw", "optimizer: adam, adamw or sgd", choices=("adam", "adamw", "sgd"))
    lr: float = spec_field(5e-5, "peak learning rate")
    weight_decay: float = spec_field(0.01, "decoupled weight decay (adamw) or L2 (adam, sgd)")
    momentum: float = spec_field(0.9, "momentum, sgd only")
    betas: List[float] = spec_field([0.9, 0.999], "Adam betas")
    sched: SchedSpec = section(SchedSpec, "learning-rate schedule")


@dataclass
class LanguageModelSpec:
    """The pretrained encoder."""

    pretrained_model_name: str = spec_field(
        "all-minilm-l6-v2",
        "encoder: a packaged short name (all-minilm-l6-v2), a local folder, or a model in the local Hugging Face cache")
    lm_checkpoint: Optional[str] = spec_field(None, "optional safetensors file with encoder weights to load", path=True)


@dataclass
class SpecBase:
    """Fields every subtask spec may carry. Subclasses add their sections."""

    example: ClassVar[str] = ""

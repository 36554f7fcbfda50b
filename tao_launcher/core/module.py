"""The Lightning side of training, apart from everything else: only train and finetune import it.

``TaoModule`` is the LightningModule base of every task (optimizer and schedule from the spec's
``optim`` section, the training log); ``BucketedDataModule`` serves length-bucketed batches
(core/data.py) to Lightning. evaluate, infer, export and dataset_convert never import this
module, so they never pay for pytorch_lightning (tests/nlp/test_import_cost.py holds them to it).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Optional

import pytorch_lightning as pl
import torch

from tao_launcher.core import faultpoints
from tao_launcher.core.data import WINDOW_BATCHES, LengthBucketBatchSampler, collate_examples
from tao_launcher.core.optim import build_optimizer, build_scheduler


class TaoModule(pl.LightningModule):
    """LightningModule base: optimizer and per-step schedule from the spec's ``optim`` section."""

    def __init__(self, optim_spec=None):
        super().__init__()
        self.optim_spec = optim_spec

    def configure_optimizers(self):
        optimizer = build_optimizer(self.named_parameters(), self.optim_spec)
        scheduler = build_scheduler(optimizer, self.optim_spec.sched, int(self.trainer.estimated_stepping_batches))
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def training_loss(self, batch: Dict[str, Any]) -> torch.Tensor:
        """The loss of one training batch: what a task's module defines."""
        raise NotImplementedError

    def training_step(self, batch: Dict[str, Any], batch_idx: int):
        """The task's loss, logged; a NaN or infinite one stops the run (core/trainer.py ``StopOnNonFinite``)."""
        loss = faultpoints.poison("nan-training-loss", self.training_loss(batch))
        self.log_training(loss, batch)
        return loss

    def log_training(self, loss, batch) -> None:
        """train_loss on the progress bar and the learning rate, for every task the same way."""
        rows = batch_size_of(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=rows)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=rows)


class JointLoss(torch.nn.Module):
    """NeMo's loss of a two-head network (intent and slots, punctuation and capitals): ``weight`` times the first
    head's cross-entropy plus ``1 - weight`` times the second's. Per-token logits (batch, sequence, classes) are
    flattened; positions labelled ``IGNORE_INDEX`` (sub-tokens, padding) count for nothing."""

    def __init__(self, weight: float):
        super().__init__()
        from tao_launcher.core.data import IGNORE_INDEX

        self.weight = weight
        self.cross_entropy = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def forward(self, first: torch.Tensor, first_labels: torch.Tensor, second: torch.Tensor,
                second_labels: torch.Tensor) -> torch.Tensor:
        def head(logits, labels):
            return self.cross_entropy(logits.flatten(0, -2), labels.flatten())

        return self.weight * head(first, first_labels) + (1 - self.weight) * head(second, second_labels)


class TwoHeadModule(TaoModule):
    """The training side of a two-head network (nlp/model.py ``TwoHeadNet``): the ``JointLoss`` of its heads,
    whose labels come in the batch as ``<head>_labels``; ``first_weight`` weighs the first head's loss."""

    def __init__(self, net, optim_spec, first_weight: float):
        super().__init__(optim_spec)
        self.net = net
        self.label_keys = [f"{head.name}_labels" for head in net.two_heads]
        self.loss = JointLoss(first_weight)

    def forward_with_loss(self, batch: Dict[str, Any]):
        """(first head's logits, second head's logits, the joint loss)."""
        first, second = self.net(batch["input_ids"], batch["attention_mask"])
        return first, second, self.loss(first, batch[self.label_keys[0]], second, batch[self.label_keys[1]])

    def training_loss(self, batch: Dict[str, Any]) -> torch.Tensor:
        return self.forward_with_loss(batch)[2]


def batch_size_of(batch) -> int:
    """Rows of a batch, whatever the task: the first dimension of its first tensor."""
    first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return int(first.shape[0]) if hasattr(first, "shape") else len(first)


class ResumableDataLoader(torch.utils.data.DataLoader):
    """A DataLoader whose position inside the epoch goes into checkpoints (Lightning's _Stateful protocol)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches_done = 0

    def __iter__(self):
        self.batches_done = getattr(self.batch_sampler, "skip_batches", 0)
        for batch in super().__iter__():
            self.batches_done += 1
            yield batch

    def state_dict(self) -> Dict[str, int]:
        return {"batches_done": self.batches_done}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.batch_sampler.skip_batches = int(state.get("batches_done", 0))


class BucketedDataModule(pl.LightningDataModule):
    """Train and validation loaders over encoded examples, with length-bucketed batches.

    Loaders are built when Lightning asks, after DDP has given each process its rank, so each
    rank reads its own share. The training loader is resumable (its position goes into checkpoints).
    ``train`` and ``val`` are lists of examples as ``collate_examples`` takes them (token ids, bucketed by
    ``len(input_ids)``), or, for other inputs (audio features), as the task's own ``collate`` takes them,
    bucketed by ``length(example)``. ``train_bucketing=False`` draws random training batches instead: a network
    with batch norm (speech) must not see batches of only similar-length (so similar) utterances.
    """

    def __init__(self, train: List[Dict[str, Any]], val: List[Dict[str, Any]], *, seed: int,
                 train_batch_size: int, val_batch_size: int, pad_id: int = 0, shuffle: bool = True,
                 train_num_workers: int = 0, val_num_workers: int = 0, train_bucketing: bool = True,
                 collate: Optional[Callable[[List[Dict[str, Any]]], Dict[str, Any]]] = None,
                 length: Callable[[Dict[str, Any]], int] = lambda example: len(example["input_ids"])):
        super().__init__()
        self.examples = {"train": train, "validation": val}
        self.seed = seed
        self.batch_sizes = {"train": train_batch_size, "validation": val_batch_size}
        self.shuffle = shuffle
        self.num_workers = {"train": train_num_workers, "validation": val_num_workers}
        self.collate = collate or functools.partial(collate_examples, pad_id=pad_id)
        self.length = length
        self.train_bucketing = train_bucketing

    def _loader(self, split: str, loader_cls=torch.utils.data.DataLoader):
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        examples = self.examples[split]
        bucketed = split != "train" or self.train_bucketing
        sampler = LengthBucketBatchSampler([self.length(e) for e in examples], self.batch_sizes[split],
                                           self.shuffle and split == "train", self.seed, rank, world,
                                           window_batches=WINDOW_BATCHES if bucketed else 1)
        return loader_cls(examples, batch_sampler=sampler, collate_fn=self.collate, num_workers=self.num_workers[split])

    def train_dataloader(self):
        return self._loader("train", ResumableDataLoader)

    def val_dataloader(self):
        return self._loader("validation")

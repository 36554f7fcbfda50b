"""The Lightning side of training, apart from everything else: only train and finetune import it.

``TaoModule`` is the LightningModule base of every task (optimizer and schedule from the spec's
``optim`` section, the training log); ``BucketedDataModule`` serves length-bucketed batches
(core/data.py) to Lightning. evaluate, infer, export and dataset_convert never import this
module, so they never pay for pytorch_lightning (tests/test_import_cost.py holds them to it).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Optional

import pytorch_lightning as pl
import torch

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

    def log_training(self, loss, batch) -> None:
        """train_loss on the progress bar and the learning rate, for every task the same way."""
        from tao_launcher.core.trainer import batch_size_of

        rows = batch_size_of(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=rows)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=rows)


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
        from tao_launcher.core.trainer import ResumableDataLoader

        return self._loader("train", ResumableDataLoader)

    def val_dataloader(self):
        return self._loader("validation")

"""Batching shared by every task: length-bucketed batches and padding to the batch's longest.

Sorting sentences by length inside large windows before cutting batches means a batch
pads only to lengths that are close together, which is most of the speed of training and
inference on short sentences; the order of batches is still shuffled every epoch.
"""

from __future__ import annotations

import random
from typing import Any, Dict, Iterator, List, Sequence

import torch

WINDOW_BATCHES = 50  # sort by length inside windows of this many batches


class LengthBucketBatchSampler(torch.utils.data.Sampler):
    """Yields lists of indices; deterministic for (seed, epoch), sharded by rank for DDP.

    ``skip_batches`` lets a run resumed mid-epoch continue with the batches it had not seen.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1, window_batches: int = WINDOW_BATCHES):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.window_batches = window_batches  # 1: random batches (each still sorted inside)
        self.epoch = 0
        self.skip_batches = 0
        self._batches = (None, [])  # (epoch, batches): __len__ and __iter__ share one computation

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> List[List[int]]:
        if self._batches[0] != self.epoch:
            self._batches = (self.epoch, self._make_batches())
        return self._batches[1]

    def _make_batches(self) -> List[List[int]]:
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        if self.world_size > 1:
            if self.shuffle:  # training: equal shares, so every rank takes the same number of steps
                order = order[:len(order) - len(order) % self.world_size]
            order = order[self.rank::self.world_size]  # evaluation keeps every sentence, once
        window = self.batch_size * self.window_batches
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start:start + window], key=lambda i: self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        batches = self._all_batches()
        skip, self.skip_batches = self.skip_batches, 0
        return iter(batches[skip:])

    def __len__(self) -> int:
        return len(self._all_batches()) - self.skip_batches


def pad_batch(sequences: List[List[int]], pad_id: int) -> Dict[str, torch.Tensor]:
    """input_ids and attention_mask, padded to the longest sequence of the batch."""
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}


IGNORE_INDEX = -100  # label of positions that carry no target (sub-tokens, padding, special tokens)


def pad_value(key: str, pad_id: int) -> int:
    """input_ids pad with the tokenizer's pad id, any ``*labels`` with IGNORE_INDEX, the rest with 0."""
    if key == "input_ids":
        return pad_id
    return IGNORE_INDEX if key.endswith("labels") else 0


def collate_examples(examples: List[Dict[str, Any]], pad_id: int) -> Dict[str, torch.Tensor]:
    """Stack encoded examples into a batch: sequence fields padded to the longest, scalars stacked.

    An example is a dict with ``input_ids`` (list of ints) and any of: ``token_type_ids`` and
    per-token ``*labels`` (lists, as long as ``input_ids``), or scalar fields (an int: a sentence label).
    ``attention_mask`` is derived from ``input_ids``.
    """
    batch = pad_batch([e["input_ids"] for e in examples], pad_id)
    longest = batch["input_ids"].shape[1]
    for key in examples[0]:
        if key == "input_ids":
            continue
        values = [e[key] for e in examples]
        if isinstance(values[0], (list, tuple)):
            out = torch.full((len(values), longest), pad_value(key, pad_id), dtype=torch.long)
            for row, seq in enumerate(values):
                out[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            batch[key] = out
        else:
            batch[key] = torch.tensor(values, dtype=torch.float if isinstance(values[0], float) else torch.long)
    return batch


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Inference batches of similar length; callers put results back in input order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

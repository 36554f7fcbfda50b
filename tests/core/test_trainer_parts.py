"""The trainer core's parts in isolation: batching, resume position, schedules, metrics, encoders, results folder."""

from __future__ import annotations


import pytest
import torch

from tao_launcher.core.data import LengthBucketBatchSampler, length_sorted_batches, pad_batch
from tao_launcher.core.encoders import resolve_encoder
from tao_launcher.core.metrics import classification_report, confusion_matrix
from tao_launcher.core.optim import build_optimizer, build_scheduler
from tao_launcher.core.results import SecretFilter
from tao_launcher.errors import UsageError
from tao_launcher.spec.schema import OptimSpec, SchedSpec


def test_bucketed_batches_cover_every_index_once_and_pad_less_than_random_batches():
    lengths = [(i * 37) % 60 + 1 for i in range(1000)]
    sampler = LengthBucketBatchSampler(lengths, 32, shuffle=True, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    random_padded = sum(max(lengths[i] for i in range(s, min(s + 32, 1000))) * len(range(s, min(s + 32, 1000)))
                        for s in range(0, 1000, 32))
    assert padded < 0.6 * random_padded


def test_batches_are_deterministic_per_epoch_and_differ_between_epochs():
    lengths = list(range(1, 301))
    a, b = LengthBucketBatchSampler(lengths, 16, True, seed=1), LengthBucketBatchSampler(lengths, 16, True, seed=1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


def test_skip_batches_resumes_where_the_epoch_stopped_once():
    sampler = LengthBucketBatchSampler(list(range(1, 101)), 10, True, seed=0)
    full = list(sampler)
    sampler.skip_batches = 4
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # only the resumed epoch skips


def test_ddp_ranks_get_disjoint_equal_shares():
    lengths = list(range(1, 105))
    ranks = [list(LengthBucketBatchSampler(lengths, 8, True, 0, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])
    seen = [i for rank in ranks for b in rank for i in b]
    assert len(seen) == len(set(seen))


def test_pad_batch_and_length_sorted_batches():
    out = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert length_sorted_batches([3, 1, 2], 2) == [[1, 2], [0]]


def test_classification_report_matches_hand_computed_values():
    preds = torch.tensor([0, 0, 1, 1, 1, 0])
    labels = torch.tensor([0, 1, 1, 1, 0, 0])
    report = classification_report(confusion_matrix(preds, labels, 2), ["neg", "pos"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["neg"]["precision"] == pytest.approx(2 / 3) and report["neg"]["recall"] == pytest.approx(2 / 3)
    assert report["pos"]["f1"] == pytest.approx(2 / 3) and report["support"] == 6


def test_macro_f1_leaves_out_a_class_that_neither_occurs_nor_is_predicted():
    # class 2 (an UNK intent, say) has no gold and no prediction: as sklearn, it is not averaged in as F1 0
    preds = torch.tensor([0, 0, 1, 1, 1, 0])
    labels = torch.tensor([0, 1, 1, 1, 0, 0])
    report = classification_report(confusion_matrix(preds, labels, 3), ["neg", "pos", "UNK"])
    assert report["macro_f1"] == pytest.approx(2 / 3)
    assert report["UNK"]["support"] == 0
    # a class that is predicted but never gold still counts (a false class is an error)
    wrong = classification_report(confusion_matrix(torch.tensor([2, 0]), torch.tensor([0, 0]), 3), ["a", "b", "c"])
    assert wrong["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)


@pytest.mark.parametrize("name", ["WarmupAnnealing", "CosineAnnealing"])
def test_schedules_warm_up_then_anneal_to_min_lr(name):
    params = [("w", torch.nn.Parameter(torch.zeros(2, 2)))]
    opt = build_optimizer(params, OptimSpec(lr=1.0))
    sched = build_scheduler(opt, SchedSpec(name=name, warmup_steps=10, min_lr=0.1), total_steps=110)
    lrs = []
    for _ in range(110):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1, abs=0.02)


def test_weight_decay_skips_biases_and_norms_and_sgd_is_available():
    params = [("w", torch.nn.Parameter(torch.zeros(2, 2))), ("b", torch.nn.Parameter(torch.zeros(2)))]
    opt = build_optimizer(params, OptimSpec(name="sgd", weight_decay=0.5))
    assert isinstance(opt, torch.optim.SGD)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    assert build_scheduler(opt, SchedSpec(name="none"), 10) is None


def test_encoder_resolution_packaged_folder_and_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    packaged = resolve_encoder("all-minilm-l6-v2")
    assert (packaged / "config.json").exists()
    assert resolve_encoder(str(packaged)) == packaged
    with pytest.raises(UsageError) as err:
        resolve_encoder("bert-base-uncased")
    assert "all-minilm-l6-v2" in str(err.value) and "nothing is downloaded" in str(err.value)


def test_encoder_found_in_the_hugging_face_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    snapshot = tmp_path / "hf" / "hub" / "models--org--tiny" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc")
    assert resolve_encoder("org/tiny") == snapshot


# the folder lock (a running run refuses a second one; a killed one reads as dead): tests/test_faults.py


def test_secret_filter_masks_whole_tokens_only():
    import logging

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key k, checkpoint %s", ("k",), None)
    SecretFilter("k").filter(record)
    assert record.getMessage() == "key ***, checkpoint ***"


def test_window_of_one_batch_gives_random_batches_for_batch_norm_networks():
    """speech_to_text trains on random batches: length buckets would give batch norm batches of similar clips."""
    lengths = list(range(1000))
    spread = lambda sampler: sum(max(lengths[i] for i in b) - min(lengths[i] for i in b)  # noqa: E731
                                 for b in sampler) / len(sampler)
    bucketed = LengthBucketBatchSampler(lengths, 32, shuffle=True, seed=0)
    random_batches = LengthBucketBatchSampler(lengths, 32, shuffle=True, seed=0, window_batches=1)
    assert spread(bucketed) < 50 < 500 < spread(random_batches)
    assert sorted(i for b in random_batches for i in b) == lengths

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


# ----------------------------------------------------------------------------- the kept model and non-finite losses

def fake_trainer(epoch: int, step: int, **metrics):
    """What BestModel and StopOnNonFinite read of a Lightning trainer after the validation of ``epoch`` (from 0)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        sanity_checking=False, current_epoch=epoch, global_step=step, max_epochs=4, max_steps=-1,
        num_training_batches=10, accumulate_grad_batches=1, precision="32-true",
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
        fit_loop=SimpleNamespace(epoch_progress=SimpleNamespace(current=SimpleNamespace(completed=epoch))),
        state=SimpleNamespace(fn="fit"),
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision))


def validations(best, rows):
    """Feed ``best`` one validation per (val_wer, val_loss) row, a weight per epoch that tells them apart."""
    net = torch.nn.Linear(1, 1)
    for epoch, (wer, loss) in enumerate(rows):
        torch.nn.init.constant_(net.weight, float(epoch))
        metrics = {"val_wer": wer} if loss is None else {"val_wer": wer, "val_loss": loss}
        best.on_validation_end(fake_trainer(epoch, (epoch + 1) * 10, **metrics), net)
    return best


@pytest.mark.parametrize("rows, epoch, tie", [
    ([(1.0, 28.97), (1.0, 12.1), (1.0, 8.4), (1.0, 6.63)], 4,         # speech's flat WER: the last, lowest loss
     "val_wer tied with 3 other validations: kept the lowest val_loss"),
    ([(1.0, 5.0), (1.0, 9.0)], 1, "val_wer tied with 1 other validation: kept the lowest val_loss"),
    ([(1.0, 5.0), (1.0, 5.0)], 2, "val_wer tied with 1 other validation: kept the latest"),
    ([(1.0, None), (1.0, None), (1.0, None)], 3, "val_wer tied with 2 other validations: kept the latest"),
    ([(1.0, 7.0), (1.0, 5.0), (1.0, 5.0)], 3,
     "val_wer tied with 2 other validations: kept the latest with the lowest val_loss"),
    ([(0.9, 7.0), (0.5, 9.0), (0.7, 1.0)], 2, None),                   # no tie: the monitor alone decides
    ([(1.0, 7.0), (0.5, 9.0), (0.5, 8.0), (0.6, 1.0)], 3,              # a tie on a new best starts a new count
     "val_wer tied with 1 other validation: kept the lowest val_loss"),
])
def test_a_tie_on_the_monitor_goes_to_the_lower_val_loss_then_to_the_later_validation(rows, epoch, tie):
    from tao_launcher.core.trainer import BestModel

    best = validations(BestModel("val_wer", "min"), rows)
    assert best.best["epoch"] == epoch and best.tie_break() == tie
    assert float(best.weights["weight"]) == epoch - 1                # the archive gets the kept epoch's weights
    restored = BestModel("val_wer", "min")                           # a resumed run keeps the tie's record
    restored.load_state_dict(best.state_dict())
    assert restored.best == best.best and restored.tie_break() == tie


def test_the_best_line_says_how_a_tie_was_broken(caplog):
    from tao_launcher.core import progress

    best = {"epoch": 4, "step": 40, "metrics": {"val_loss": 6.63, "val_wer": 1.0}, "shown": ["val_loss", "val_wer"],
            "tie": "val_wer tied with 3 other validations: kept the lowest val_loss"}
    with caplog.at_level("INFO", logger="tao.progress"):
        progress.final_summary(best, 4, 12.0, "m.tao", "weights of the best validation by val_wer")
    assert caplog.records[0].getMessage() == ("best: epoch 4/4  step 40  val_loss 6.6300, val_wer 1.0000 "
                                              "(val_wer tied with 3 other validations: kept the lowest val_loss)")


@pytest.mark.parametrize("loss", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_training_loss_stops_before_its_backward_pass_naming_epoch_and_step(loss):
    from types import SimpleNamespace

    from tao_launcher.core.trainer import StopOnNonFinite
    from tao_launcher.errors import TaoError

    trainer = fake_trainer(1, 13)        # the 14th step, in epoch 2 of 4, as the terminal counts them
    module = SimpleNamespace(optim_spec=SimpleNamespace(lr=0.5))
    with pytest.raises(TaoError) as err:
        StopOnNonFinite("val_acc").on_before_backward(trainer, module, torch.tensor(loss))
    assert str(err.value) == (f"the training loss is {loss} at epoch 2/4 step 14: lower optim.lr (now 0.5) or "
                              f"check the training data for broken examples, then rerun with --overwrite")
    StopOnNonFinite("val_acc").on_before_backward(trainer, module, torch.tensor(3.5))   # a finite loss trains on
    trainer.precision = "16-mixed"
    with pytest.raises(TaoError, match=r"or train in full precision \(trainer.precision=32\), then rerun"):
        StopOnNonFinite("val_acc").on_before_backward(trainer, module, torch.tensor(loss))


def test_a_non_finite_validation_loss_or_monitored_metric_stops_the_run():
    from types import SimpleNamespace

    from tao_launcher.core.trainer import StopOnNonFinite
    from tao_launcher.errors import TaoError

    module = SimpleNamespace(optim_spec=SimpleNamespace(lr=0.5))
    stop = StopOnNonFinite("val_acc")
    stop.on_validation_end(fake_trainer(0, 10, val_loss=0.7, val_acc=0.5, val_f1_other=float("nan")), module)
    with pytest.raises(TaoError, match=r"^val_loss is nan at epoch 1/4 step 10: lower optim.lr \(now 0.5\) or check "
                                       r"the training and validation data for broken examples"):
        stop.on_validation_end(fake_trainer(0, 10, val_loss=float("nan"), val_acc=0.5), module)
    with pytest.raises(TaoError, match=r"^val_acc is inf at epoch 2/4 step 20"):
        stop.on_validation_end(fake_trainer(1, 20, val_loss=0.7, val_acc=float("inf")), module)

"""What a person reads and sees, in isolation: the terminal filter, the best-model choice, the plots (no training)."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import pytest
import torch

from tao_launcher.core import plots, progress
from tao_launcher.core.trainer import BestModel, monitor_of
from tao_launcher.errors import UsageError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG_MAGIC, path


def record(name: str, level: int = logging.INFO, **extra) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, "message", (), None)
    rec.__dict__.update(extra)
    return rec


def test_terminal_shows_tao_lines_and_errors_but_not_library_chatter():
    keep = progress.TerminalFilter().filter
    assert keep(record("tao.trainer")) and keep(record("tao"))
    assert not keep(record("pytorch_lightning.utilities.rank_zero"))   # "GPU available: False, used: False"
    assert not keep(record("py.warnings", logging.WARNING))
    assert not keep(record("transformers.modeling_utils", logging.WARNING))
    assert keep(record("pytorch_lightning", logging.ERROR))
    assert not keep(record("tao.trainer", **progress.FILE_ONLY))     # the long metrics row: log.txt only
    formatter = progress.TerminalFormatter("%(message)s")
    assert formatter.format(record("tao.x")) == "message"
    assert formatter.format(record("tao.x", logging.WARNING)) == "warning: message"


def _trainer(step: int, epoch: int = 0, **metrics):
    """The few trainer attributes BestModel reads, standing in for a Lightning trainer after a validation."""
    return SimpleNamespace(sanity_checking=False, global_step=step, current_epoch=epoch,
                           callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
                           state=SimpleNamespace(fn="fit"),
                           fit_loop=SimpleNamespace(epoch_progress=SimpleNamespace(current=SimpleNamespace(completed=epoch))))


class _Module(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((2,), value))


def test_best_model_keeps_the_best_validation_not_the_last_and_restores_its_weights():
    best = BestModel("val_acc", "max")
    module = _Module(1.0)
    for step, (value, weight) in enumerate([(0.6, 1.0), (0.8, 2.0), (0.8, 3.0), (float("nan"), 4.0), (0.7, 5.0)], 1):
        module.weight.data.fill_(weight)
        best.setup(None, module, "fit")
        best.on_validation_end(_trainer(step * 10, epoch=step - 1, val_acc=value, val_loss=1.0 / step), module)
    assert best.best["step"] == 30 and best.best["epoch"] == 3  # a tie goes to the lower val_loss; NaN never wins
    assert best.best["metrics"]["val_acc"] == pytest.approx(0.8)
    best.restore(module, step=50)
    assert module.weight.tolist() == [3.0, 3.0]

    lowest = BestModel("val_loss", "min", keep_weights=False)
    for step, loss in ((1, 0.9), (2, 0.4), (3, 0.5)):
        lowest.on_validation_end(_trainer(step, val_loss=loss), module)
    assert lowest.best["step"] == 2 and lowest.weights is None
    lowest.restore(module, step=3)
    assert module.weight.tolist() == [3.0, 3.0]  # save_best_model=false: the last weights stay


def test_best_model_state_travels_in_checkpoints_without_a_copy_when_the_best_is_current():
    best = BestModel("val_acc", "max")
    module = _Module(1.0)
    trainer = _trainer(8, val_acc=0.9)
    best.setup(trainer, module, "fit")
    best.on_validation_end(trainer, module)
    state = best.state_dict()
    assert state["weights"] is None and state["weights_are_the_model"]  # last.ckpt holds those weights already
    trainer.global_step = 12
    state = best.state_dict()
    assert torch.equal(state["weights"]["weight"], torch.ones(2))

    resumed = BestModel("val_acc", "max")
    resumed.load_state_dict(state)
    module.weight.data.fill_(7.0)
    resumed.restore(module, step=20)
    assert resumed.best["step"] == 8 and module.weight.tolist() == [1.0, 1.0]


def test_monitor_defaults_to_the_main_metric_and_its_direction():
    spec = SimpleNamespace(monitor=None, monitor_mode="auto")
    assert monitor_of(spec, ("val_wer", "min")) == ("val_wer", "min")
    spec.monitor = "val_loss"
    assert monitor_of(spec, ("val_acc", "max")) == ("val_loss", "min")
    spec.monitor, spec.monitor_mode = "val_f1", "auto"
    assert monitor_of(spec, ("val_acc", "max")) == ("val_f1", "max")
    spec.monitor_mode = "min"
    assert monitor_of(spec, ("val_acc", "max")) == ("val_f1", "min")


def test_a_monitor_the_task_does_not_log_names_the_ones_it_does():
    best = BestModel("val_accuracy", "max")
    with pytest.raises(UsageError, match="trainer.monitor=val_accuracy is not a metric this task logs: set "
                                         "trainer.monitor to one of val_acc, val_loss"):
        best.on_validation_end(_trainer(1, val_acc=0.5, val_loss=0.7), _Module(0.0))


def test_planned_epochs_counts_what_max_steps_leaves():
    def trainer(max_epochs, max_steps, batches=10, accumulate=1):
        return SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps, num_training_batches=batches,
                               accumulate_grad_batches=accumulate)
    assert progress.planned_epochs(trainer(3, -1)) == 3
    assert progress.planned_epochs(trainer(3, 15)) == 2
    assert progress.planned_epochs(trainer(3, 15, accumulate=2)) == 3
    assert progress.planned_epochs(trainer(1, 3)) == 1


def test_training_plots_are_png_images_of_any_metric_names(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train_loss,val_loss,val_wer,val_cer\n0,5,1.0,0.9,0.5,0.3\n1,10,0.7,0.6,0.4,0.2\n"
                   "2,15,0.5,0.65,0.45,0.25\n")
    steps = [[s // 6, s, 1.0 / s, 1] for s in range(1, 16)]
    folder = plots.training_plots(csv, steps, ["val_loss", "val_wer", "val_cer"], best_step=10,
                                  folder=tmp_path / "plots")
    assert sorted(p.name for p in folder.iterdir()) == ["loss.png", "val_metrics.png"]
    for path in folder.iterdir():
        assert_png(path)


def test_confusion_matrix_png(tmp_path):
    path = plots.confusion_matrix([[5, 1], [2, 7]], ["negative", "positive"], tmp_path / "cm.png", "test")
    assert_png(path)
    many = [[int(i == j) * 3 + 1 for j in range(40)] for i in range(40)]  # no cell counts past 30 labels
    assert_png(plots.confusion_matrix(many, [f"L{i}" for i in range(40)], tmp_path / "big.png", "40 labels"))


def test_track_is_the_bare_iterable_when_stderr_is_not_a_terminal(capsys):
    items = [1, 2, 3]
    assert progress.track(items, desc="x") is items
    assert progress.format_seconds(5) == "5 s" and progress.format_seconds(125) == "2 min 05 s"
    assert math.isnan(progress.TrainingProgress(False).epoch_loss(0))

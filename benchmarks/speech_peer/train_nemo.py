#!/usr/bin/env python
"""The NeMo peer of benchmarks/bench_speech_to_text.py: NeMo's own EncDecCTCModel trained on the CPU.

Runs inside the NeMo virtual environment (``benchmarks/speech_peer/setup_nemo_venv.sh``), never in tao's::

    benchmarks/.nemo-venv/bin/python benchmarks/speech_peer/train_nemo.py \\
        --train-manifest W/fsdd16k/train_manifest.json --test-manifest W/fsdd16k/test_manifest.json \\
        --epochs 20 --channel-scale 0.25 --result W/nemo.json

The model is NeMo's QuartzNet 5x5 recipe written here as an OmegaConf config (``nemo_config``): the block
table of NeMo's QuartzNet 5x5 config (every ``filters`` times ``--channel-scale``), the character labels,
AudioToMelSpectrogramPreprocessor with its defaults, SpecAugment with frequency and time masks, novograd
with cosine annealing and warm-up. It trains with Lightning on the CPU (2 torch threads, no checkpoints,
no loggers, exp_manager not used), validating on the test manifest after every epoch as tao does, then
transcribes the test manifest with ``model.transcribe`` and scores it with NeMo's ``word_error_rate``.

Timing (``LoopTimer``) measures the same window as tao's MetricsLog callback: from the start of an epoch's
first training batch to the start of that epoch's validation, summed over the epochs (data loading,
feature extraction, SpecAugment and the optimizer included; validation, model build and transcription
excluded). Audio seconds are counted from the lengths of the batches actually trained on.

Writes ``--result`` (JSON): train_loop_seconds, audio_seconds_per_epoch, train_audio_seconds_per_sec,
test_wer, epochs, params, the resolved block table and the versions used.
"""

from __future__ import annotations

import os

# before torch is imported: the benchmark gives every system 2 threads
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]

# QuartzNet 5x5 (NeMo's quartznet 5x5 config: C1, five B blocks of 5 repeats, C2, C3; the decoder is C4).
# From NVIDIA/NeMo examples/asr/experimental/configs/quartznet5x5.yaml (its last version, commit d46374e);
# quartznet_15x5.yaml is the same table with each B block three times. (filters, repeat, kernel, stride,
# dilation, residual, separable)
QUARTZNET_5X5 = [
    (256, 1, 33, 2, 1, False, True),
    (256, 5, 33, 1, 1, True, True),
    (256, 5, 39, 1, 1, True, True),
    (512, 5, 51, 1, 1, True, True),
    (512, 5, 63, 1, 1, True, True),
    (512, 5, 75, 1, 1, True, True),
    (512, 1, 87, 1, 2, False, True),
    (1024, 1, 1, 1, 1, False, False),
]


def scaled(filters: int, scale: float) -> int:
    """Channels times ``scale``, rounded to a multiple of 8, at least 8 (as tao's model.encoder.channel_scale)."""
    return max(8, round(filters * scale / 8.0) * 8)


def block_table(scale: float) -> List[Dict[str, Any]]:
    """NeMo's ``jasper:`` list for ConvASREncoder."""
    return [{"filters": scaled(f, scale), "repeat": r, "kernel": [k], "stride": [s], "dilation": [d],
             "dropout": 0.0, "residual": res, "separable": sep}
            for f, r, k, s, d, res, sep in QUARTZNET_5X5]


def nemo_config(args) -> Dict[str, Any]:
    """The EncDecCTCModel config (a plain dict, turned into OmegaConf by ``main``)."""
    blocks = block_table(args.channel_scale)
    data = {"sample_rate": 16000, "labels": LABELS, "batch_size": args.batch_size, "num_workers": args.num_workers,
            "pin_memory": False, "trim_silence": False}
    return {
        "sample_rate": 16000,
        "labels": LABELS,
        "train_ds": {**data, "manifest_filepath": str(args.train_manifest), "shuffle": True,
                     "max_duration": 16.7, "min_duration": 0.1},
        "validation_ds": {**data, "manifest_filepath": str(args.test_manifest), "shuffle": False},
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                         "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.02,
                         "window_stride": 0.01, "window": "hann", "features": 64, "n_fft": 512,
                         "frame_splicing": 1, "dither": 1e-5},
        "spec_augment": {"_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
                         "freq_masks": 2, "freq_width": 15, "time_masks": 2, "time_width": 0.05},
        "encoder": {"_target_": "nemo.collections.asr.modules.ConvASREncoder", "feat_in": 64,
                    "activation": "relu", "conv_mask": True, "jasper": blocks},
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": blocks[-1]["filters"],
                    "num_classes": len(LABELS), "vocabulary": LABELS},
        "optim": {"name": "novograd", "lr": args.lr, "betas": [0.8, 0.5], "weight_decay": 0.001,
                  "sched": {"name": "CosineAnnealing", "warmup_ratio": args.warmup_ratio, "warmup_steps": None,
                            "min_lr": 0.0, "last_epoch": -1}},
    }


def read_manifest(path: Path) -> List[Dict[str, Any]]:
    """NeMo manifest lines; relative audio paths resolved against the manifest's folder."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            audio = Path(row["audio_filepath"])
            row["audio_filepath"] = str(audio if audio.is_absolute() else path.parent / audio)
            rows.append(row)
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-manifest", type=Path, required=True)
    p.add_argument("--test-manifest", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--channel-scale", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01, help="novograd peak lr (NeMo's QuartzNet default 0.01)")
    p.add_argument("--warmup-ratio", type=float, default=0.05, help="share of the steps spent warming up")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (0: the main process, as tao)")
    p.add_argument("--log-every-n-steps", type=int, default=10,
                   help="Lightning's; NeMo also decodes a training batch for its WER this often")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=int(os.environ["OMP_NUM_THREADS"]))
    p.add_argument("--result", type=Path, help="write the JSON result here (also printed)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    import lightning.pytorch as pl
    import torch
    from omegaconf import OmegaConf

    import nemo
    from nemo.collections.asr.metrics.wer import word_error_rate
    from nemo.collections.asr.models import EncDecCTCModel

    torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, workers=True)

    class LoopTimer(pl.Callback):
        """tao's MetricsLog window: first training batch of an epoch -> that epoch's validation start."""

        def __init__(self):
            self.seconds = 0.0
            self.audio_seconds = 0.0
            self.utterances = 0
            self.batches = 0
            self.epoch_seconds: List[float] = []
            self._t0 = None
            self._epoch_t = 0.0
            self.first_batch = self.last_batch_end = None
            self.validations: List[tuple] = []   # (start, end) of each validation after the sanity check
            self._v0 = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            now = time.perf_counter()
            if self._t0 is None:
                self._t0 = now
            if self.first_batch is None:
                self.first_batch = now

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.last_batch_end = time.perf_counter()
            _, signal_len, _, _ = batch
            self.audio_seconds += float(signal_len.sum()) / 16000.0
            self.utterances += int(signal_len.numel())
            self.batches += 1

        def _stop(self):
            if self._t0 is not None:
                window = time.perf_counter() - self._t0
                self.seconds += window
                self._epoch_t += window
                self._t0 = None

        def on_validation_start(self, trainer, module):
            self._stop()
            self._v0 = time.perf_counter()

        def on_validation_end(self, trainer, module):
            if self._v0 is not None and not trainer.sanity_checking:
                self.validations.append((self._v0, time.perf_counter()))
            self._v0 = None

        def on_train_epoch_end(self, trainer, module):
            self._stop()   # no validation in this epoch: the window ends here
            self.epoch_seconds.append(self._epoch_t)
            self._epoch_t = 0.0

    cfg = OmegaConf.create(nemo_config(args))
    timer = LoopTimer()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=args.epochs, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=args.log_every_n_steps, num_sanity_val_steps=0,
                         check_val_every_n_epoch=1, callbacks=[timer])
    model = EncDecCTCModel(cfg=cfg, trainer=trainer)
    params = sum(p.numel() for p in model.parameters())
    t_built = time.perf_counter()
    trainer.fit(model)
    t_fit = time.perf_counter()

    test = read_manifest(args.test_manifest)
    model.eval()
    hyps = model.transcribe([r["audio_filepath"] for r in test], batch_size=args.batch_size, verbose=False)
    hyps = [h.text if hasattr(h, "text") else h for h in (hyps[0] if isinstance(hyps, tuple) else hyps)]
    refs = [r["text"] for r in test]
    test_wer = word_error_rate(hypotheses=hyps, references=refs)
    test_cer = word_error_rate(hypotheses=hyps, references=refs, use_cer=True)
    t_end = time.perf_counter()

    epochs_done = len(timer.epoch_seconds)
    result = {
        "system": "nemo", "nemo_version": nemo.__version__, "torch_version": torch.__version__,
        "lightning_version": pl.__version__, "torch_threads": torch.get_num_threads(),
        "epochs": epochs_done, "params": params, "channel_scale": args.channel_scale,
        "batch_size": args.batch_size, "lr": args.lr, "warmup_ratio": args.warmup_ratio, "seed": args.seed,
        "train_utterances_per_epoch": timer.utterances / max(1, epochs_done),
        "audio_seconds_per_epoch": timer.audio_seconds / max(1, epochs_done),
        "train_loop_seconds": timer.seconds,
        "train_audio_seconds_per_sec": timer.audio_seconds / timer.seconds,
        "train_samples_per_sec": timer.utterances / timer.seconds,
        "epoch_seconds": [round(s, 3) for s in timer.epoch_seconds],
        # first batch start -> last batch end, less the validations inside that span
        "train_span_seconds": (timer.last_batch_end - timer.first_batch)
        - sum(e - s for s, e in timer.validations if e <= timer.last_batch_end),
        "validation_seconds": sum(e - s for s, e in timer.validations),
        "steps": trainer.global_step,
        "test_wer": test_wer, "test_cer": test_cer, "test_utterances": len(test),
        "test_examples": [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:5]],
        "build_seconds": t_built - t_start, "fit_seconds": t_fit - t_built, "transcribe_seconds": t_end - t_fit,
        "block_table": [dict(b) for b in cfg.encoder.jasper],
        "config": OmegaConf.to_container(cfg),
    }
    text = json.dumps(result, indent=2, default=str)
    if args.result:
        args.result.parent.mkdir(parents=True, exist_ok=True)
        args.result.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

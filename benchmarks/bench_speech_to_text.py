#!/usr/bin/env python
"""Benchmark `tao speech_to_text` against NVIDIA NeMo's own EncDecCTCModel on FSDD (CPU).

    benchmarks/speech_peer/setup_nemo_venv.sh          # once: NeMo 3.0.0 in benchmarks/.nemo-venv
    python benchmarks/bench_speech_to_text.py [--epochs 20] [--channel-scale 0.25] [--runs N] [--out DIR]
    python benchmarks/bench_speech_to_text.py --fsdd-goal

Both systems train on the same 16 kHz FSDD manifests, written once by ``tao speech_to_text dataset_convert``
(2,700 train clips, 300 test clips, the standard split), with the same QuartzNet 5x5 block table at the same
``--channel-scale``, batch 32, the same epochs, tao's default recipe (novograd, betas (0.8, 0.5), weight decay
0.001, cosine annealing with warm-up, the same lr) and 2 torch threads, each in a fresh process:

- **tao**: ``tao speech_to_text train`` through the real CLI, then ``tao speech_to_text evaluate`` on the test
  manifest (status.json ``test_wer``). Throughput: ``train_audio_seconds_per_sec`` of metrics.csv's last row.
  FSDD has no dev split, so both validate on the test clips; tao therefore archives its last weights
  (``trainer.save_best_model=false``), as NeMo's model holds after ``fit``, not the epoch best on the test set.
- **NeMo**: ``benchmarks/speech_peer/train_nemo.py`` run by the NeMo venv's python: ``EncDecCTCModel`` from an
  OmegaConf config written in code, Lightning on the CPU, then ``transcribe`` + NeMo's ``word_error_rate``.
  Its timing window is tao's (first training batch of an epoch -> that epoch's validation, summed).

Throughput is seconds of audio trained per second of training-loop wall time; the whole train processes'
wall times are reported too. Targets (issue 10): tao >= 2x NeMo's throughput; tao's test WER <= NeMo's + 0.01.
Before anything runs, the script checks that tao's spec defaults (features, SpecAugment, optimizer, schedule,
durations) equal the peer's config, so that a changed default cannot make the comparison unfair unnoticed.

``--fsdd-goal`` instead trains the shipped ``specs/speech_to_text/train_fsdd.yaml`` (last weights, as above) and
evaluates it: goals train wall time <= 15 min and test WER <= 0.05. ``--train-samples N`` trains both on N clips spread evenly over
the training manifest (a quick check: figures then mean nothing). Writes <out>/bench_speech_to_text.json and
.md (``--fsdd-goal``: bench_speech_to_text_fsdd_goal.*); work files go to <out>/work_speech_to_text/.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_common import (DEFAULT_OUT, OFFLINE_ENV, REPO, bench_env, contended, die, finish_results, fmt,
                          header_lines, loadavg, log, median, prepare_workdir, read_status, result_header,
                          run_logged, run_tao, verdict)

TASK = "speech_to_text"
STEM = "bench_speech_to_text"
WORK = "work_speech_to_text"
FSDD = Path(os.environ.get("TAO_BENCH_DATASETS", "/work/shared/datasets")) / "fsdd"
NEMO_VENV = REPO / "benchmarks" / ".nemo-venv"
PEER_SCRIPT = REPO / "benchmarks" / "speech_peer" / "train_nemo.py"
FSDD_SPEC = REPO / "specs" / "speech_to_text" / "train_fsdd.yaml"
ARCH = "quartznet_5x5"
TARGET_SPEEDUP = 2.0
WER_MARGIN = 0.01
FSDD_GOAL_SECONDS = 15 * 60
FSDD_GOAL_WER = 0.05
FSDD_CLIPS = {"train": 2700, "test": 300}
# FSDD has no dev split, so both systems validate on the test clips: tao must then archive its last weights,
# as NeMo's model after fit() holds them, not the epoch that scored best on the test set.
LAST_WEIGHTS = ["trainer.save_best_model=false"]


# ============================================================================ the peer's config vs tao's defaults

def peer_module():
    """benchmarks/speech_peer/train_nemo.py as a module (it imports nothing heavy at its top)."""
    spec = importlib.util.spec_from_file_location("train_nemo", PEER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tao_defaults() -> Any:
    """tao's train spec with every default (what `tao speech_to_text train` uses unless overridden)."""
    from tao_launcher.registry import TASKS

    return TASKS[TASK].subtasks["train"].schema()()


def check_same_recipe(args) -> Dict[str, Any]:
    """Stop when a tao default or tao's scaled QuartzNet 5x5 table differs from the peer's config; returns the
    settings both use."""
    spec = tao_defaults()
    peer = peer_module().nemo_config(argparse.Namespace(
        channel_scale=args.channel_scale, batch_size=32, num_workers=0, lr=args.lr, warmup_ratio=args.warmup_ratio,
        train_manifest="-", test_manifest="-"))
    m, o = spec.model, spec.optim
    pairs = {
        "labels": (list(m.labels), peer["labels"]),
        "sample_rate": (m.sample_rate, peer["sample_rate"]),
        **{f"preprocessor.{k}": (getattr(m.preprocessor, k), peer["preprocessor"][k])
           for k in ("features", "window_size", "window_stride", "n_fft", "normalize", "dither")},
        **{f"spec_augment.{k}": (getattr(m.spec_augment, k), peer["spec_augment"][k])
           for k in ("freq_masks", "freq_width", "time_masks", "time_width")},
        "optim.betas": (list(o.betas), peer["optim"]["betas"]),
        "optim.weight_decay": (o.weight_decay, peer["optim"]["weight_decay"]),
        "optim.sched.name": (o.sched.name, peer["optim"]["sched"]["name"]),
        "optim.sched.min_lr": (o.sched.min_lr, peer["optim"]["sched"]["min_lr"]),
        "training_ds.max_duration": (spec.training_ds.max_duration, peer["train_ds"]["max_duration"]),
        "training_ds.min_duration": (spec.training_ds.min_duration, peer["train_ds"]["min_duration"]),
        "trainer.log_every_n_steps": (spec.trainer.log_every_n_steps, 10),
        "trainer.accumulate_grad_batches": (spec.trainer.accumulate_grad_batches, 1),
        "trainer.gradient_clip_val": (spec.trainer.gradient_clip_val, 0.0),
        "trainer.precision": (spec.trainer.precision, "32"),
    }
    from tao_launcher.asr.blocks import build_blocks

    keys = ("filters", "repeat", "kernel", "stride", "dilation", "dropout", "residual", "separable")
    table = lambda blocks: [{k: b.get(k, False) for k in keys} for b in blocks]  # noqa: E731
    pairs["encoder blocks"] = (table(build_blocks(ARCH, args.channel_scale)), table(peer["encoder"]["jasper"]))
    differ = {k: v for k, v in pairs.items() if v[0] != v[1]}
    if differ:
        die("tao's speech_to_text defaults no longer match the NeMo peer's config (tao, peer): "
            + "; ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in differ.items())
            + f": update nemo_config() in {PEER_SCRIPT.relative_to(REPO)} (or pass the value to both systems)")
    return {k: v[0] for k, v in pairs.items()}


# ============================================================================ data

def convert_fsdd(source: Path, work: Path, env) -> Dict[str, Any]:
    """The 16 kHz manifests both systems train on, written once by tao's dataset_convert."""
    if not (source / "recordings").is_dir():
        die(f"{source}/recordings not found: pass --fsdd DIR (the Free Spoken Digit Dataset folder)")
    target = work / "fsdd16k"
    process = run_tao(TASK, ["dataset_convert", "-r", str(work / "convert"), "dataset_name=fsdd",
                             f"source_data_dir={source}", f"target_data_dir={target}"],
                      env, work / "convert.log", "tao dataset_convert")
    metrics = read_status(work / "convert")["metrics"]
    manifests = {split: target / f"{split}_manifest.json" for split in ("train", "test")}
    for split, path in manifests.items():
        rows = read_manifest(path)
        if len(rows) != FSDD_CLIPS[split]:
            die(f"{path} has {len(rows)} clips, FSDD's standard {split} split has {FSDD_CLIPS[split]}: "
                f"is {source} the whole dataset?")
    return {"target": str(target), "train": manifests["train"], "test": manifests["test"], "metrics": metrics,
            "process": process}


def read_manifest(path: Path) -> List[Dict[str, Any]]:
    """NeMo manifest (JSON lines {audio_filepath, duration, text}); relative paths from the manifest's folder."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = Path(row["audio_filepath"])
            row["audio_filepath"] = str(audio if audio.is_absolute() else (path.parent / audio).resolve())
            row["duration"] = float(row["duration"])
        except (ValueError, KeyError, TypeError) as err:
            die(f"{path}:{number} is not a manifest line ({err}): rerun tao speech_to_text dataset_convert")
        rows.append(row)
    return rows


def cut_manifest(path: Path, n: int, dest: Path) -> Path:
    """``n`` clips spread evenly over ``path`` (every digit and speaker, not the first few), absolute paths."""
    rows = read_manifest(path)
    if n < len(rows):
        rows = [rows[i * len(rows) // n] for i in range(n)]
    dest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return dest


def trained_audio(path: Path, recipe: Dict[str, Any]) -> Dict[str, float]:
    """Clips and seconds of audio per epoch after the duration filter both systems apply."""
    lo, hi = recipe["training_ds.min_duration"], recipe["training_ds.max_duration"]
    kept = [r["duration"] for r in read_manifest(path) if lo <= r["duration"] <= hi]
    return {"clips": len(kept), "audio_seconds": sum(kept), "mean_duration": sum(kept) / max(1, len(kept))}


# ============================================================================ the two systems

def nemo_python(venv: Path) -> Path:
    exe = venv / "bin" / "python"
    if not exe.exists():
        die(f"{exe} not found: run benchmarks/speech_peer/setup_nemo_venv.sh {venv} first (or pass --nemo-venv)")
    return exe


def run_nemo(args, train: Path, test: Path, work: Path, tag: str, seed: int, env) -> Dict[str, Any]:
    result = work / f"{tag}-nemo.json"
    cmd = [str(nemo_python(args.nemo_venv)), str(PEER_SCRIPT), "--train-manifest", str(train),
           "--test-manifest", str(test), "--epochs", str(args.epochs), "--channel-scale", str(args.channel_scale),
           "--batch-size", "32", "--lr", str(args.lr), "--warmup-ratio", str(args.warmup_ratio),
           "--seed", str(seed), "--threads", str(args.threads), "--num-workers", str(args.nemo_workers),
           "--result", str(result)]
    process = run_logged(cmd, env, work / f"{tag}-nemo.log", "the NeMo peer")
    return {**json.loads(result.read_text()), "process": process}


def run_tao_system(args, train: Path, test: Path, work: Path, tag: str, seed: int, audio: Dict[str, float],
                   env) -> Dict[str, Any]:
    folder = work / f"{tag}-tao"
    train_process = run_tao(TASK, [
        "train", "-r", str(folder), f"model.arch={ARCH}", f"model.encoder.channel_scale={args.channel_scale}",
        f"training_ds.manifest_filepath={train}", f"validation_ds.manifest_filepath={test}",
        "training_ds.batch_size=32", f"trainer.max_epochs={args.epochs}", "optim.name=novograd",
        f"optim.lr={args.lr}", f"optim.sched.warmup_ratio={args.warmup_ratio}", f"trainer.seed={seed}",
        *LAST_WEIGHTS, "trainer.enable_progress_bar=false", *args.tao_override],
        env, work / f"{folder.name}.log", "tao train")
    metrics = loop_metrics(folder)
    evaluation = evaluate_tao(folder, test, work, tag, env)
    return {**throughput(metrics, audio, args.epochs), "test_wer": evaluation["metrics"]["test_wer"],
            "test_cer": evaluation["metrics"].get("test_cer"), "train_metrics": metrics,
            "train_process": train_process, "eval_process": evaluation["process"]}


def evaluate_tao(folder: Path, test: Path, work: Path, tag: str, env) -> Dict[str, Any]:
    archive = folder / "checkpoints" / "trained-model.tao"
    process = run_tao(TASK, ["evaluate", "-r", str(work / f"{tag}-tao-eval"), "-m", str(archive),
                             f"test_ds.manifest_filepath={test}"], env, work / f"{tag}-tao-eval.log", "tao evaluate")
    return {"metrics": read_status(work / f"{tag}-tao-eval")["metrics"], "process": process}


def loop_metrics(folder: Path) -> Dict[str, Any]:
    """status.json's metrics, with the training-loop figures of metrics.csv's last row: status.json holds the
    best validation's row, and the throughput there is cumulative only up to that validation."""
    metrics = dict(read_status(folder)["metrics"])
    csv_file = folder / "metrics.csv"
    if csv_file.is_file():
        with open(csv_file, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        for key in ("train_audio_seconds_per_sec", "train_samples_per_sec", "epoch", "step"):
            if rows and rows[-1].get(key):
                metrics[f"last_{key}" if key in ("epoch", "step") else key] = float(rows[-1][key])
    return metrics


def throughput(metrics: Dict[str, Any], audio: Dict[str, float], epochs: int) -> Dict[str, Any]:
    """tao's audio seconds a second (status.json), or its utterances a second times the mean clip duration."""
    if metrics.get("train_audio_seconds_per_sec"):
        rate, source = float(metrics["train_audio_seconds_per_sec"]), "train_audio_seconds_per_sec"
    elif metrics.get("train_samples_per_sec"):
        rate = float(metrics["train_samples_per_sec"]) * audio["mean_duration"]
        source = "train_samples_per_sec x mean clip duration"
    else:
        die(f"tao's status.json metrics have neither train_audio_seconds_per_sec nor train_samples_per_sec: "
            f"{sorted(metrics)}")
    return {"train_audio_seconds_per_sec": rate, "throughput_source": source,
            "train_loop_seconds": audio["audio_seconds"] * epochs / rate}


# ============================================================================ comparison mode

def run_comparison(args, work: Path, env, res: Dict[str, Any]) -> None:
    recipe = check_same_recipe(args)
    res["recipe"] = recipe
    data = convert_fsdd(args.fsdd, work, env)
    res["convert"] = {k: v for k, v in data.items() if k not in ("train", "test")}
    train, test = data["train"], data["test"]
    if args.train_samples:
        train = cut_manifest(train, args.train_samples, work / f"train_{args.train_samples}.json")
    audio = trained_audio(train, recipe)
    res["train_data"] = {"manifest": str(train), "test_manifest": str(test), **audio}
    log(f"train: {audio['clips']} clips, {audio['audio_seconds']:.0f} s of audio per epoch; test: {test}")
    runs = []
    for run in range(1, args.runs + 1):
        seed = args.seed + run - 1
        order = ["tao", "nemo"] if run % 2 else ["nemo", "tao"]
        figures: Dict[str, Any] = {}
        for system in order:
            if system == "nemo" and args.skip_peer or system == "tao" and args.skip_tao:
                continue
            log(f"run {run}/{args.runs} seed {seed}: {system}, {args.epochs} epoch(s)")
            if system == "nemo":
                figures["nemo"] = run_nemo(args, train, test, work, f"run{run}", seed, env)
            else:
                figures["tao"] = run_tao_system(args, train, test, work, f"run{run}", seed, audio, env)
            f = figures[system]
            process = f["process"] if system == "nemo" else f["train_process"]
            log(f"  {system}: {f['train_audio_seconds_per_sec']:.1f} audio s/s (loop {f['train_loop_seconds']:.0f} s, "
                f"process {process['wall_seconds']:.0f} s), test WER {f['test_wer']:.4f}")
        runs.append({"run": run, "seed": seed, "order": order, **figures})
    res["runs"] = runs


def summarize(res: Dict[str, Any]) -> None:
    if res.get("mode") == "fsdd_goal":
        g = res["goal"]
        res["summary"] = {"targets_met": {"wall_time": g["train_process"]["wall_seconds"] <= FSDD_GOAL_SECONDS,
                                          "test_wer": g["test_wer"] <= FSDD_GOAL_WER},
                          "contended": contended(g["train_process"])}
        return
    runs = res["runs"]
    s: Dict[str, Any] = {}
    for system in ("tao", "nemo"):
        done = [r[system] for r in runs if system in r]
        if not done:
            continue
        process = [(d["process"] if system == "nemo" else d["train_process"]) for d in done]
        s[system] = {"throughput": median([d["train_audio_seconds_per_sec"] for d in done]),
                     "loop_seconds": median([d["train_loop_seconds"] for d in done]),
                     "process_seconds": median([p["wall_seconds"] for p in process]),
                     "test_wer": median([d["test_wer"] for d in done])}
    if "tao" in s and "nemo" in s:
        s["speedup"] = s["tao"]["throughput"] / s["nemo"]["throughput"]
        s["targets_met"] = {"throughput": s["speedup"] >= TARGET_SPEEDUP,
                            "test_wer": s["tao"]["test_wer"] <= s["nemo"]["test_wer"] + WER_MARGIN}
    s["contended_runs"] = [r["run"] for r in runs
                           if any(contended(r[k]["process"] if k == "nemo" else r[k]["train_process"])
                                  for k in ("tao", "nemo") if k in r)]
    res["summary"] = s


def markdown(res: Dict[str, Any]) -> str:
    lines = header_lines("tao speech_to_text vs NVIDIA NeMo (EncDecCTCModel)", res)
    a = res["args"]
    if res.get("nemo_version"):
        lines += [f"NeMo {res['nemo_version']} in {a['nemo_venv']}", ""]
    if res.get("mode") == "fsdd_goal":
        g, s = res["goal"], res["summary"]
        lines += [f"### FSDD from scratch: `{g['spec']}` -> {FSDD_CLIPS['test']} test clips", "",
                  "| figure | tao | goal | |", "|---|---|---|---|",
                  f"| train process, wall s | {fmt(g['train_process']['wall_seconds'])} | <= {FSDD_GOAL_SECONDS} | "
                  f"{verdict(s['targets_met']['wall_time'])} |",
                  f"| test WER | {fmt(g['test_wer'], 4)} | <= {FSDD_GOAL_WER} | {verdict(s['targets_met']['test_wer'])} |",
                  f"| test CER | {fmt(g.get('test_cer'), 4)} | | |",
                  f"| training loop, audio s / s | {fmt(g.get('train_audio_seconds_per_sec'))} | | |", ""]
        if s["contended"]:
            lines += ["The training was measured while other processes used the CPU: its time is not comparable.", ""]
        return "\n".join(lines) + "\n"
    s, t = res["summary"], res["train_data"]
    lines += [f"### FSDD 16 kHz: train ({t['clips']} clips, {fmt(t['audio_seconds'])} s of audio an epoch) -> "
              f"test ({FSDD_CLIPS['test']} clips); {ARCH} x {a['channel_scale']}, batch 32, {a['epochs']} epoch(s), "
              f"lr {a['lr']}, medians of {a['runs']} run(s)", "",
              "| figure | tao | NeMo | target | |", "|---|---|---|---|---|"]
    tao, nemo = s.get("tao", {}), s.get("nemo", {})
    met = s.get("targets_met", {})
    speed = (f"{verdict(met['throughput'])} ({fmt(s['speedup'], 2)}x)" if met else "")
    lines += [f"| training loop, audio s / wall s | {fmt(tao.get('throughput'))} | {fmt(nemo.get('throughput'))} | "
              f"tao >= {TARGET_SPEEDUP:g}x | {speed} |",
              f"| test WER | {fmt(tao.get('test_wer'), 4)} | {fmt(nemo.get('test_wer'), 4)} | tao <= NeMo + "
              f"{WER_MARGIN} | {verdict(met['test_wer']) if met else ''} |",
              f"| training loop, s | {fmt(tao.get('loop_seconds'))} | {fmt(nemo.get('loop_seconds'))} | | |",
              f"| train process, wall s | {fmt(tao.get('process_seconds'))} | {fmt(nemo.get('process_seconds'))} | | "
              + (f"{fmt(nemo['process_seconds'] / tao['process_seconds'], 2)}x" if tao and nemo else "") + " |", ""]
    params = {k: r[k].get("params") for r in res["runs"] for k in ("nemo",) if k in r}
    if params:
        lines += [f"NeMo model: {params['nemo']:,} parameters.", ""]
    if s["contended_runs"]:
        lines += [f"Runs {s['contended_runs']} were measured while other processes used the CPU: their times are "
                  f"not comparable.", ""]
    if a.get("nemo_workers"):
        lines += [f"NeMo loaded its audio in {a['nemo_workers']} DataLoader worker process(es); tao in its main "
                  f"process.", ""]
    if a.get("train_samples"):
        lines += ["Cut data (--train-samples): a check of the script; the figures mean nothing.", ""]
    return "\n".join(lines) + "\n"


# ============================================================================ FSDD goal mode

def run_fsdd_goal(args, work: Path, env, res: Dict[str, Any]) -> None:
    if not FSDD_SPEC.is_file():
        die(f"{FSDD_SPEC} not found: the FSDD goal trains the shipped spec")
    data = convert_fsdd(args.fsdd, work, env)
    res["convert"] = {k: v for k, v in data.items() if k not in ("train", "test")}
    folder = work / "fsdd-goal-tao"
    log(f"tao speech_to_text train -e {FSDD_SPEC.relative_to(REPO)}")
    train_process = run_tao(TASK, ["train", "-e", str(FSDD_SPEC), "-r", str(folder),
                                   f"training_ds.manifest_filepath={data['train']}",
                                   f"validation_ds.manifest_filepath={data['test']}",
                                   *LAST_WEIGHTS, "trainer.enable_progress_bar=false", *args.tao_override],
                            env, work / "fsdd-goal-tao.log", "tao train")
    metrics = loop_metrics(folder)
    evaluation = evaluate_tao(folder, data["test"], work, "fsdd-goal", env)
    agreement = infer_agreement(folder, data["test"], work, env)
    res["goal"] = {"spec": str(FSDD_SPEC.relative_to(REPO)), "train_process": train_process,
                   "eval_process": evaluation["process"], "train_metrics": metrics,
                   "test_wer": evaluation["metrics"]["test_wer"], "test_cer": evaluation["metrics"].get("test_cer"),
                   "train_audio_seconds_per_sec": metrics.get("train_audio_seconds_per_sec"), **agreement}
    log(f"  train process {train_process['wall_seconds']:.0f} s, test WER {res['goal']['test_wer']:.4f}, infer and "
        f"infer_onnx agree on {agreement['infer_onnx_agree']}/{agreement['transcripts']} transcripts")


def infer_agreement(folder: Path, test: Path, work: Path, env) -> Dict[str, Any]:
    """infer (torch) and infer_onnx (the .riva export) on every test clip: how many transcripts are the same."""
    archive = folder / "checkpoints" / "trained-model.tao"
    run_tao(TASK, ["export", "-r", str(work / "fsdd-goal-export"), "-m", str(archive)], env,
            work / "fsdd-goal-export.log", "tao export")
    rows = {}
    for subtask, model in (("infer", archive), ("infer_onnx", work / "fsdd-goal-export" / "exported-model.riva")):
        run_tao(TASK, [subtask, "-r", str(work / f"fsdd-goal-{subtask}"), "-m", str(model), f"input_manifest={test}"],
                env, work / f"fsdd-goal-{subtask}.log", f"tao {subtask}")
        rows[subtask] = json.loads((work / f"fsdd-goal-{subtask}" / "infer_results.json").read_text())
    same = sum(a["transcript"] == b["transcript"] for a, b in zip(rows["infer"], rows["infer_onnx"]))
    return {"transcripts": len(rows["infer"]), "infer_onnx_agree": same}


# ============================================================================ main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=20, help="training epochs of both systems (default 20)")
    p.add_argument("--channel-scale", type=float, default=0.25, help="QuartzNet 5x5 channel scale (default 0.25)")
    p.add_argument("--lr", type=float, default=None, help="novograd peak lr of both (default: tao's optim.lr)")
    p.add_argument("--runs", type=int, default=1, help="runs; medians are reported (default 1)")
    p.add_argument("--seed", type=int, default=42, help="seed of run 1; run k uses seed+k-1 (default 42)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of both systems (OMP_NUM_THREADS; default 2)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default benchmarks/out/)")
    p.add_argument("--fsdd", type=Path, default=FSDD, help="the FSDD folder (default %(default)s)")
    p.add_argument("--nemo-venv", type=Path, default=NEMO_VENV,
                   help="the NeMo virtual environment (default benchmarks/.nemo-venv)")
    p.add_argument("--nemo-workers", type=int, default=0,
                   help="NeMo's DataLoader workers (default 0, as tao: the main process; experiments only)")
    p.add_argument("--train-samples", type=int, help="train on N clips spread over the training set (a quick check)")
    p.add_argument("--skip-peer", action="store_true", help="run tao only")
    p.add_argument("--skip-tao", action="store_true", help="run NeMo only")
    p.add_argument("--fsdd-goal", action="store_true",
                   help="train specs/speech_to_text/train_fsdd.yaml and evaluate it (goals: <= 15 min, WER <= 0.05)")
    p.add_argument("--tao-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra spec override for tao train (experiments only; reported figures use none)")
    return p.parse_args(argv)


def nemo_version(venv: Path) -> Optional[str]:
    """The NeMo the peer runs, read from the venv's package metadata (no import of NeMo here)."""
    try:
        return subprocess.run([str(nemo_python(venv)), "-c", "import importlib.metadata as m; "
                               "print(m.version('nemo-toolkit'))"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    if args.runs < 1 or args.epochs < 1:
        die("--runs and --epochs must be at least 1")
    if args.skip_peer and args.skip_tao:
        die("--skip-peer and --skip-tao together leave nothing to run")
    if args.train_samples is not None and args.train_samples < 1:
        die("--train-samples must be at least 1")
    spec = tao_defaults()
    args.lr = spec.optim.lr if args.lr is None else args.lr
    args.warmup_ratio = spec.optim.sched.warmup_ratio
    args.fsdd, args.nemo_venv = args.fsdd.resolve(), args.nemo_venv.resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stem = STEM + ("_fsdd_goal" if args.fsdd_goal else "")
    work = prepare_workdir(out, WORK + ("_fsdd_goal" if args.fsdd_goal else ""))
    env = {**bench_env(), "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    res: Dict[str, Any] = {**result_header(__file__, argv, args, ()),
                           "mode": "fsdd_goal" if args.fsdd_goal else "comparison"}
    if not args.fsdd_goal and not args.skip_peer:
        res["nemo_version"] = nemo_version(args.nemo_venv)
    log(f"machine: {res['machine'].get('cpu_model')}, {res['machine']['cpu_count']} cores; load {loadavg()}")
    if args.fsdd_goal:
        run_fsdd_goal(args, work, env, res)
    else:
        run_comparison(args, work, env, res)
    return finish_results(out, stem, res, summarize, markdown)


if __name__ == "__main__":
    sys.exit(main())

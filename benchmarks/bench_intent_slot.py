#!/usr/bin/env python
"""Benchmark tao's joint intent and slot model against two Hugging Face Trainer models (CPU).

    python benchmarks/bench_intent_slot.py [--only atis|snips] [--epochs 3] [--runs N] [--out DIR]

For each dataset (ATIS, SNIPS; train -> dev): ``tao intent_slot_classification`` dataset_convert, train
(one encoder, two heads, --epochs epochs) and evaluate (test_ds.prefix=dev), against two peers trained with
the same budget on the same converted files: the Trainer with ``AutoModelForSequenceClassification`` for the
intents and the Trainer with ``AutoModelForTokenClassification`` for the slots (labels on first sub-tokens).
Same encoder, batch size (tao's default), epochs, seed, and tao's default optimizer settings (read from its spec schema);
each system in its own process, each keeping its last weights. Scores: intent accuracy and micro slot-span F1 (tao's own scorer for all;
UNK is never predicted by any of them, so UNK gold counts as an error everywhere). Time: the training loop
of tao (its train_samples_per_sec) against the sum of the two peers' training loops, and the same for the
whole train processes.

Targets (issue 9): tao's intent accuracy >= the intent peer's, slot F1 >= the slot peer's, training time
<= half the peers' sum; goals ATIS intent acc >= 0.96 and slot F1 >= 0.93, SNIPS >= 0.97 and >= 0.92.
``--train-samples`` / ``--dev-samples`` cut the data for a quick check of the script (figures then mean
nothing). Writes <out>/bench_intent_slot.json and .md; work files go to <out>/work_intent_slot/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from bench_common import (DEFAULT_OUT, OFFLINE_ENV, bench_env, contended, die, finish_results, fmt, header_lines,
                          loadavg, log, median, offline_encoder, peer_loop_figures, peer_setup_figures, peer_trainer,
                          prepare_workdir, read_status, result_header, run_tao, run_worker, tao_optim_defaults, verdict)

TASK = "intent_slot_classification"
STEM = "bench_intent_slot"
WORK = "work_intent_slot"
DATASETS = Path(os.environ.get("TAO_BENCH_DATASETS", "/work/shared/datasets"))
EVAL_BATCH_SIZE = 64
MAX_SEQ_LENGTH = 128
TARGET_SPEEDUP = 2.0
GOALS = {"atis": (0.96, 0.93), "snips": (0.97, 0.92)}  # intent accuracy, slot F1


# ============================================================================ data (the files tao's dataset_convert wrote)

def tao_batch_size() -> int:
    """tao's default training batch size (its train schema): every system trains with it."""
    from tao_launcher.registry import TASKS

    return TASKS[TASK].subtasks["train"].schema()().training_ds.batch_size


BATCH_SIZE = tao_batch_size()
# tao keeps its last weights, as the peers do: its validation set is dev, the test set here, so keeping the best
# epoch by val_slot_f1 would pick the model on the test set
LAST_WEIGHTS = ["trainer.save_best_model=false"]


def read_split(data_dir: Path, prefix: str, n: int | None) -> Tuple[List[List[str]], List[int], List[List[int]]]:
    """Words, intent ids, slot ids of <prefix>.tsv / <prefix>_slots.tsv (tao's reader: one format, one parser)."""
    from tao_launcher.tasks.intent_slot_classification import data

    intents, slots = labels(data_dir)
    return data.read_examples(data_dir, prefix, n or -1, intents, slots)


def labels(data_dir: Path) -> Tuple[List[str], List[str]]:
    from tao_launcher.tasks.intent_slot_classification import data

    return data.read_dict(data_dir / data.INTENTS_DICT, "intent"), data.read_dict(data_dir / data.SLOTS_DICT, "slot")


def slot_f1(gold: Sequence[Sequence[int]], pred: Sequence[Sequence[int]], slot_names: Sequence[str]) -> float:
    """Micro slot-span F1 by the conlleval rules: tao's own scorer, for every system."""
    from tao_launcher.core.metrics import span_report

    named = lambda rows: [[slot_names[i] for i in row] for row in rows]  # noqa: E731
    return span_report(named(gold), named(pred))["micro"]["f1"]


# ============================================================================ peers (subprocess workers)

def peer_worker(args) -> None:
    """One Trainer peer (--worker intent or slot) on one converted dataset; writes a JSON result."""
    t_start = time.perf_counter()
    import numpy as np
    import torch
    import transformers
    from transformers import (AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer,
                              DataCollatorForTokenClassification, DataCollatorWithPadding, set_seed)

    transformers.logging.set_verbosity_error()
    data_dir = Path(args.data_dir)
    intents, slots = labels(data_dir)
    train_x, train_i, train_s = read_split(data_dir, "train", args.train_samples)
    dev_x, dev_i, dev_s = read_split(data_dir, "dev", args.dev_samples)
    names = intents if args.worker == "intent" else slots
    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.encoder, use_fast=True)
    cls = AutoModelForSequenceClassification if args.worker == "intent" else AutoModelForTokenClassification
    model = cls.from_pretrained(args.encoder, num_labels=len(names), id2label=dict(enumerate(names)),
                                label2id={n: i for i, n in enumerate(names)})
    t_loaded = time.perf_counter()

    def encode(xs, intent_ids, slot_ids):
        enc = tokenizer(xs, is_split_into_words=True, truncation=True, max_length=MAX_SEQ_LENGTH)
        out, firsts = [], []
        for k in range(len(xs)):
            example = {key: enc[key][k] for key in enc.keys()}
            first, prev, row = {}, None, []
            for pos, w in enumerate(enc.word_ids(k)):
                if w is not None and w != prev:
                    first[w] = pos
                row.append(slot_ids[k][w] if w is not None and w != prev else -100)
                prev = w
            example["labels"] = intent_ids[k] if args.worker == "intent" else row
            out.append(example)
            firsts.append(first)
        return out, firsts

    train_ds, _ = encode(train_x, train_i, train_s)
    dev_ds, dev_first = encode(dev_x, dev_i, dev_s)
    collator = DataCollatorWithPadding(tokenizer) if args.worker == "intent" else DataCollatorForTokenClassification(tokenizer)
    peer = peer_trainer(model, tokenizer, train_ds, collator, Path(args.result).parent / f"peer-{args.worker}",
                        args.seed, BATCH_SIZE, EVAL_BATCH_SIZE, epochs=args.epochs, task=TASK)
    out = peer.trainer.train()
    model.eval()
    logits = peer.trainer.predict(dev_ds).predictions
    unk = names.index("UNK") if "UNK" in names else None
    if unk is not None:  # as tao: UNK is never predicted
        logits[..., unk] = -1e9
    best = np.argmax(logits, -1)
    if args.worker == "intent":
        result = {"intent_acc": float(np.mean(best == np.array(dev_i)))}
    else:
        outside = slots.index("O")
        pred = [[outside] * len(x) for x in dev_x]  # words cut by the truncation keep O
        for k, first in enumerate(dev_first):
            for w, pos in first.items():
                pred[k][w] = int(best[k][pos])
        result = {"slot_f1": slot_f1(dev_s, pred, slots)}
    result.update({"worker": args.worker, "seed": args.seed, "epochs": args.epochs, "utterances": len(train_x),
                   **peer_loop_figures(peer, out, len(train_x), unit="utterances"),
                   "load_seconds": t_loaded - t_start, **peer_setup_figures(peer, model),
                   "torch_threads": torch.get_num_threads()})
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))


# ============================================================================ one dataset

def run_dataset(name: str, args, work: Path, encoder: Path, env, res: Dict[str, Any]) -> None:
    source = args.datasets / name
    if not (source / "train" / "seq.in").is_file():
        die(f"{source}/train/seq.in not found: pass --datasets DIR (a folder holding atis/ and snips/)")
    data_dir = work / f"{name}-data"
    run_tao(TASK, ["dataset_convert", "-r", str(work / f"{name}-convert"), f"dataset_name={name}",
                   f"source_data_dir={source}", f"target_data_dir={data_dir}"], env, work / f"{name}-convert.log",
            "tao dataset_convert")
    convert = read_status(work / f"{name}-convert")["metrics"]
    n_train = min(args.train_samples or convert["utterances_train"], convert["utterances_train"])
    cut = ([f"training_ds.num_samples={args.train_samples}"] if args.train_samples else []) + \
          ([f"validation_ds.num_samples={args.dev_samples}"] if args.dev_samples else [])
    runs = []
    for run in range(1, args.runs + 1):
        seed = args.seed + run - 1
        log(f"{name} run {run}/{args.runs} seed {seed}: tao train + evaluate")
        folder = work / f"{name}-run{run}-tao"
        train = run_tao(TASK, ["train", "-r", str(folder), f"data_dir={data_dir}", f"trainer.max_epochs={args.epochs}",
                               f"training_ds.batch_size={BATCH_SIZE}", f"trainer.seed={seed}",
                               "trainer.enable_progress_bar=false", *LAST_WEIGHTS, *cut, *args.tao_override],
                        env, work / f"{folder.name}.log", "tao train")
        metrics = read_status(folder)["metrics"]
        evaluate = run_tao(TASK, ["evaluate", "-r", str(work / f"{name}-run{run}-eval"), "-m",
                                  str(folder / "checkpoints" / "trained-model.tao"), f"data_dir={data_dir}",
                                  "test_ds.prefix=dev"] + ([f"test_ds.num_samples={args.dev_samples}"]
                                                           if args.dev_samples else []),
                           env, work / f"{name}-run{run}-eval.log", "tao evaluate")
        tao_metrics = read_status(work / f"{name}-run{run}-eval")["metrics"]
        tao = {"intent_acc": tao_metrics["test_intent_acc"], "slot_f1": tao_metrics["test_slot_f1"],
               "loop_seconds": n_train * args.epochs / metrics["train_samples_per_sec"],
               "train_process": train, "eval_process": evaluate, "train_metrics": metrics}
        peers = {}
        for worker in ("intent", "slot"):
            log(f"{name} run {run}: peer {worker} model")
            result = work / f"{name}-run{run}-peer-{worker}.json"
            process = run_worker(__file__, worker, ["--encoder", str(encoder), "--data-dir", str(data_dir),
                                                    "--seed", str(seed), "--worker-epochs", str(args.epochs),
                                                    "--result", str(result)]
                                 + (["--train-samples", str(args.train_samples)] if args.train_samples else [])
                                 + (["--dev-samples", str(args.dev_samples)] if args.dev_samples else []),
                                 env, work / f"{result.stem}.log", f"peer {worker}")
            peers[worker] = {**json.loads(result.read_text()), "process": process}
        runs.append({"run": run, "seed": seed, "tao": tao, "peers": peers})
        log(f"  tao intent acc {tao['intent_acc']:.4f} slot F1 {tao['slot_f1']:.4f} loop {tao['loop_seconds']:.0f} s; "
            f"peers {peers['intent']['intent_acc']:.4f} / {peers['slot']['slot_f1']:.4f} loop "
            f"{peers['intent']['loop_seconds'] + peers['slot']['loop_seconds']:.0f} s")
    res[name] = {"convert": convert, "train_utterances": n_train, "runs": runs}


def summarize(res: Dict[str, Any]) -> None:
    for name in ("atis", "snips"):
        if name not in res:
            continue
        runs = res[name]["runs"]
        s = {"tao_intent_acc": median([r["tao"]["intent_acc"] for r in runs]),
             "tao_slot_f1": median([r["tao"]["slot_f1"] for r in runs]),
             "peer_intent_acc": median([r["peers"]["intent"]["intent_acc"] for r in runs]),
             "peer_slot_f1": median([r["peers"]["slot"]["slot_f1"] for r in runs]),
             "tao_loop": median([r["tao"]["loop_seconds"] for r in runs]),
             "peers_loop": median([r["peers"]["intent"]["loop_seconds"] + r["peers"]["slot"]["loop_seconds"] for r in runs]),
             "tao_process": median([r["tao"]["train_process"]["wall_seconds"] for r in runs]),
             "peers_process": median([r["peers"]["intent"]["process"]["wall_seconds"]
                                      + r["peers"]["slot"]["process"]["wall_seconds"] for r in runs]),
             "contended_runs": [r["run"] for r in runs if contended(r["tao"]["train_process"])
                                or any(contended(p["process"]) for p in r["peers"].values())]}
        goal_acc, goal_f1 = GOALS[name]
        s["targets_met"] = {"intent_acc_vs_peer": s["tao_intent_acc"] >= s["peer_intent_acc"],
                            "slot_f1_vs_peer": s["tao_slot_f1"] >= s["peer_slot_f1"],
                            "loop_time": s["tao_loop"] * TARGET_SPEEDUP <= s["peers_loop"],
                            "goal_intent_acc": s["tao_intent_acc"] >= goal_acc, "goal_slot_f1": s["tao_slot_f1"] >= goal_f1}
        res[name]["summary"] = s


def markdown(res: Dict[str, Any]) -> str:
    lines = header_lines("tao intent_slot_classification vs two Hugging Face Trainer models", res)
    a = res["args"]
    for name, title in (("atis", "ATIS"), ("snips", "SNIPS")):
        if name not in res:
            continue
        s, c = res[name]["summary"], res[name]["convert"]
        goal_acc, goal_f1 = GOALS[name]
        dev = min(a.get("dev_samples") or c.get("utterances_dev"), c.get("utterances_dev"))
        lines += [f"### {title}: train ({res[name]['train_utterances']} utterances) -> dev ({dev}), "
                  f"{a['epochs']} epoch(s), batch {BATCH_SIZE}, medians of {a['runs']} run(s)", "",
                  "| figure | tao (one joint model) | peers (intent + slot models) | target | |", "|---|---|---|---|---|",
                  f"| dev intent accuracy | {fmt(s['tao_intent_acc'], 4)} | {fmt(s['peer_intent_acc'], 4)} | tao >= peer; "
                  f"goal >= {goal_acc} | {verdict(s['targets_met']['intent_acc_vs_peer'])}; goal "
                  f"{verdict(s['targets_met']['goal_intent_acc'])} |",
                  f"| dev slot F1 (micro, spans) | {fmt(s['tao_slot_f1'], 4)} | {fmt(s['peer_slot_f1'], 4)} | tao >= peer; "
                  f"goal >= {goal_f1} | {verdict(s['targets_met']['slot_f1_vs_peer'])}; goal "
                  f"{verdict(s['targets_met']['goal_slot_f1'])} |",
                  f"| training loop, s (peers: sum) | {fmt(s['tao_loop'])} | {fmt(s['peers_loop'])} | tao <= half | "
                  f"{verdict(s['targets_met']['loop_time'])} ({fmt(s['peers_loop'] / s['tao_loop'], 2)}x) |",
                  f"| train processes, wall s (peers: sum) | {fmt(s['tao_process'])} | {fmt(s['peers_process'])} | | "
                  f"{fmt(s['peers_process'] / s['tao_process'], 2)}x |", ""]
        if c.get("unk_intents_dev") or c.get("unk_slots_dev"):
            lines += [f"Dev has {c['unk_intents_dev']} utterance(s) with an intent and {c['unk_slots_dev']} word(s) with "
                      f"a slot tag that train lacks (UNK): errors for every system.", ""]
        if s["contended_runs"]:
            lines += [f"Runs {s['contended_runs']} were measured while other processes used the CPU: their times are "
                      f"not comparable.", ""]
    if a.get("train_samples") or a.get("dev_samples"):
        lines += ["Cut data (--train-samples/--dev-samples): a check of the script; the figures mean nothing.", ""]
    return "\n".join(lines) + "\n"


# ============================================================================ main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("atis", "snips"), help="run one dataset (default: both)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs of every system (default 3)")
    p.add_argument("--runs", type=int, default=1, help="runs per dataset; medians are reported (default 1)")
    p.add_argument("--seed", type=int, default=42, help="seed of run 1; run k uses seed+k-1 (default 42)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default benchmarks/out/)")
    p.add_argument("--datasets", type=Path, default=DATASETS,
                   help="folder holding atis/ and snips/ (default %(default)s, or $TAO_BENCH_DATASETS)")
    p.add_argument("--train-samples", type=int, help="first N train utterances only (a quick check)")
    p.add_argument("--dev-samples", type=int, help="first N dev utterances only (a quick check)")
    p.add_argument("--tao-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra spec override for tao train (experiments only; reported figures use none)")
    p.add_argument("--worker", choices=("intent", "slot"), help=argparse.SUPPRESS)
    p.add_argument("--encoder", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--worker-epochs", dest="worker_epochs", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    if args.worker:
        args.epochs = args.worker_epochs
        peer_worker(args)
        return 0
    if args.runs < 1 or args.epochs < 1:
        die("--runs and --epochs must be at least 1")
    encoder = offline_encoder()
    args.datasets = args.datasets.resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = prepare_workdir(out, WORK)
    env = bench_env()
    res: Dict[str, Any] = {**result_header(__file__, argv, args, ("encoder", "data_dir", "worker_epochs", "result")),
                           "encoder": str(encoder), "tao_optim_defaults": tao_optim_defaults(TASK)}
    log(f"machine: {res['machine'].get('cpu_model')}, {res['machine']['cpu_count']} cores; load {loadavg()}")
    for name in [args.only] if args.only else ["atis", "snips"]:
        run_dataset(name, args, work, encoder, env, res)
    return finish_results(out, STEM, res, summarize, markdown)


if __name__ == "__main__":
    sys.exit(main())

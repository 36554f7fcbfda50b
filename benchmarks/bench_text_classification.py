#!/usr/bin/env python
"""Benchmark tao text_classification against its Hugging Face peers on GLUE SST-2 (CPU).

    python benchmarks/bench_text_classification.py [--runs N] [--out DIR] [--train-samples 4000]

In one run, side by side, N runs each, medians reported:

a. training   ``tao text_classification train`` (the real CLI, a subprocess) vs the Hugging Face
              ``Trainer`` on AutoModelForSequenceClassification (a subprocess of this script),
              same encoder, same first --train-samples SST-2 sentences, same optimizer settings
              (read from tao's spec schema), same seed inside a run, a new seed for every run.
              Throughput: training sentences / wall time of the training loop. Accuracy: full dev set.
b. inference  ``transformers.pipeline("text-classification")`` vs tao infer (torch) vs tao infer_onnx
              (onnxruntime) on the SST-2 dev set (872 sentences), all three on the weights of the
              model tao trained in run 1, in this process, one warm-up pass each, then N timed passes.

See benchmarks/README.md for what is measured and why the peers are configured as they are.
Writes <out>/bench_text_classification.json and .md; the tao results folders go to <out>/work/.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from bench_common import (CONTENDED, DEFAULT_OUT, OFFLINE_ENV, bench_env, contended, contention, cores_used,
                          cpu_snapshot, die, finish_results, fmt, header_lines, loadavg, log, median, offline_encoder,
                          peer_loop_figures, peer_setup_figures, peer_trainer, prepare_workdir, read_status,
                          result_header, run_tao, run_worker, tao_optim_defaults, verdict, write_results)
from tao_launcher.tasks.text_classification.data import read_examples  # the same reader tao trains from

DEFAULT_SST2 = Path(os.environ.get("SST2_DIR", "/work/shared/datasets/sst2"))
STEM = "bench_text_classification"
TASK = "text_classification"
BATCH_SIZE = 32
MAX_SEQ_LENGTH = 128
EVAL_BATCH_SIZE = 64  # tao's validation_ds.batch_size default; only affects speed of the accuracy pass

# targets from the brief
TARGET_TRAIN_SPEEDUP = 1.5
TARGET_INFER_SPEEDUP = 1.2
TARGET_ONNX_SPEEDUP = 2.0
TARGET_MAX_SCORE_DIFF = 1e-4
# ============================================================================ peer training (subprocess)

def peer_train(args) -> None:
    """The Hugging Face Trainer peer; runs in its own process (like tao) and writes a JSON result."""
    import numpy as np
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed

    transformers.logging.set_verbosity_error()
    encoder = Path(args.encoder)
    train_x, train_y = read_examples(Path(args.train_file), args.train_samples)
    dev_x, dev_y = read_examples(Path(args.dev_file))

    set_seed(args.seed)  # before the model: the new classification head is initialised from it
    tokenizer = AutoTokenizer.from_pretrained(str(encoder), use_fast=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(encoder), num_labels=2)

    def encode(xs, ys):
        enc = tokenizer(xs, truncation=True, max_length=MAX_SEQ_LENGTH)
        return [{**{k: enc[k][i] for k in enc.keys()}, "labels": ys[i]} for i in range(len(xs))]

    train_ds, dev_ds = encode(train_x, train_y), encode(dev_x, dev_y)
    peer = peer_trainer(model, tokenizer, train_ds, DataCollatorWithPadding(tokenizer),
                        Path(args.result).parent / f"peer-trainer-seed{args.seed}", args.seed,
                        BATCH_SIZE, EVAL_BATCH_SIZE)
    out = peer.trainer.train()
    model.eval()
    pred = peer.trainer.predict(dev_ds)
    acc = float((np.argmax(pred.predictions, -1) == np.array(dev_y)).mean())
    result = {
        "seed": args.seed, "sentences": len(train_ds), **peer_loop_figures(peer, out, len(train_ds)),
        "val_acc": acc, "dev_sentences": len(dev_ds),
        "padded_train_tokens": peer.padded["tokens"], "real_train_tokens": sum(len(e["input_ids"]) for e in train_ds),
        **peer_setup_figures(peer, model),
    }
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))


# ============================================================================ tao CLI

def tao(args_list: List[str], env, log_file: Path, what: str) -> Dict[str, float]:
    return run_tao(TASK, args_list, env, log_file, what)


# ============================================================================ padding statistics

def tao_padding_stats(train_file: Path, n: int, seed: int, encoder: Path) -> Dict[str, int]:
    """Tokens per epoch as tao batches them (its own sampler and tokenizer): padded vs real."""
    from tao_launcher.core.data import LengthBucketBatchSampler
    from tao_launcher.nlp.encoder import load_tokenizer, tokenize

    xs, _ = read_examples(train_file, n)
    ids = tokenize(load_tokenizer(encoder), xs, MAX_SEQ_LENGTH)
    lengths = [len(x) for x in ids]
    batches = list(LengthBucketBatchSampler(lengths, BATCH_SIZE, True, seed))
    return {"padded_train_tokens": sum(len(b) * max(lengths[i] for i in b) for b in batches),
            "real_train_tokens": sum(lengths)}


# ============================================================================ inference

class _Quiet:
    def __enter__(self):
        import transformers
        self.level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity(transformers.logging.CRITICAL)

    def __exit__(self, *exc):
        import transformers
        transformers.logging.set_verbosity(self.level)


def pipeline_for(net, tokenizer, label_names: List[str]):
    """A text-classification pipeline around tao's own TextClassifier (the very same module and weights).

    The tao head (an MLP on the [CLS] vector) has no Hugging Face class, so the network that read_model
    rebuilt from the archive is wrapped in a minimal PreTrainedModel whose forward returns its logits.
    """
    from transformers import PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput

    enc_config = net.encoder.config

    class TaoForSequenceClassification(PreTrainedModel):
        config_class = type(enc_config)
        base_model_prefix = "net"
        _supports_sdpa = True  # the wrapped encoder already runs with SDPA attention (tao's load_encoder)

        def __init__(self, config, inner):
            super().__init__(config)
            self.net = inner

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
            return SequenceClassifierOutput(logits=self.net(input_ids, attention_mask))

    config = copy.deepcopy(enc_config)
    config.num_labels = len(label_names)
    config.id2label = {i: n for i, n in enumerate(label_names)}
    config.label2id = {n: i for i, n in enumerate(label_names)}
    config.problem_type = "single_label_classification"
    model = TaoForSequenceClassification(config, net).eval()
    with _Quiet():  # "model ... is not supported for text-classification": it is a custom class
        pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, batch_size=BATCH_SIZE, device=-1)
    return pipe


def bench_inference(args, archive: Path, eonnx: Path, key: str, dev_file: Path, cli: Dict[str, Any]) -> Dict:
    import numpy as np
    import torch

    from tao_launcher.core.model import opened_model_archive
    from tao_launcher.nlp.encoder import load_tokenizer, tokenize
    from tao_launcher.core.inference import onnx_runner, torch_runner
    from tao_launcher.nlp.model import read_model
    from tao_launcher.tasks.text_classification import data as tc_data
    from tao_launcher.tasks.text_classification import subtasks
    from tao_launcher.tasks.text_classification.model import TextClassifier

    sentences = tc_data.read_sentences(dev_file)  # what `tao infer input_file=dev.tsv` reads
    one_time: Dict[str, float] = {}

    # tao infer's one-time costs: decrypt, then rebuild the network (subtasks.infer does exactly this)
    t0 = time.perf_counter()
    with opened_model_archive(archive, key, TASK) as folder:
        t1 = time.perf_counter()
        net, tokenizer, config = read_model(folder, TextClassifier)
        t2 = time.perf_counter()
    one_time["tao_decrypt_s"], one_time["tao_read_model_s"] = t1 - t0, t2 - t1
    # tao infer_onnx's one-time costs: decrypt, read model bytes + tokenizer, build the ORT session
    t0 = time.perf_counter()
    with opened_model_archive(eonnx, key, TASK, kinds=("eonnx", "riva")) as folder:
        t1 = time.perf_counter()
        model_bytes = (folder / "model.onnx").read_bytes()
        onnx_tokenizer = load_tokenizer(folder / "tokenizer")
        onnx_config = json.loads((folder / "model_config.json").read_text())
        t2 = time.perf_counter()
    onnx_run_batch = onnx_runner(model_bytes)
    t3 = time.perf_counter()
    one_time["onnx_decrypt_s"], one_time["onnx_read_s"], one_time["onnx_session_s"] = t1 - t0, t2 - t1, t3 - t2
    t0 = time.perf_counter()
    pipe = pipeline_for(net, tokenizer, config["label_names"])
    one_time["pipeline_build_s"] = time.perf_counter() - t0

    max_len = config["max_seq_length"]
    torch_run_batch = torch_runner(net)
    names = config["label_names"]

    def run_infer():
        probs = subtasks.batched_probabilities(torch_run_batch, tokenizer, sentences, max_len, BATCH_SIZE)
        return probs.argmax(-1), probs.max(-1), probs

    def run_onnx():
        probs = subtasks.batched_probabilities(onnx_run_batch, onnx_tokenizer, sentences,
                                               onnx_config["max_seq_length"], BATCH_SIZE)
        return probs.argmax(-1), probs.max(-1), probs

    def run_pipeline():
        out = pipe(sentences, truncation=True, max_length=max_len)
        return (np.array([names.index(o["label"]) for o in out]), np.array([o["score"] for o in out]), None)

    systems = {"pipeline": run_pipeline, "infer": run_infer, "infer_onnx": run_onnx}
    outputs: Dict[str, Any] = {}
    log("inference warm-up: one pass each")
    for name, fn in systems.items():
        t0 = time.perf_counter()
        outputs[name] = fn()
        log(f"  warm-up {name}: {len(sentences) / (time.perf_counter() - t0):.1f} sentences/s")

    passes: Dict[str, List[Dict[str, float]]] = {k: [] for k in systems}
    order = list(systems)
    for r in range(args.runs):
        for name in order[r % 3:] + order[:r % 3]:  # rotate the order: no system always runs first
            snap0, load0, c0, t0 = cpu_snapshot(), loadavg(), time.process_time(), time.perf_counter()
            result = systems[name]()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            passes[name].append({"seconds": wall, "sentences_per_sec": len(sentences) / wall,
                                 "cpu_cores_used": cpu / wall, "loadavg_before": load0,
                                 **contention(snap0, cpu_snapshot(), cpu)})
            if not np.array_equal(result[0], outputs[name][0]):
                log(f"  WARNING: {name} labels changed between passes")
        log(f"  pass {r + 1}/{args.runs}: " + ", ".join(f"{n} {passes[n][-1]['sentences_per_sec']:.1f}/s"
                                                         for n in systems))

    # agreement: tao infer vs tao infer_onnx (all 872 labels, max |score| and |probability| difference)
    li, si, pi = outputs["infer"]
    lo, so, po = outputs["infer_onnx"]
    lp, sp, _ = outputs["pipeline"]
    agreement = {
        "sentences": len(sentences),
        "infer_vs_onnx_same_label": int((li == lo).sum()),
        "infer_vs_onnx_max_abs_score_diff": float(np.abs(si - so).max()),
        "infer_vs_onnx_max_abs_prob_diff": float(np.abs(pi - po).max()),
        "infer_vs_pipeline_same_label": int((li == lp).sum()),
        "infer_vs_pipeline_max_abs_score_diff": float(np.abs(si - sp).max()),
    }
    # the CLI runs' infer_results.json must say the same as the in-process path (it is the same code)
    for sub, (labels, scores) in (("infer", (li, si)), ("infer_onnx", (lo, so))):
        rows = cli.get(f"{sub}_results")
        if rows is not None:
            cli_labels = np.array([names.index(r["label"]) for r in rows])
            cli_scores = np.array([r["score"] for r in rows])
            agreement[f"cli_{sub}_same_label_as_in_process"] = int((cli_labels == labels).sum())
            agreement[f"cli_{sub}_max_abs_score_diff_vs_in_process"] = float(np.abs(cli_scores - scores).max())
    dev_labels = np.array(read_examples(dev_file)[1])
    accuracy = {n: float((outputs[n][0] == dev_labels).mean()) for n in systems}

    # padding at inference: tao sorts by length before batching, the pipeline batches in input order
    ids = tokenize(tokenizer, sentences, max_len)
    lengths = [len(x) for x in ids]
    from tao_launcher.core.data import length_sorted_batches
    tao_padded = sum(len(b) * max(lengths[i] for i in b) for b in length_sorted_batches(lengths, BATCH_SIZE))
    in_order = [lengths[i:i + BATCH_SIZE] for i in range(0, len(lengths), BATCH_SIZE)]
    pipe_padded = sum(len(b) * max(b) for b in in_order)

    return {
        "model": str(archive), "model_config": config, "exported": str(eonnx), "sentences": len(sentences),
        "one_time_seconds": one_time, "passes": passes,
        "median_sentences_per_sec": {n: median([p["sentences_per_sec"] for p in passes[n]]) for n in systems},
        "agreement": agreement, "dev_accuracy": accuracy,
        "tokens": {"real": sum(lengths), "padded_tao": tao_padded, "padded_pipeline": pipe_padded},
        "torch_threads": torch.get_num_threads(),
    }


# ============================================================================ report

def markdown(res: Dict[str, Any]) -> str:
    lines = header_lines("tao text_classification vs Hugging Face peers", res)
    s = res.get("summary", {})
    lines += ["### Medians", "", "| benchmark | tao | peer | tao / peer | target | |", "|---|---|---|---|---|---|"]

    def speed_row(what: str, tao_sps: float, peer_sps: float, peer: str, ratio: float, target: float) -> str:
        return (f"| {what} | {fmt(tao_sps)} | {fmt(peer_sps)} ({peer}) | {fmt(ratio, 2)}x | >= {target}x | "
                f"{verdict(ratio >= target)} |")

    if "train" in s:
        t = s["train"]
        lines.append(speed_row(f"training throughput, sentences/s (train, {res['args']['train_samples']} sentences, "
                               f"1 epoch)", t["tao_sps"], t["peer_sps"], "HF Trainer", t["ratio"], TARGET_TRAIN_SPEEDUP))
        lines.append(f"| dev accuracy after training (872 sentences) | {fmt(t['tao_acc'], 4)} | {fmt(t['peer_acc'], 4)} | "
                     f"{t['tao_acc'] - t['peer_acc']:+.4f} | tao >= peer | {verdict(t['tao_acc'] >= t['peer_acc'])} |")
    if "infer" in s:
        i = s["infer"]
        lines.append(speed_row("inference tao infer (torch), sentences/s", i["infer_sps"], i["pipeline_sps"],
                               "pipeline", i["infer_ratio"], TARGET_INFER_SPEEDUP))
        lines.append(speed_row("inference tao infer_onnx (onnxruntime), sentences/s", i["onnx_sps"], i["pipeline_sps"],
                               "pipeline", i["onnx_ratio"], TARGET_ONNX_SPEEDUP))
        a = res["inference"]["agreement"]
        ok = a["infer_vs_onnx_same_label"] == a["sentences"] and a["infer_vs_onnx_max_abs_score_diff"] <= TARGET_MAX_SCORE_DIFF
        lines.append(f"| infer vs infer_onnx agreement | {a['infer_vs_onnx_same_label']}/{a['sentences']} labels, "
                     f"max abs score diff {a['infer_vs_onnx_max_abs_score_diff']:.2e} | | | all labels, <= 1e-4 | "
                     f"{verdict(ok)} |")
    lines.append("")
    if res.get("training"):
        lines += ["### Training, per run", "",
                  "| run | seed | tao sent/s | peer sent/s | tao / peer | tao val_acc | peer val_acc | "
                  "CPU cores used: tao / peer | other processes' cores during: tao / peer |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in res["training"]:
            tp, pp = r["tao"], r["peer"]
            flag = " (contended)" if contended(tp["process"]) or contended(pp["process"]) else ""
            lines.append(f"| {r['run']}{flag} | {r['seed']} | {fmt(tp['sentences_per_sec'])} | {fmt(pp['sentences_per_sec'])} | "
                         f"{fmt(tp['sentences_per_sec'] / pp['sentences_per_sec'], 2)}x | {tp['val_acc']:.4f} | "
                         f"{pp['val_acc']:.4f} | {fmt(cores_used(tp['process']), 2)} / "
                         f"{fmt(cores_used(pp['process']), 2)} | "
                         f"{fmt(tp['process'].get('other_cores'), 2)} / {fmt(pp['process'].get('other_cores'), 2)} |")
        u = res.get("summary", {}).get("train", {})
        if u.get("contended_runs"):
            lines += ["", f"Runs {u['contended_runs']} were measured while other processes used more than "
                          f"{CONTENDED} of a core on average: their throughput is not comparable."
                      + (f" Medians over the other runs {u['uncontended']['runs']}: tao {fmt(u['uncontended']['tao_sps'])}, "
                         f"peer {fmt(u['uncontended']['peer_sps'])} sentences/s, tao / peer "
                         f"{fmt(u['uncontended']['ratio'], 2)}x." if u.get("uncontended") else "")]
        r0 = res["training"][0]
        lines += ["", f"Padded tokens per training epoch (run 1): tao {r0['tao']['padding']['padded_train_tokens']}, "
                      f"peer {r0['peer']['padded_train_tokens']} (real tokens {r0['peer']['real_train_tokens']}).", ""]
    if res.get("inference"):
        inf = res["inference"]
        lines += ["### Inference, per pass (SST-2 dev, 872 sentences, batch 32)", "",
                  "| pass | pipeline sent/s | tao infer sent/s | tao infer_onnx sent/s | "
                  "other processes' cores during: pipeline / infer / infer_onnx |", "|---|---|---|---|---|"]
        for k in range(len(inf["passes"]["infer"])):
            ps = [inf["passes"][n][k] for n in ("pipeline", "infer", "infer_onnx")]
            flag = " (contended)" if any(contended(p) for p in ps) else ""
            lines.append(f"| {k + 1}{flag} | " + " | ".join(fmt(p["sentences_per_sec"]) for p in ps) + " | "
                         + " / ".join(fmt(p.get("other_cores"), 2) for p in ps) + " |")
        o = inf["one_time_seconds"]
        lines += ["", "One-time costs (s, not in the throughput): " + ", ".join(f"{k} {v:.2f}" for k, v in o.items()),
                  "", "Dev accuracy of the benchmarked model: " + ", ".join(f"{k} {v:.4f}" for k, v in inf["dev_accuracy"].items()),
                  "", f"Tokens for the dev set: real {inf['tokens']['real']}, padded by tao (length-sorted) "
                      f"{inf['tokens']['padded_tao']}, padded by the pipeline (input order) {inf['tokens']['padded_pipeline']}", ""]
        if res.get("cli"):
            c = res["cli"]
            lines += ["CLI wall time, whole process (informational): " + ", ".join(
                f"{k} {v['wall_seconds']:.1f} s" for k, v in c.items() if isinstance(v, dict) and "wall_seconds" in v), ""]
    return "\n".join(lines) + "\n"


def summarize(res: Dict[str, Any]) -> None:
    s: Dict[str, Any] = {}
    if res.get("training"):
        tr = res["training"]
        tao_sps, peer_sps = median([r["tao"]["sentences_per_sec"] for r in tr]), median([r["peer"]["sentences_per_sec"] for r in tr])
        s["train"] = {"tao_sps": tao_sps, "peer_sps": peer_sps, "ratio": tao_sps / peer_sps,
                      "median_of_per_run_ratios": median([r["tao"]["sentences_per_sec"] / r["peer"]["sentences_per_sec"] for r in tr]),
                      "tao_acc": median([r["tao"]["val_acc"] for r in tr]),
                      "peer_acc": median([r["peer"]["val_acc"] for r in tr])}
        s["train"]["targets_met"] = {"throughput": s["train"]["ratio"] >= TARGET_TRAIN_SPEEDUP,
                                     "accuracy": s["train"]["tao_acc"] >= s["train"]["peer_acc"]}
        clean = [r for r in tr if not (contended(r["tao"]["process"]) or contended(r["peer"]["process"]))]
        s["train"]["contended_runs"] = [r["run"] for r in tr if r not in clean]
        if clean and len(clean) < len(tr):
            t_c = median([r["tao"]["sentences_per_sec"] for r in clean])
            p_c = median([r["peer"]["sentences_per_sec"] for r in clean])
            s["train"]["uncontended"] = {"runs": [r["run"] for r in clean], "tao_sps": t_c, "peer_sps": p_c,
                                         "ratio": t_c / p_c}
    if res.get("inference"):
        m = res["inference"]["median_sentences_per_sec"]
        a = res["inference"]["agreement"]
        s["infer"] = {"pipeline_sps": m["pipeline"], "infer_sps": m["infer"], "onnx_sps": m["infer_onnx"],
                      "infer_ratio": m["infer"] / m["pipeline"], "onnx_ratio": m["infer_onnx"] / m["pipeline"]}
        s["infer"]["targets_met"] = {
            "infer": s["infer"]["infer_ratio"] >= TARGET_INFER_SPEEDUP,
            "infer_onnx": s["infer"]["onnx_ratio"] >= TARGET_ONNX_SPEEDUP,
            "agreement": a["infer_vs_onnx_same_label"] == a["sentences"]
            and a["infer_vs_onnx_max_abs_score_diff"] <= TARGET_MAX_SCORE_DIFF}
    res["summary"] = s


# ============================================================================ main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs per measurement; medians are reported (default 3)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default benchmarks/out/)")
    p.add_argument("--train-samples", type=int, default=4000, help="first N SST-2 training sentences (default 4000)")
    p.add_argument("--seed", type=int, default=42, help="seed of run 1; run k uses seed+k-1 (default 42)")
    p.add_argument("--sst2-dir", type=Path, default=DEFAULT_SST2,
                   help="GLUE SST-2 folder with train.tsv and dev.tsv, read in place (default %(default)s, or $SST2_DIR)")
    p.add_argument("--only", choices=("train", "infer"), help="run only one of the two benchmarks")
    p.add_argument("--model", type=Path, help="with --only infer: a trained-model.tao to benchmark inference on")
    p.add_argument("--tao-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra spec override for tao train (experiments only; the reported benchmark uses none)")
    # internal: the Trainer peer runs in its own process
    p.add_argument("--worker", choices=("peer-train",), help=argparse.SUPPRESS)
    p.add_argument("--encoder", help=argparse.SUPPRESS)
    p.add_argument("--train-file", help=argparse.SUPPRESS)
    p.add_argument("--dev-file", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    if args.worker == "peer-train":
        peer_train(args)
        return 0
    if args.runs < 1:
        die("--runs must be at least 1")
    sst2 = args.sst2_dir
    missing = [n for n in ("train.tsv", "dev.tsv") if not (sst2 / n).is_file()]
    if missing:
        die(f"GLUE SST-2 not found: {', '.join(str(sst2 / n) for n in missing)} missing. Put the GLUE SST-2 folder "
            f"(train.tsv and dev.tsv, header 'sentence<TAB>label') there or pass --sst2-dir DIR / set SST2_DIR; "
            f"it is read in place, never copied")
    if args.only == "infer" and not args.model:
        die("--only infer needs --model PATH/trained-model.tao")
    encoder = offline_encoder(extra_modules=("onnxruntime",))

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.model:
        args.model = args.model.resolve()
        if not args.model.is_file():
            die(f"--model {args.model} does not exist")
        if (out / "work") in args.model.parents:  # the work folder is emptied below: keep the model
            kept = out / "model-under-test.tao"
            shutil.copyfile(args.model, kept)
            args.model = kept
    work = prepare_workdir(out)
    env = bench_env()
    key = env["TAO_KEY"]
    res: Dict[str, Any] = {**result_header(__file__, argv, args, ("encoder", "train_file", "dev_file", "result")),
                           "encoder": str(encoder), "sst2_dir": str(sst2),
                           "tao_optim_defaults": tao_optim_defaults(), "training": [], "cli": {}}
    log(f"machine: {res['machine'].get('cpu_model')}, {res['machine']['cpu_count']} cores; load {loadavg()}")

    # tao's own data preparation: dataset_convert reads SST-2 in place and writes train.tsv/dev.tsv into work/
    data_dir = work / "data"
    log("tao dataset_convert")
    res["cli"]["dataset_convert"] = tao(["dataset_convert", "-r", str(work / "convert"), f"source_data_dir={sst2}",
                                         f"target_data_dir={data_dir}"], env, work / "convert.log", "tao dataset_convert")
    train_file, dev_file = data_dir / "train.tsv", data_dir / "dev.tsv"
    # the converted files hold the same sentences as the originals: check the part the benchmark uses
    if read_examples(train_file, args.train_samples) != read_examples(sst2 / "train.tsv", args.train_samples) or \
            read_examples(dev_file) != read_examples(sst2 / "dev.tsv"):
        die("dataset_convert changed the SST-2 sentences or labels")

    archive = args.model.resolve() if args.model else None
    if args.only != "infer":
        for run in range(1, args.runs + 1):
            seed = args.seed + run - 1
            rec: Dict[str, Any] = {"run": run, "seed": seed}
            order = ["tao", "peer"] if run % 2 else ["peer", "tao"]  # alternate who goes first
            for who in order:
                if who == "tao":
                    folder = work / f"train-tao-run{run}"
                    log(f"run {run}/{args.runs} seed {seed}: tao train")
                    proc = tao(["train", "-r", str(folder), "model.dataset.num_classes=2",
                                f"training_ds.file_path={train_file}", f"validation_ds.file_path={dev_file}",
                                f"training_ds.num_samples={args.train_samples}", f"training_ds.batch_size={BATCH_SIZE}",
                                f"model.dataset.max_seq_length={MAX_SEQ_LENGTH}", "trainer.max_epochs=1",
                                "trainer.enable_progress_bar=false", f"trainer.seed={seed}", *args.tao_override],
                               env, work / f"train-tao-run{run}.log", "tao train")
                    m = read_status(folder)["metrics"]
                    rec["tao"] = {"sentences_per_sec": float(m["train_samples_per_sec"]), "val_acc": float(m["val_acc"]),
                                  "metrics": m, "process": proc,
                                  "archive": str(folder / "checkpoints" / "trained-model.tao"),
                                  "padding": tao_padding_stats(train_file, args.train_samples, seed, encoder)}
                    ckpt = folder / "checkpoints" / "last.ckpt"  # 270 MB resume checkpoint: not needed here
                    if ckpt.exists():
                        rec["tao"]["last_ckpt_bytes"] = ckpt.stat().st_size
                        ckpt.unlink()
                    log(f"  tao: {rec['tao']['sentences_per_sec']:.1f} sentences/s, val_acc {rec['tao']['val_acc']:.4f} "
                        f"(process {proc['wall_seconds']:.0f} s)")
                else:
                    result = work / f"train-peer-run{run}.json"
                    log(f"run {run}/{args.runs} seed {seed}: Hugging Face Trainer")
                    proc = run_worker(__file__, "peer-train",
                                      ["--encoder", str(encoder), "--train-file", str(train_file), "--dev-file",
                                       str(dev_file), "--train-samples", str(args.train_samples), "--seed", str(seed),
                                       "--result", str(result)], env, work / f"train-peer-run{run}.log", "peer training")
                    rec["peer"] = json.loads(result.read_text())
                    rec["peer"]["process"] = proc
                    log(f"  peer: {rec['peer']['sentences_per_sec']:.1f} sentences/s, val_acc {rec['peer']['val_acc']:.4f} "
                        f"(process {proc['wall_seconds']:.0f} s)")
            res["training"].append(rec)
            if archive is None:
                archive = Path(rec["tao"]["archive"])
            summarize(res)
            write_results(out, STEM, res, markdown)

    if args.only != "train":
        log(f"inference on {archive}")
        eonnx_dir = work / "export"
        res["cli"]["export"] = tao(["export", "-r", str(eonnx_dir), "-m", str(archive), "export_format=ONNX"],
                                   env, work / "export.log", "tao export")
        eonnx = eonnx_dir / "exported-model.eonnx"
        # the CLI once each (whole-process wall time is informational; the outputs cross-check the in-process path)
        for sub, model in (("infer", archive), ("infer_onnx", eonnx)):
            folder = work / sub
            res["cli"][sub] = tao([sub, "-r", str(folder), "-m", str(model), f"input_file={dev_file}",
                                   f"batch_size={BATCH_SIZE}"], env, work / f"{sub}.log", f"tao {sub}")
            res["cli"][f"{sub}_results"] = json.loads((folder / "infer_results.json").read_text())
        res["inference"] = bench_inference(args, archive, eonnx, key, dev_file, res["cli"])
        for sub in ("infer", "infer_onnx"):
            res["cli"].pop(f"{sub}_results", None)  # 872 rows each: kept in work/<sub>/infer_results.json

    return finish_results(out, STEM, res, summarize, markdown)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Benchmark tao's word-labelling tasks against the Hugging Face Trainer (CPU).

    python benchmarks/bench_token_classification.py [--only ner|punct] [--runs N] [--out DIR] [--full]

A. ner    ``tao token_classification`` on CoNLL-2003 (first --ner-train-samples sentences of eng.train,
          1 epoch; entity F1 on eng.testa) vs the Trainer on AutoModelForTokenClassification.
B. punct  ``tao punctuation_and_capitalization`` on the SQuAD v2 sample's paragraphs (tao's dataset_convert
          splits them 80/20; --punct-epochs epochs) vs the Trainer with one head over the combined
          two-character labels (punctuation mark + case).

Both sides: the same encoder, the same data (the files tao's dataset_convert wrote), batch 32, tao's
default optimizer settings (read from its spec schema), the same seed inside a run, a new seed for every
run, a fresh process each, alternating which goes first; N runs, medians. Throughput is reported two ways:
the training loop's throughput, and the wall time of the whole train command as a process (tao: the
``tao ... train`` subprocess; the peer: its worker subprocess, model load and tokenisation included).
``--full`` also trains tao once on all of eng.train for 3 epochs (goal: eng.testa entity F1 >= 0.88).

See benchmarks/README.md for what is measured and why the peer is configured as it is.
Writes <out>/bench_token_classification.json and .md; tao's results folders go to
<out>/work_token_classification/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_common import (CONTENDED, DEFAULT_OUT, OFFLINE_ENV, bench_env, contended, cores_used, die, finish_results,
                          fmt, header_lines, loadavg, log, median, offline_encoder, peer_loop_figures,
                          peer_setup_figures, peer_trainer, prepare_workdir, read_status, result_header, run_tao,
                          run_worker, tao_optim_defaults, verdict, write_results)

DEFAULT_CONLL = Path(os.environ.get("CONLL2003_DIR", "/work/shared/datasets/conll2003"))
DEFAULT_SQUAD = Path(os.environ.get("SQUAD_V2_SAMPLE", "/work/shared/datasets/squad_v2/squad_v2_sample_12articles.json"))
STEM = "bench_token_classification"
WORK = "work_token_classification"
NER, PUNCT = "token_classification", "punctuation_and_capitalization"
BATCH_SIZE = 32
MAX_SEQ_LENGTH = 128
EVAL_BATCH_SIZE = 64  # only affects the speed of the peer's prediction pass
PEER_CHUNK_WORDS = 100  # the peer's punctuation inputs: every line cut into chunks of at most this many words
FULL_EPOCHS = 3
PUNCT_DEV_RATIO = 0.2
PART_TASK = {"ner": "token_classification", "punct": "punctuation_and_capitalization"}

# goals from the brief
TARGET_SPEEDUP = 2.0
TARGET_FULL_F1 = 0.88


# ============================================================================ data

def read_conll(path: Path) -> Tuple[List[List[str]], List[List[str]]]:
    """Words and tags (last column) of a CoNLL-2003 file, one sentence per blank-line-separated block."""
    words: List[List[str]] = []
    tags: List[List[str]] = []
    cur_w: List[str] = []
    cur_t: List[str] = []
    for line in path.read_text().splitlines() + [""]:
        cols = line.split()
        if cols and cols[0] != "-DOCSTART-":
            cur_w.append(cols[0])
            cur_t.append(cols[-1])
        elif cur_w:
            words.append(cur_w)
            tags.append(cur_t)
            cur_w, cur_t = [], []
    return words, tags


def read_pair(text_file: Path, labels_file: Path, n: Optional[int] = None) -> Tuple[List[List[str]], List[List[str]]]:
    """tao's token-task format: one sentence a line in text_*.txt, its labels (one per word) in labels_*.txt."""
    texts = [line.split() for line in text_file.read_text().splitlines()]
    labels = [line.split() for line in labels_file.read_text().splitlines()]
    if len(texts) != len(labels):
        die(f"{text_file} has {len(texts)} lines but {labels_file} has {len(labels)}")
    for i, (t, lab) in enumerate(zip(texts, labels)):
        if len(t) != len(lab):
            die(f"{text_file} line {i + 1}: {len(t)} words but {len(lab)} labels")
    keep = [i for i, t in enumerate(texts) if t]  # an empty line has nothing to label
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    return (texts[:n], labels[:n]) if n else (texts, labels)


def read_label_ids(path: Path) -> List[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_pair(folder: Path, split: str, texts: Sequence[Sequence[str]], labels: Sequence[Sequence[str]]) -> None:
    (folder / f"text_{split}.txt").write_text("".join(" ".join(t) + "\n" for t in texts))
    (folder / f"labels_{split}.txt").write_text("".join(" ".join(lab) + "\n" for lab in labels))


def squad_contexts(path: Path, max_lines: Optional[int]) -> List[str]:
    """The unique paragraph ``context`` strings of a SQuAD file, in order, each on one line."""
    data = json.loads(path.read_text())
    ctx = list(dict.fromkeys(" ".join(p["context"].split()) for a in data["data"] for p in a["paragraphs"]))
    return ctx[:max_lines] if max_lines else ctx


def own_convert(part: str, source: Path, target: Path) -> None:
    """--peer-only: this script's stand-in for tao's dataset_convert (same file names and format; the
    punctuation rules are a simple approximation of tao's, so figures are not comparable with a tao run)."""
    target.mkdir(parents=True, exist_ok=True)
    if part == "ner":
        for split, name in (("train", "eng.train"), ("dev", "eng.testa")):
            write_pair(target, split, *read_conll(source / name))
        tags = sorted({t for s in read_conll(source / "eng.train")[1] for t in s})
        (target / "label_ids.csv").write_text("".join(t + "\n" for t in ["O"] + [t for t in tags if t != "O"]))
        return
    texts, labels = [], []
    for line in (source / "contexts.txt").read_text().splitlines():
        words, labs = [], []
        for raw in line.split():
            mark = raw[-1] if raw[-1] in ",.?" else "O"
            word = re.sub(r"[^\w']", "", raw).lower() or raw.lower()
            words.append(word)
            labs.append(mark + ("U" if raw[:1].isupper() else "O"))
        texts.append(words)
        labels.append(labs)
    n_dev = max(1, round(len(texts) * PUNCT_DEV_RATIO))
    write_pair(target, "train", texts[:-n_dev], labels[:-n_dev])
    write_pair(target, "dev", texts[-n_dev:], labels[-n_dev:])
    (target / "punct_label_ids.csv").write_text("O\n,\n.\n?\n")
    (target / "capit_label_ids.csv").write_text("O\nU\n")


def peer_chunks(n_words: int, max_words: int = PEER_CHUNK_WORDS) -> List[Tuple[int, int]]:
    """[start, end) word ranges cutting a line into the fewest chunks of at most max_words, of equal size."""
    k = max(1, math.ceil(n_words / max_words))
    bounds = [n_words * j // k for j in range(k + 1)]
    return [(bounds[j], bounds[j + 1]) for j in range(k)]


# ============================================================================ scoring

def ner_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Dict[str, Any]:
    """Micro entity F1 by the conlleval rules: tao's own scorer."""
    from tao_launcher.core.metrics import span_report

    return span_report(gold, pred)


def punct_capit_f1(gold: Sequence[str], pred: Sequence[str], punct_names: Sequence[str],
                   capit_names: Sequence[str]) -> Dict[str, Any]:
    """Per-word two-character labels (mark, case) -> punct_f1 = macro F1 over the marks of
    punct_label_ids.csv other than O (a mark that is neither in the gold labels nor predicted counts as 0,
    as in tao's evaluate), capit_f1 = F1 of U; tao's confusion_matrix and classification_report."""
    import torch

    from tao_launcher.core.metrics import classification_report, confusion_matrix

    def report(pos: int, names: Sequence[str]) -> Dict[str, Any]:
        g = torch.tensor([names.index(x[pos]) for x in gold])
        p = torch.tensor([names.index(x[pos]) for x in pred])
        return classification_report(confusion_matrix(p, g, len(names)), list(names))

    pr, cr = report(0, punct_names), report(1, capit_names)
    marks = [n for n in punct_names if n != "O"]
    return {"punct_f1": sum(pr[n]["f1"] for n in marks) / len(marks) if marks else 0.0, "punct_marks": marks,
            "capit_f1": cr["U"]["f1"], "punct_report": pr, "capit_report": cr, "words": len(gold)}


# ============================================================================ peer (subprocess)

def peer_worker(args) -> None:
    """The Hugging Face Trainer peer for one part; runs in its own process (like tao) and writes a JSON result."""
    t_start = time.perf_counter()
    import numpy as np
    import transformers
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, set_seed

    transformers.logging.set_verbosity_error()
    t_imported = time.perf_counter()
    data = Path(args.data_dir)
    train_x, train_y = read_pair(data / "text_train.txt", data / "labels_train.txt", args.train_samples)
    dev_x, dev_y = read_pair(data / "text_dev.txt", data / "labels_dev.txt")
    if args.part == "ner":
        names, default = read_label_ids(data / "label_ids.csv"), "O"
        train_seq, dev_seq = [(i, 0, len(x)) for i, x in enumerate(train_x)], [(i, 0, len(x)) for i, x in enumerate(dev_x)]
    else:  # one head over every (mark, case) pair: "O" + "U" = "OU", "," + "O" = ",O", ...
        punct_names, capit_names = read_label_ids(data / "punct_label_ids.csv"), read_label_ids(data / "capit_label_ids.csv")
        names, default = [p + c for p in punct_names for c in capit_names], "OO"
        train_seq = [(i, a, b) for i, x in enumerate(train_x) for a, b in peer_chunks(len(x))]
        dev_seq = [(i, a, b) for i, x in enumerate(dev_x) for a, b in peer_chunks(len(x))]
    if default not in names:
        die(f"the default label {default!r} is not among {names}")
    label2id = {n: i for i, n in enumerate(names)}

    set_seed(args.seed)  # before the model: the new classification head is initialised from it
    tokenizer = AutoTokenizer.from_pretrained(args.encoder, use_fast=True)
    model = AutoModelForTokenClassification.from_pretrained(
        args.encoder, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label2id)
    t_loaded = time.perf_counter()

    def encode(xs, ys, seqs):
        """First sub-token of each word labelled, the others -100; returns examples and, per input,
        word index -> position of its first sub-token (words cut off by the truncation are missing)."""
        enc = tokenizer([xs[i][a:b] for i, a, b in seqs], is_split_into_words=True, truncation=True,
                        max_length=MAX_SEQ_LENGTH)
        examples, firsts = [], []
        for k, (i, a, _) in enumerate(seqs):
            labels, first, prev = [], {}, None
            for pos, w in enumerate(enc.word_ids(k)):
                if w is None or w == prev:
                    labels.append(-100)
                else:
                    labels.append(label2id[ys[i][a + w]])
                    first[w] = pos
                prev = w
            examples.append({**{key: enc[key][k] for key in enc.keys()}, "labels": labels})
            firsts.append(first)
        return examples, firsts

    train_ds, train_first = encode(train_x, train_y, train_seq)
    dev_ds, dev_first = encode(dev_x, dev_y, dev_seq)
    t_tokenised = time.perf_counter()
    train_words = sum(len(x) for x in train_x)
    peer = peer_trainer(model, tokenizer, train_ds, DataCollatorForTokenClassification(tokenizer),
                        Path(args.result).parent / f"peer-{args.part}-trainer-seed{args.seed}", args.seed,
                        args.batch_size, EVAL_BATCH_SIZE, epochs=args.epochs, task=PART_TASK[args.part], lr=args.lr)
    out = peer.trainer.train()
    t_trained = time.perf_counter()
    model.eval()
    best = np.argmax(peer.trainer.predict(dev_ds).predictions, -1)
    pred_y = [[default] * len(x) for x in dev_x]  # words the truncation cut off keep the default label
    for k, (i, a, _) in enumerate(dev_seq):
        for w, pos in dev_first[k].items():
            pred_y[i][a + w] = names[int(best[k][pos])]
    if args.part == "ner":
        rep = ner_f1(dev_y, pred_y)
        scores = {"f1": rep["micro"]["f1"], "span_report": rep}
        loop = peer_loop_figures(peer, out, len(train_x), unit="sentences")
    else:
        scores = punct_capit_f1([y for s in dev_y for y in s], [y for s in pred_y for y in s], punct_names, capit_names)
        loop = peer_loop_figures(peer, out, train_words, unit="words")
    t_predicted = time.perf_counter()
    (Path(args.result).with_suffix(".labels_dev.txt")).write_text("".join(" ".join(p) + "\n" for p in pred_y))
    n_in = lambda firsts: sum(len(f) for f in firsts)  # noqa: E731 - words that got a sub-token in the input
    result = {
        "part": args.part, "seed": args.seed, "epochs": args.epochs, "sentences": len(train_x),
        "train_words": train_words, "train_inputs": len(train_ds), **loop,
        "inputs_per_sec": len(train_ds) * args.epochs / loop["loop_seconds"],
        **scores, "dev_sentences": len(dev_x), "dev_words": sum(len(x) for x in dev_x), "dev_inputs": len(dev_ds),
        "train_words_cut_by_truncation": train_words - n_in(train_first),
        "dev_words_cut_by_truncation": sum(len(x) for x in dev_x) - n_in(dev_first),
        "padded_train_tokens": peer.padded["tokens"],
        "real_train_tokens": sum(len(e["input_ids"]) for e in train_ds) * args.epochs,
        "phases_seconds": {"imports": t_imported - t_start, "model_load": t_loaded - t_imported,
                           "tokenisation": t_tokenised - t_loaded, "train": t_trained - t_tokenised,
                           "predict_and_score": t_predicted - t_trained},
        **peer_setup_figures(peer, model),
    }
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))


# ============================================================================ tao

def tao_windows(encoder: Path, texts: Sequence[Sequence[str]], seed: int, epochs: int,
                batch_size: int = BATCH_SIZE) -> Dict[str, Any]:
    """The training inputs tao makes of these sentences (its own word windows of <= 128 sub-tokens, its own
    length-bucketed batches): how many, and tokens real vs padded. Empty if tao's internals changed."""
    try:
        from transformers import AutoTokenizer

        from tao_launcher.core.data import LengthBucketBatchSampler
        from tao_launcher.nlp.tokens import word_windows

        windows = word_windows(AutoTokenizer.from_pretrained(str(encoder)), texts, MAX_SEQ_LENGTH)
        lengths = [len(w.input_ids) for w in windows]
        padded = 0
        for epoch in range(epochs):
            sampler = LengthBucketBatchSampler(lengths, batch_size, True, seed)
            sampler.set_epoch(epoch)
            padded += sum(len(b) * max(lengths[i] for i in b) for b in sampler)
        return {"windows": len(windows), "real_train_tokens": sum(lengths) * epochs, "padded_train_tokens": padded}
    except Exception as err:  # noqa: BLE001 - informational figures only
        return {"error": f"{type(err).__name__}: {err}"}


def tao_train_and_evaluate(task: str, work: Path, tag: str, train_args: List[str], data_dir: Path, env,
                           ) -> Dict[str, Any]:
    """``tao TASK train`` then ``tao TASK evaluate`` on text_dev/labels_dev; both status.json metrics."""
    folder = work / f"{tag}-tao"
    proc = run_tao(task, ["train", "-r", str(folder), f"data_dir={data_dir}", *train_args], env,
                   work / f"{tag}-tao.log", f"tao {task} train")
    metrics = read_status(folder)["metrics"]
    archive = folder / "checkpoints" / "trained-model.tao"
    rec: Dict[str, Any] = {"train_process": proc, "metrics": metrics, "archive": str(archive)}
    ckpt = folder / "checkpoints" / "last.ckpt"  # resume checkpoint with optimizer state: not needed here
    if ckpt.exists():
        rec["last_ckpt_bytes"] = ckpt.stat().st_size
        ckpt.unlink()
    eval_folder = work / f"{tag}-eval"
    rec["eval_process"] = run_tao(task, ["evaluate", "-r", str(eval_folder), "-m", str(archive), f"data_dir={data_dir}",
                                         "test_ds.text_file=text_dev.txt", "test_ds.labels_file=labels_dev.txt"],
                                  env, work / f"{tag}-eval.log", f"tao {task} evaluate")
    rec["eval_metrics"] = read_status(eval_folder)["metrics"]
    report = eval_folder / "evaluation_report.json"  # per-class figures, where the task writes them
    if report.is_file():
        rec["eval_report"] = json.loads(report.read_text())
    return rec


def metric(metrics: Dict[str, Any], name: str, where: str) -> float:
    if name not in metrics:
        die(f"{where} status.json has no metrics.{name} (it has {sorted(metrics)})")
    return float(metrics[name])


# ============================================================================ the two parts

def run_part(part: str, args, work: Path, data_dir: Path, encoder: Path, env, res: Dict[str, Any], out: Path) -> None:
    """N runs of tao vs the peer for one part, alternating who goes first."""
    task = NER if part == "ner" else PUNCT
    epochs = 1 if part == "ner" else args.punct_epochs
    n = args.ner_train_samples if part == "ner" else None
    lr = [] if part == "ner" or args.punct_lr is None else [args.punct_lr]  # both systems get the same lr
    batch_size = BATCH_SIZE if part == "ner" else args.punct_batch_size
    train_x, _ = read_pair(data_dir / "text_train.txt", data_dir / "labels_train.txt", n)
    train_words = sum(len(x) for x in train_x)
    unit = "sentences" if part == "ner" else "words"
    per_epoch = len(train_x) if part == "ner" else train_words
    for run in range(1, args.runs + 1):
        seed = args.seed + run - 1
        rec: Dict[str, Any] = {"run": run, "seed": seed}
        order = ["tao", "peer"] if run % 2 else ["peer", "tao"]
        for who in order:
            if who == "tao" and not args.peer_only:
                log(f"{part} run {run}/{args.runs} seed {seed}: tao {task} train + evaluate")
                extra = ([f"training_ds.num_samples={n}"] if n else []) + [f"optim.lr={x}" for x in lr]
                t = tao_train_and_evaluate(task, work, f"{part}-run{run}", [
                    *extra, f"training_ds.batch_size={batch_size}", f"trainer.max_epochs={epochs}",
                    "trainer.enable_progress_bar=false", f"trainer.seed={seed}", *args.tao_override], data_dir, env)
                t["inputs"] = tao_windows(encoder, train_x, seed, epochs, batch_size)
                sps = metric(t["metrics"], "train_samples_per_sec", f"tao {task} train")
                windows = t["inputs"].get("windows")
                # tao counts windows (a sentence longer than 128 sub-tokens is more than one): to unit/s
                t[f"{unit}_per_sec"] = sps * per_epoch / windows if windows else None
                if part == "ner":
                    t["val_f1"] = metric(t["metrics"], "val_f1", "tao train")
                    t["f1"] = metric(t["eval_metrics"], "test_f1", "tao evaluate")
                    log(f"  tao: {fmt(t[f'{unit}_per_sec'])} {unit}/s, train process {t['train_process']['wall_seconds']:.0f} s, "
                        f"entity F1 {t['f1']:.4f}")
                else:
                    t["punct_f1"] = metric(t["eval_metrics"], "test_punct_f1", "tao evaluate")
                    t["capit_f1"] = metric(t["eval_metrics"], "test_capit_f1", "tao evaluate")
                    log(f"  tao: {fmt(t[f'{unit}_per_sec'])} {unit}/s, train process {t['train_process']['wall_seconds']:.0f} s, "
                        f"punct F1 {t['punct_f1']:.4f}, capit F1 {t['capit_f1']:.4f}")
                rec["tao"] = t
            elif who == "peer":
                result = work / f"{part}-run{run}-peer.json"
                log(f"{part} run {run}/{args.runs} seed {seed}: Hugging Face Trainer")
                proc = run_worker(__file__, "peer", [
                    "--part", part, "--encoder", str(encoder), "--data-dir", str(data_dir), "--seed", str(seed),
                    "--worker-epochs", str(epochs), "--worker-batch-size", str(batch_size), "--result", str(result)]
                    + (["--train-samples", str(n)] if n else [])
                    + [a for x in lr for a in ("--worker-lr", str(x))],
                    env, work / f"{part}-run{run}-peer.log", "peer training")
                p = json.loads(result.read_text())
                p["process"] = proc
                rec["peer"] = p
                scores = (f"entity F1 {p['f1']:.4f}" if part == "ner"
                          else f"punct F1 {p['punct_f1']:.4f}, capit F1 {p['capit_f1']:.4f}")
                log(f"  peer: {p[f'{unit}_per_sec']:.1f} {unit}/s, process {proc['wall_seconds']:.0f} s, {scores}")
        res[part]["runs"].append(rec)
        summarize(res)
        write_results(out, STEM, res, markdown)


def prepare_ner(args, work: Path, env, res: Dict[str, Any]) -> Path:
    """tao's dataset_convert of CoNLL-2003, checked word for word against the originals."""
    data_dir = work / "ner"
    if args.peer_only:
        own_convert("ner", args.conll_dir, data_dir)
    else:
        log("ner: tao token_classification dataset_convert")
        res["cli"]["ner_dataset_convert"] = run_tao(NER, ["dataset_convert", "-r", str(work / "convert"),
                                                          f"source_data_dir={args.conll_dir}", f"target_data_dir={data_dir}"],
                                                    env, work / "convert.log", "tao token_classification dataset_convert")
    for split, name in (("train", "eng.train"), ("dev", "eng.testa")):
        converted = read_pair(data_dir / f"text_{split}.txt", data_dir / f"labels_{split}.txt")
        if converted != read_conll(args.conll_dir / name):
            die(f"dataset_convert's {split} files are not the words and tags of {name}")
    labels = read_label_ids(data_dir / "label_ids.csv")
    words, tags = read_conll(args.conll_dir / "eng.train")
    missing = {t for s in tags for t in s} - set(labels)
    if missing:
        die(f"label_ids.csv lacks {sorted(missing)}")
    res["ner"]["data"] = {"train_sentences_total": len(words), "train_sentences_used": min(args.ner_train_samples, len(words)),
                          "dev_sentences": len(read_conll(args.conll_dir / "eng.testa")[0]), "labels": labels}
    return data_dir


def prepare_punct(args, work: Path, env, res: Dict[str, Any]) -> Path:
    """The SQuAD paragraphs, one a line, through tao's dataset_convert (80/20 split)."""
    raw, data_dir = work / "punct_raw", work / "punct"
    raw.mkdir()
    contexts = squad_contexts(args.squad_file, args.punct_max_lines)
    (raw / "contexts.txt").write_text("".join(c + "\n" for c in contexts))
    if args.peer_only:
        own_convert("punct", raw, data_dir)
    else:
        log("punct: tao punctuation_and_capitalization dataset_convert")
        res["cli"]["punct_dataset_convert"] = run_tao(PUNCT, ["dataset_convert", "-r", str(work / "pconvert"),
                                                              f"source_data_dir={raw}", f"target_data_dir={data_dir}",
                                                              f"dev_ratio={PUNCT_DEV_RATIO}"],
                                                      env, work / "pconvert.log", f"tao {PUNCT} dataset_convert")
    punct, capit = read_label_ids(data_dir / "punct_label_ids.csv"), read_label_ids(data_dir / "capit_label_ids.csv")
    info: Dict[str, Any] = {"contexts": len(contexts), "raw_words": sum(len(c.split()) for c in contexts),
                            "punct_labels": punct, "capit_labels": capit}
    for split in ("train", "dev"):
        texts, labels = read_pair(data_dir / f"text_{split}.txt", data_dir / f"labels_{split}.txt")
        bad = {lab for s in labels for lab in s if len(lab) != 2 or lab[0] not in punct or lab[1] not in capit}
        if bad:
            die(f"labels_{split}.txt has labels that are not <mark><case> of {punct} x {capit}: {sorted(bad)[:10]}")
        info[f"{split}_lines"], info[f"{split}_words"] = len(texts), sum(len(t) for t in texts)
        info[f"{split}_peer_inputs"] = sum(len(peer_chunks(len(t))) for t in texts)
    res["punct"]["data"] = info
    return data_dir


def run_full(args, work: Path, data_dir: Path, env, res: Dict[str, Any]) -> None:
    """tao once on all of eng.train for FULL_EPOCHS epochs; entity F1 on eng.testa."""
    log(f"ner --full: tao on the whole training set, {FULL_EPOCHS} epochs")
    t = tao_train_and_evaluate(NER, work, "ner-full", [
        f"training_ds.batch_size={BATCH_SIZE}", f"trainer.max_epochs={FULL_EPOCHS}",
        "trainer.enable_progress_bar=false", f"trainer.seed={args.seed}", *args.tao_override], data_dir, env)
    t["f1"] = metric(t["eval_metrics"], "test_f1", "tao evaluate")
    t["val_f1"] = metric(t["metrics"], "val_f1", "tao train")
    t["sentences"] = len(read_pair(data_dir / "text_train.txt", data_dir / "labels_train.txt")[0])
    t["epochs"] = FULL_EPOCHS
    res["ner"]["full"] = t
    log(f"  tao full: entity F1 {t['f1']:.4f}, train process {t['train_process']['wall_seconds']:.0f} s")


# ============================================================================ report

PARTS = {
    "ner": {"title": "A. NER (CoNLL-2003)", "unit": "sentences", "short": "sent",
            "scores": [("f1", "eng.testa entity F1 (micro, conlleval)")]},
    "punct": {"title": "B. Punctuation and capitalization (SQuAD v2 sample paragraphs)", "unit": "words",
              "short": "words", "scores": [("punct_f1", "dev punctuation F1 (macro over the marks other than O)"),
                                           ("capit_f1", "dev capitalization F1 (of U)")]},
}


def summarize(res: Dict[str, Any]) -> None:
    s: Dict[str, Any] = {}
    for part, spec in PARTS.items():
        runs = [r for r in res.get(part, {}).get("runs", []) if "peer" in r]
        if not runs:
            continue
        unit = spec["unit"]
        p = {"peer_sps": median([r["peer"][f"{unit}_per_sec"] for r in runs]),
             "peer_wall": median([r["peer"]["process"]["wall_seconds"] for r in runs])}
        for key, _ in spec["scores"]:
            p[f"peer_{key}"] = median([r["peer"][key] for r in runs])
        with_tao = [r for r in runs if "tao" in r]
        if with_tao:
            sps = [r["tao"][f"{unit}_per_sec"] for r in with_tao if r["tao"][f"{unit}_per_sec"] is not None]
            p["tao_sps"] = median(sps) if sps else None
            p["tao_wall"] = median([r["tao"]["train_process"]["wall_seconds"] for r in with_tao])
            p["loop_ratio"] = p["tao_sps"] / p["peer_sps"] if p["tao_sps"] else None
            p["wall_ratio"] = p["peer_wall"] / p["tao_wall"]
            for key, _ in spec["scores"]:
                p[f"tao_{key}"] = median([r["tao"][key] for r in with_tao])
            p["targets_met"] = {"loop_throughput": p["loop_ratio"] is not None and p["loop_ratio"] >= TARGET_SPEEDUP,
                                "process_throughput": p["wall_ratio"] >= TARGET_SPEEDUP,
                                **{key: p[f"tao_{key}"] >= p[f"peer_{key}"] for key, _ in spec["scores"]}}
            p["contended_runs"] = [r["run"] for r in with_tao
                                   if contended(r["tao"]["train_process"]) or contended(r["peer"]["process"])]
        if part == "ner" and res["ner"].get("full"):
            p["full_f1"] = res["ner"]["full"]["f1"]
            p["targets_met_full"] = p["full_f1"] >= TARGET_FULL_F1
        s[part] = p
    res["summary"] = s


def ratio_cell(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def markdown(res: Dict[str, Any]) -> str:
    lines = header_lines("tao token_classification and punctuation_and_capitalization vs the Hugging Face Trainer", res)
    a = res["args"]
    for part, spec in PARTS.items():
        s = res.get("summary", {}).get(part)
        if not s:
            continue
        unit, short = spec["unit"], spec["short"]
        d = res[part].get("data", {})
        if part == "ner":
            setting = f"{d.get('train_sentences_used')} sentences of eng.train, 1 epoch, batch {BATCH_SIZE}"
        else:
            setting = (f"{d.get('train_lines')} lines / {d.get('train_words')} words, {a['punct_epochs']} "
                       f"epoch{'' if a['punct_epochs'] == 1 else 's'}, "
                       f"batch {a.get('punct_batch_size')}, lr {a.get('punct_lr') or 'tao default'} for both; dev {d.get('dev_lines')} lines / {d.get('dev_words')} words")
        lines += [f"### {spec['title']}: medians ({setting})", "",
                  "| benchmark | tao | peer (HF Trainer) | tao / peer | target | |", "|---|---|---|---|---|---|"]
        has_tao = "tao_wall" in s
        if has_tao:
            ratio = s["loop_ratio"]
            lines.append(f"| training loop throughput, {unit}/s | {fmt(s['tao_sps'])} | {fmt(s['peer_sps'])} | "
                         f"{fmt(ratio, 2)}x | >= {TARGET_SPEEDUP}x | {verdict(ratio is not None and ratio >= TARGET_SPEEDUP)} |")
            lines.append(f"| train command as a whole process, wall s (peer / tao) | {fmt(s['tao_wall'])} | "
                         f"{fmt(s['peer_wall'])} | {fmt(s['wall_ratio'], 2)}x | >= {TARGET_SPEEDUP}x | "
                         f"{verdict(s['wall_ratio'] >= TARGET_SPEEDUP)} |")
            for key, what in spec["scores"]:
                t, p = s[f"tao_{key}"], s[f"peer_{key}"]
                lines.append(f"| {what} | {fmt(t, 4)} | {fmt(p, 4)} | {t - p:+.4f} | tao >= peer | {verdict(t >= p)} |")
        else:
            lines.append(f"| training loop throughput, {unit}/s | (not run) | {fmt(s['peer_sps'])} | | | |")
            lines.append(f"| train command as a whole process, wall s | (not run) | {fmt(s['peer_wall'])} | | | |")
            for key, what in spec["scores"]:
                lines.append(f"| {what} | (not run) | {fmt(s[f'peer_{key}'], 4)} | | | |")
        full = res[part].get("full")
        if full:
            lines.append(f"| tao on all of eng.train ({full['sentences']} sentences, {full['epochs']} epochs): eng.testa "
                         f"entity F1 (train process {full['train_process']['wall_seconds']:.0f} s) | {full['f1']:.4f} | | | "
                         f">= {TARGET_FULL_F1} | {verdict(full['f1'] >= TARGET_FULL_F1)} |")
        lines += ["", "Per run:", "",
                  f"| run | seed | tao {short}/s | peer {short}/s | tao / peer | tao process s | peer process s | "
                  "peer / tao | " + " | ".join(f"tao {k} | peer {k}" for k, _ in spec["scores"]) +
                  " | CPU cores used: tao / peer | other processes' cores: tao / peer |",
                  "|---|---|---|---|---|---|---|---|" + "---|---|" * len(spec["scores"]) + "---|---|"]
        for r in res[part]["runs"]:
            p = r["peer"]
            t = r.get("tao")
            tp = t["train_process"] if t else {}
            flag = " (contended)" if contended(p["process"]) or (t and contended(tp)) else ""
            t_sps = t[f"{unit}_per_sec"] if t else None
            cells = [f"{r['run']}{flag}", str(r["seed"]), fmt(t_sps), fmt(p[f"{unit}_per_sec"]),
                     ratio_cell(t_sps, p[f"{unit}_per_sec"]),
                     fmt(tp.get("wall_seconds")), fmt(p["process"]["wall_seconds"]),
                     ratio_cell(p["process"]["wall_seconds"], tp.get("wall_seconds"))]
            for key, _ in spec["scores"]:
                cells += [fmt(t[key] if t else None, 4), fmt(p[key], 4)]
            cells += [f"{fmt(cores_used(tp), 2) if t else 'n/a'} / {fmt(cores_used(p['process']), 2)}",
                      f"{fmt(tp.get('other_cores'), 2)} / {fmt(p['process'].get('other_cores'), 2)}"]
            lines.append("| " + " | ".join(cells) + " |")
        if s.get("contended_runs"):
            lines += ["", f"Runs {s['contended_runs']} were measured while other processes used more than {CONTENDED} "
                          f"of a core on average: their throughput is not comparable."]
        r0 = res[part]["runs"][0]
        p0 = r0["peer"]
        ti = (r0.get("tao") or {}).get("inputs", {})
        lines += ["", f"Run 1, training inputs and tokens (all epochs): tao {ti.get('windows', 'n/a')} windows, "
                      f"{ti.get('padded_train_tokens', 'n/a')} padded tokens for {ti.get('real_train_tokens', 'n/a')} real; "
                      f"peer {p0['train_inputs']} inputs, {p0['padded_train_tokens']} padded tokens for "
                      f"{p0['real_train_tokens']} real. Peer words cut off by its {MAX_SEQ_LENGTH}-token truncation "
                      f"(scored as the default label): {p0['train_words_cut_by_truncation']} in training, "
                      f"{p0['dev_words_cut_by_truncation']} of {p0['dev_words']} in the dev set.",
                  "Peer process phases (run 1, s): " + ", ".join(f"{k} {v:.1f}" for k, v in p0["phases_seconds"].items())
                  + ".", ""]
        if part == "punct":
            tr = (r0.get("tao") or {}).get("eval_report", {}).get("punctuation", {})
            lines += ["Run 1, F1 per punctuation mark (dev support), tao / peer: " + ", ".join(
                f"`{m}` {fmt(tr.get(m, {}).get('f1'), 4)} / {fmt(p0['punct_report'][m]['f1'], 4)} "
                f"({p0['punct_report'][m]['support']})" for m in p0["punct_marks"])
                + " (a mark with no dev support scores 0 for both and caps the macro F1).", ""]
    if res["args"].get("peer_only"):
        lines += ["--peer-only: the tao side was not run; the data files were written by this script's stand-in "
                  "converter, not tao's dataset_convert.", ""]
    return "\n".join(lines) + "\n"


# ============================================================================ main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("ner", "punct"), help="run only one of the two parts (default: both)")
    p.add_argument("--runs", type=int, default=3, help="runs per part; medians are reported (default 3)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default benchmarks/out/)")
    p.add_argument("--seed", type=int, default=42, help="seed of run 1; run k uses seed+k-1 (default 42)")
    p.add_argument("--ner-train-samples", type=int, default=2000,
                   help="NER: first N eng.train sentences (default 2000)")
    p.add_argument("--full", action="store_true",
                   help=f"NER: also train tao once on all of eng.train for {FULL_EPOCHS} epochs (goal: F1 >= {TARGET_FULL_F1})")
    p.add_argument("--punct-epochs", "--epochs", dest="punct_epochs", type=int, default=3,
                   help="punctuation: training epochs, both systems (default 3)")
    p.add_argument("--punct-batch-size", type=int, default=16,
                   help="punctuation: batch size, both systems (default 16: twice the steps of 32 for the same compute)")
    p.add_argument("--punct-lr", type=float, default=5e-4,
                   help="punctuation: peak learning rate, both systems (default 5e-4: at tao's default 2e-4 and 2 "
                        "epochs neither system learns a single mark, so the comparison would tell nothing)")
    p.add_argument("--punct-max-lines", type=int,
                   help="punctuation: use only the first N paragraphs (default: all 468); for quick checks")
    p.add_argument("--conll-dir", type=Path, default=DEFAULT_CONLL,
                   help="CoNLL-2003 folder with eng.train and eng.testa (default %(default)s, or $CONLL2003_DIR)")
    p.add_argument("--squad-file", type=Path, default=DEFAULT_SQUAD,
                   help="SQuAD v2 JSON whose paragraphs are the punctuation data (default %(default)s, or $SQUAD_V2_SAMPLE)")
    p.add_argument("--peer-only", action="store_true",
                   help="run only the Hugging Face peer, on data converted by this script (to check the script "
                        "where the tao tasks are not installed); no comparison is made")
    p.add_argument("--tao-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra spec override for the tao train commands (experiments only; reported figures use none)")
    # internal: the Trainer peer runs in its own process
    p.add_argument("--worker", choices=("peer",), help=argparse.SUPPRESS)
    p.add_argument("--part", choices=("ner", "punct"), help=argparse.SUPPRESS)
    p.add_argument("--encoder", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--train-samples", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-epochs", dest="epochs", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker-lr", dest="lr", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-batch-size", dest="batch_size", type=int, default=BATCH_SIZE, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    if args.worker == "peer":
        peer_worker(args)
        return 0
    if args.runs < 1:
        die("--runs must be at least 1")
    parts = [args.only] if args.only else ["ner", "punct"]
    if "ner" in parts:
        missing = [n for n in ("eng.train", "eng.testa") if not (args.conll_dir / n).is_file()]
        if missing:
            die(f"CoNLL-2003 not found: {', '.join(str(args.conll_dir / n) for n in missing)} missing; pass "
                f"--conll-dir DIR or set CONLL2003_DIR (4-column IOB2 files, read in place)")
    if "punct" in parts and not args.squad_file.is_file():
        die(f"{args.squad_file} not found: pass --squad-file FILE or set SQUAD_V2_SAMPLE")
    if args.full and "ner" not in parts:
        die("--full is part of the NER benchmark: drop --only punct")
    if args.full and args.peer_only:
        die("--full trains tao: it cannot go with --peer-only")
    encoder = offline_encoder()
    args.conll_dir, args.squad_file = args.conll_dir.resolve(), args.squad_file.resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = prepare_workdir(out, WORK)
    env = bench_env()
    res: Dict[str, Any] = {**result_header(__file__, argv, args, ("part", "encoder", "data_dir", "train_samples",
                                                                  "epochs", "result")),
                           "encoder": str(encoder), "conll_dir": str(args.conll_dir), "squad_file": str(args.squad_file),
                           "tao_optim_defaults": {part: tao_optim_defaults(task) for part, task in PART_TASK.items()},
                           "cli": {}}
    log(f"machine: {res['machine'].get('cpu_model')}, {res['machine']['cpu_count']} cores; load {loadavg()}")
    for part in parts:
        res[part] = {"runs": []}
        data_dir = (prepare_ner if part == "ner" else prepare_punct)(args, work, env, res)
        run_part(part, args, work, data_dir, encoder, env, res, out)
        if part == "ner" and args.full:
            run_full(args, work, data_dir, env, res)
    return finish_results(out, STEM, res, summarize, markdown)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Benchmark `tao question_answering` against the Hugging Face Trainer with HF's run_qa recipe (CPU).

    python benchmarks/bench_question_answering.py [--runs N] [--modes v2,v1] [--out DIR] [--max-questions N]

Data: the SQuAD v2.0 sample (12 articles); both systems train on the first 10 articles and are tested on
the other 2, 1 epoch, lr 3e-5, batch --batch-size, the packaged offline encoder, the same seed inside a run.

- v2 (SQuAD v2.0): every question; the null answer is allowed (null threshold 0 for both).
- v1 (SQuAD v1.1 mode, answerable questions only): both systems train and are tested on the answerable
  questions alone, with no null answer (tao: model.dataset.version_2_with_negative=false; HF:
  version_2_with_negative=False).

tao runs through the real CLI (local runner): `train` then `evaluate`; its figures come from status.json.
The peer (a subprocess of this script) is run_qa's recipe: AutoModelForQuestionAnswering, every window
padded to 384 (max_seq_length 384, tokenizer stride 128: Hugging Face's overlap), run_qa's
prepare_train_features / prepare_validation_features / postprocess_qa_predictions (n-best 20, max answer
30 sub-tokens, null threshold 0), the Trainer configured like tao's optimizer defaults (bench_common).
Both are scored by the official SQuAD v2.0 rules (tao's nlp/squad_scoring.py, checked against the official script's
definitions in tests/tasks/test_question_answering_data.py).

Throughput: training questions per second of the training loop (tao: train_samples_per_sec, which counts
windows, times train_questions / train_windows; the peer: questions / the Trainer's loop time). Writes
<out>/bench_question_answering.json and .md; tao's results folders go to <out>/work_question_answering/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from bench_common import (DEFAULT_OUT, OFFLINE_ENV, bench_env, contended, die, finish_results, fmt, header_lines,
                          loadavg, log, median, offline_encoder, peer_loop_figures, peer_setup_figures, peer_trainer,
                          prepare_workdir, read_status, result_header, run_tao, run_worker, tao_optim_defaults, verdict)

QA = "question_answering"
DEFAULT_SQUAD = Path(os.environ.get("SQUAD_V2_SAMPLE", "/work/shared/datasets/squad_v2/squad_v2_sample_12articles.json"))
STEM = "bench_question_answering"
WORK = "work_question_answering"
TRAIN_ARTICLES = 10
MAX_SEQ_LENGTH, STRIDE, MAX_QUERY_LENGTH = 384, 128, 64
N_BEST, MAX_ANSWER, NULL_THRESHOLD = 20, 30, 0.0
LR = 3e-5
EVAL_BATCH_SIZE = 64
TARGET_SPEEDUP = 2.0


# ============================================================================ data

def split_sample(path: Path, work: Path, max_questions: int | None, max_test: int | None) -> Dict[str, Any]:
    """train/test files for both modes: the first 10 articles and the other 2; v1 keeps answerable questions."""
    sample = json.loads(path.read_text())
    if len(sample["data"]) <= TRAIN_ARTICLES:
        die(f"{path} has {len(sample['data'])} articles; the benchmark trains on {TRAIN_ARTICLES} and tests on the rest")
    folder = work / "data"
    folder.mkdir()
    info: Dict[str, Any] = {}

    def keep(articles, limit, answerable_only):
        out, n = [], 0
        for article in articles:
            paragraphs = []
            for p in article["paragraphs"]:
                qas = p["qas"] if limit is None else p["qas"][:max(0, limit - n)]
                n += len(qas)  # the limit counts every question: v1 gets the answerable ones of v2's questions
                qas = [q for q in qas if q["answers"] or not answerable_only]
                if qas:
                    paragraphs.append({"context": p["context"], "qas": qas})
            if paragraphs:
                out.append({"title": article["title"], "paragraphs": paragraphs})
        return out

    for mode, answerable_only in (("v2", False), ("v1", True)):
        for split, articles, limit in (("train", sample["data"][:TRAIN_ARTICLES], max_questions),
                                       ("test", sample["data"][TRAIN_ARTICLES:], max_test)):
            kept = keep(articles, limit, answerable_only)
            n = sum(len(p["qas"]) for a in kept for p in a["paragraphs"])
            file = folder / f"{split}_{mode}.json"
            file.write_text(json.dumps({"version": "v2.0" if mode == "v2" else "v1.1", "data": kept}))
            info[f"{split}_{mode}"] = {"file": str(file), "questions": n, "articles": len(kept),
                                       "unanswerable": sum(1 for a in kept for p in a["paragraphs"]
                                                           for q in p["qas"] if not q["answers"])}
    return info


def gold_of(path: Path) -> Dict[str, List[str]]:
    return {q["id"]: [a["text"] for a in q["answers"]] for a in json.loads(path.read_text())["data"]
            for p in a["paragraphs"] for q in p["qas"]}


def scores_of(gold: Dict[str, List[str]], predictions: Dict[str, str]) -> Dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tao_launcher.nlp.squad_scoring import squad_scores

    return squad_scores(gold, predictions)


# ============================================================================ peer (subprocess): HF run_qa

def peer_worker(args) -> None:
    """run_qa's recipe with the Trainer; writes a JSON result (scores, loop throughput, phases)."""
    t_start = time.perf_counter()
    import numpy as np
    import transformers
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, default_data_collator, set_seed

    transformers.logging.set_verbosity_error()
    t_imported = time.perf_counter()
    v2 = args.mode == "v2"

    def examples(path):
        return [{"id": q["id"], "question": q["question"], "context": p["context"], "answers": q["answers"]}
                for a in json.loads(Path(path).read_text())["data"] for p in a["paragraphs"] for q in p["qas"]]

    train, test = examples(args.train_file), examples(args.test_file)
    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.encoder, use_fast=True)
    model = AutoModelForQuestionAnswering.from_pretrained(args.encoder)
    t_loaded = time.perf_counter()
    pad_right = tokenizer.padding_side == "right"

    def tokenize(batch):  # run_qa: truncate the context only, overflow into windows, pad to max_seq_length
        return tokenizer([q["question"].lstrip() for q in batch], [q["context"] for q in batch],
                         truncation="only_second" if pad_right else "only_first", max_length=MAX_SEQ_LENGTH,
                         stride=STRIDE, return_overflowing_tokens=True, return_offsets_mapping=True,
                         padding="max_length")

    # prepare_train_features
    enc = tokenize(train)
    features = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ids = enc["input_ids"][i]
        cls = ids.index(tokenizer.cls_token_id)
        seq = enc.sequence_ids(i)
        ex = train[enc["overflow_to_sample_mapping"][i]]
        start = end = cls
        if ex["answers"]:
            s_char = ex["answers"][0]["answer_start"]
            e_char = s_char + len(ex["answers"][0]["text"])
            ts = 0
            while seq[ts] != 1:
                ts += 1
            te = len(ids) - 1
            while seq[te] != 1:
                te -= 1
            if offsets[ts][0] <= s_char and offsets[te][1] >= e_char:
                while ts < len(offsets) and offsets[ts][0] <= s_char:
                    ts += 1
                start = ts - 1
                while offsets[te][1] >= e_char:
                    te -= 1
                end = te + 1
        feature = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        features.append({**feature, "start_positions": start, "end_positions": end})
    # prepare_validation_features
    venc = tokenize(test)
    vfeatures, vmeta = [], []
    for i in range(len(venc["input_ids"])):
        seq = venc.sequence_ids(i)
        vfeatures.append({k: venc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in venc})
        vmeta.append((venc["overflow_to_sample_mapping"][i],
                      [o if seq[k] == 1 else None for k, o in enumerate(venc["offset_mapping"][i])]))
    t_tokenised = time.perf_counter()

    peer = peer_trainer(model, tokenizer, features, default_data_collator,
                        Path(args.result).parent / f"peer-{args.mode}-trainer-seed{args.seed}", args.seed,
                        args.batch_size, EVAL_BATCH_SIZE, epochs=1, task=QA, lr=LR)
    out = peer.trainer.train()
    t_trained = time.perf_counter()
    model.eval()
    start_logits, end_logits = peer.trainer.predict(vfeatures).predictions[:2]
    # postprocess_qa_predictions
    by_example: Dict[int, List[int]] = {}
    for k, (example, _) in enumerate(vmeta):
        by_example.setdefault(example, []).append(k)
    predictions = {}
    for e, ex in enumerate(test):
        min_null, cands = None, []
        for k in by_example.get(e, []):
            s, en, offsets = start_logits[k], end_logits[k], vmeta[k][1]
            null = float(s[0] + en[0])
            if min_null is None or null < min_null:
                min_null = null
            for i in np.argsort(s)[-1:-N_BEST - 1:-1].tolist():
                for j in np.argsort(en)[-1:-N_BEST - 1:-1].tolist():
                    if i >= len(offsets) or j >= len(offsets) or offsets[i] is None or offsets[j] is None \
                            or len(offsets[i]) < 2 or len(offsets[j]) < 2:
                        continue
                    if j < i or j - i + 1 > MAX_ANSWER:
                        continue
                    cands.append((float(s[i] + en[j]), ex["context"][offsets[i][0]:offsets[j][1]]))
        cands.sort(key=lambda c: -c[0])
        cands = cands[:N_BEST]
        if not cands:
            predictions[ex["id"]] = ""
        elif v2 and min_null is not None and min_null - cands[0][0] > NULL_THRESHOLD:
            predictions[ex["id"]] = ""
        else:
            predictions[ex["id"]] = cands[0][1]
    scores = scores_of({ex["id"]: [a["text"] for a in ex["answers"]] for ex in test}, predictions)
    t_predicted = time.perf_counter()
    loop = peer_loop_figures(peer, out, len(train), unit="questions")
    result = {"mode": args.mode, "seed": args.seed, "questions": len(train), "train_windows": len(features),
              **loop, **scores, "test_questions": len(test), "test_windows": len(vfeatures),
              "padded_train_tokens": peer.padded["tokens"],
              "real_train_tokens": sum(sum(f["attention_mask"]) for f in features),
              "phases_seconds": {"imports": t_imported - t_start, "model_load": t_loaded - t_imported,
                                 "tokenisation": t_tokenised - t_loaded, "train": t_trained - t_tokenised,
                                 "predict_and_score": t_predicted - t_trained},
              **peer_setup_figures(peer, model)}
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))


# ============================================================================ tao

def tao_run(mode: str, files: Dict[str, Any], work: Path, tag: str, seed: int, args, env) -> Dict[str, Any]:
    """``tao question_answering train`` then ``evaluate`` on the test file; status.json figures."""
    folder = work / f"{tag}-tao"
    train_file, test_file = files[f"train_{mode}"]["file"], files[f"test_{mode}"]["file"]
    proc = run_tao(QA, ["train", "-r", str(folder), f"training_ds.file={train_file}",
                        f"validation_ds.file={test_file}", f"validation_ds.num_samples={args.val_questions}",
                        f"model.dataset.version_2_with_negative={'true' if mode == 'v2' else 'false'}",
                        f"model.dataset.max_seq_length={MAX_SEQ_LENGTH}", f"model.dataset.doc_stride={STRIDE}",
                        f"model.dataset.max_query_length={MAX_QUERY_LENGTH}", "trainer.max_epochs=1",
                        f"optim.lr={LR}", f"training_ds.batch_size={args.batch_size}", f"trainer.seed={seed}",
                        "trainer.enable_progress_bar=false", *args.tao_override],
                   env, work / f"{tag}-tao.log", "tao question_answering train")
    metrics = read_status(folder)["metrics"]
    ckpt = folder / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        ckpt.unlink()
    eval_folder = work / f"{tag}-eval"
    decoding = [f"decoding.n_best_size={N_BEST}", f"decoding.max_answer_length={MAX_ANSWER}",
                f"decoding.null_score_diff_threshold={NULL_THRESHOLD}"]
    eval_proc = run_tao(QA, ["evaluate", "-r", str(eval_folder), "-m", str(folder / "checkpoints" / "trained-model.tao"),
                             f"test_ds.file={test_file}", *decoding], env, work / f"{tag}-eval.log",
                        "tao question_answering evaluate")
    report = json.loads((eval_folder / "evaluation_report.json").read_text())
    sps = metrics.get("train_samples_per_sec")
    if sps is None or not metrics.get("train_windows"):
        die(f"tao's status.json lacks train_samples_per_sec / train_windows: {sorted(metrics)}")
    return {"train_process": proc, "eval_process": eval_proc, "metrics": metrics, **report,
            "questions": metrics["train_questions"], "train_windows": metrics["train_windows"],
            "questions_per_sec": sps * metrics["train_questions"] / metrics["train_windows"]}


# ============================================================================ runs

def run_mode(mode: str, args, work: Path, files: Dict[str, Any], encoder: Path, env, res: Dict[str, Any]) -> None:
    for run in range(1, args.runs + 1):
        seed = args.seed + run - 1
        rec: Dict[str, Any] = {"run": run, "seed": seed}
        for who in (["tao", "peer"] if run % 2 else ["peer", "tao"]):
            tag = f"{mode}-run{run}"
            if who == "tao":
                log(f"{mode} run {run}/{args.runs} seed {seed}: tao train + evaluate")
                t = rec["tao"] = tao_run(mode, files, work, tag, seed, args, env)
                log(f"  tao: {t['questions_per_sec']:.2f} questions/s, EM {t['exact']:.2f}, F1 {t['f1']:.2f}")
            else:
                log(f"{mode} run {run}/{args.runs} seed {seed}: peer (HF Trainer, run_qa recipe)")
                result = work / f"{tag}-peer.json"
                proc = run_worker(__file__, "peer", [
                    "--mode", mode, "--encoder", str(encoder), "--train-file", files[f"train_{mode}"]["file"],
                    "--test-file", files[f"test_{mode}"]["file"], "--seed", str(seed),
                    "--batch-size", str(args.batch_size), "--result", str(result)], env, work / f"{tag}-peer.log",
                    "the peer")
                p = rec["peer"] = {**json.loads(result.read_text()), "process": proc}
                log(f"  peer: {p['questions_per_sec']:.2f} questions/s, EM {p['exact']:.2f}, F1 {p['f1']:.2f}")
        res[mode]["runs"].append(rec)


def summarize(res: Dict[str, Any]) -> None:
    for mode in res["args"]["modes"]:
        runs = res[mode]["runs"]
        s: Dict[str, Any] = {}
        for who in ("tao", "peer"):
            for key in ("exact", "f1", "HasAns_f1", "NoAns_f1", "questions_per_sec"):
                values = [r[who][key] for r in runs if key in r[who]]
                s[f"{who}_{key}"] = median(values) if values else None
            s[f"{who}_wall"] = median([r[who]["train_process" if who == "tao" else "process"]["wall_seconds"]
                                       for r in runs])
        s["speedup"] = s["tao_questions_per_sec"] / s["peer_questions_per_sec"]
        s["targets_met"] = {"exact": s["tao_exact"] >= s["peer_exact"], "f1": s["tao_f1"] >= s["peer_f1"],
                            "throughput": s["speedup"] >= TARGET_SPEEDUP}
        s["contended_runs"] = [r["run"] for r in runs if contended(r["tao"]["train_process"])
                               or contended(r["peer"]["process"])]
        res[mode]["summary"] = s


TITLES = {"v2": "SQuAD v2.0 (all questions, null answer allowed)",
          "v1": "SQuAD v1.1 mode (answerable questions only, no null answer)"}


def markdown(res: Dict[str, Any]) -> str:
    lines = header_lines("tao question_answering vs the Hugging Face Trainer (run_qa recipe)", res)
    a = res["args"]
    lines += [f"Train: the sample's first {TRAIN_ARTICLES} articles; test: the other "
              f"{res['files']['test_v2']['articles']}. 1 epoch, lr {LR}, batch {a['batch_size']}, max_seq_length "
              f"{MAX_SEQ_LENGTH}; tao doc_stride {STRIDE} (step between windows, NeMo), peer stride {STRIDE} "
              f"(overlap, HF) padded to {MAX_SEQ_LENGTH}; n-best {N_BEST}, max answer {MAX_ANSWER}, null threshold "
              f"{NULL_THRESHOLD}; official SQuAD v2.0 scoring (percent). Medians of {a['runs']} run(s).", ""]
    for mode in a["modes"]:
        s = res[mode]["summary"]
        f = res["files"]
        lines += [f"### {TITLES[mode]}: {f[f'train_{mode}']['questions']} training questions, "
                  f"{f[f'test_{mode}']['questions']} test questions ({f[f'test_{mode}']['unanswerable']} unanswerable)", "",
                  "| | tao | peer (HF Trainer) | tao - peer / ratio | target | |", "|---|---|---|---|---|---|"]
        for key, what in (("exact", "exact match"), ("f1", "F1"), ("HasAns_f1", "HasAns F1"), ("NoAns_f1", "NoAns F1")):
            t, p = s[f"tao_{key}"], s[f"peer_{key}"]
            if t is None or p is None:
                continue
            target = key in ("exact", "f1")
            lines.append(f"| {what} | {fmt(t, 2)} | {fmt(p, 2)} | {t - p:+.2f} | {'tao >= peer' if target else ''} | "
                         f"{verdict(t >= p) if target else ''} |")
        lines.append(f"| training loop throughput, questions/s | {fmt(s['tao_questions_per_sec'], 2)} | "
                     f"{fmt(s['peer_questions_per_sec'], 2)} | {fmt(s['speedup'], 2)}x | >= {TARGET_SPEEDUP}x | "
                     f"{verdict(s['speedup'] >= TARGET_SPEEDUP)} |")
        lines.append(f"| train command as a whole process, wall s | {fmt(s['tao_wall'])} | {fmt(s['peer_wall'])} | "
                     f"{fmt(s['peer_wall'] / s['tao_wall'], 2)}x | | |")
        r0 = res[mode]["runs"][0]
        lines += ["", f"Run 1: tao {r0['tao']['train_windows']} training windows, peer {r0['peer']['train_windows']} "
                      f"(padded tokens {r0['peer']['padded_train_tokens']} for {r0['peer']['real_train_tokens']} "
                      f"real). Peer phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r0["peer"]["phases_seconds"].items())
                  + "."]
        if s["contended_runs"]:
            lines.append(f"Runs {s['contended_runs']} were measured while other processes used the CPU: their "
                         f"throughput is not comparable.")
        lines.append("")
    return "\n".join(lines) + "\n"


# ============================================================================ main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1, help="runs per mode; medians are reported (default 1)")
    p.add_argument("--modes", default="v2,v1", help="v2, v1 or v2,v1 (default both)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default benchmarks/out/)")
    p.add_argument("--seed", type=int, default=42, help="seed of run 1; run k uses seed+k-1")
    p.add_argument("--batch-size", type=int, default=24, help="training batch size, both systems (default 24: tao's)")
    p.add_argument("--max-questions", type=int, help="train on the first N questions only (v1 mode: the answerable ones "
                                                     "of those N)")
    p.add_argument("--max-test-questions", type=int, help="test on the first N questions only (v1 mode: the "
                                                          "answerable ones of those N; quick checks)")
    p.add_argument("--val-questions", type=int, default=64,
                   help="tao's per-epoch validation questions (not timed; 1 epoch, so it picks nothing)")
    p.add_argument("--squad-file", type=Path, default=DEFAULT_SQUAD, help="the SQuAD v2.0 sample (or $SQUAD_V2_SAMPLE)")
    p.add_argument("--tao-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra spec override for tao train (experiments only; reported figures use none)")
    p.add_argument("--worker", choices=("peer",), help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--encoder", help=argparse.SUPPRESS)
    p.add_argument("--train-file", help=argparse.SUPPRESS)
    p.add_argument("--test-file", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    if args.worker == "peer":
        peer_worker(args)
        return 0
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or any(m not in TITLES for m in args.modes):
        die("--modes takes v2, v1 or v2,v1")
    if args.runs < 1:
        die("--runs must be at least 1")
    if not args.squad_file.is_file():
        die(f"{args.squad_file} not found: pass --squad-file FILE or set SQUAD_V2_SAMPLE")
    encoder = offline_encoder()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = prepare_workdir(out, WORK)
    env = bench_env()
    res: Dict[str, Any] = {**result_header(__file__, argv, args, ("mode", "encoder", "train_file", "test_file", "result")),
                           "encoder": str(encoder), "squad_file": str(args.squad_file.resolve()),
                           "tao_optim_defaults": tao_optim_defaults(QA)}
    res["files"] = split_sample(args.squad_file, work, args.max_questions, args.max_test_questions)
    log(f"machine: {res['machine'].get('cpu_model')}, {res['machine']['cpu_count']} cores; load {loadavg()}")
    for mode in args.modes:
        res[mode] = {"runs": []}
        run_mode(mode, args, work, res["files"], encoder, env, res)
    return finish_results(out, STEM, res, summarize, markdown)


if __name__ == "__main__":
    sys.exit(main())

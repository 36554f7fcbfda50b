"""Whole-process wall time of the commands that do not train (issue 12, section 5), and of one short train.

Each command runs as a user runs it, through the real `tao` CLI with the local runner, in a fresh
process and a fresh results folder; N runs each (default 5), medians reported. With ``--before TREE``
(a checkout of an earlier tao, e.g. ``git worktree add /tmp/tao-before <commit>``) the same commands
also run with that tree's ``tao_launcher`` first on PYTHONPATH, alternating with this one, so both
see the same machine:

    flock /tmp/tao-cpu.lock python benchmarks/bench_commands.py [--runs 5] [--before /tmp/tao-before]

The model is a text_classification archive of the packaged encoder (all-MiniLM-L6-v2, 6 layers, 22M
parameters) with an untrained head, written by this script: the commands' work does not depend on
what the weights learned. Output: a markdown table on stdout, ``DIR/bench_commands.json`` and
``DIR/bench_commands.md`` (``DIR``: ``--out``, default benchmarks/out/).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (DEFAULT_OUT, REPO, bench_env, fmt, log, machine_info, median, now,  # noqa: E402
                          prepare_workdir, run_logged, tao_cli)

TASK = "text_classification"
SAMPLE = REPO / "tao_launcher" / "samples" / "sst2_sample"
SENTENCES = '["a warm , funny and moving film .", "two hours i will never get back ."]'


def commands(work: Path, model: Path) -> Dict[str, List[str]]:
    """name -> the tao arguments (without -r, added per run)."""
    return {
        "tao --help": ["--help"],
        "dataset_convert (sample, 300 lines)": [TASK, "dataset_convert", f"source_data_dir={SAMPLE}",
                                                 "target_data_dir={run}/data"],
        "infer (2 sentences)": [TASK, "infer", "-m", str(model), f"input_batch={SENTENCES}"],
        "evaluate (sample dev, 60 sentences)": [TASK, "evaluate", "-m", str(model),
                                                f"test_ds.file_path={work / 'data' / 'dev.tsv'}"],
        "export (export_format=ONNX)": [TASK, "export", "-m", str(model), "export_format=ONNX"],
        # start-up, data, one epoch over the sample's 240 sentences, validation, the archive and the plots
        "train (sample, 1 epoch)": [TASK, "train", f"training_ds.file_path={work / 'data' / 'train.tsv'}",
                                    f"validation_ds.file_path={work / 'data' / 'dev.tsv'}",
                                    "model.dataset.num_classes=2", "trainer.max_epochs=1"],
    }


def write_model(work: Path) -> Path:
    """An archive of the packaged encoder with a fresh head, written the way train writes one."""
    from tao_launcher.core.encoders import resolve_encoder
    from tao_launcher.core.model import write_model_archive
    from tao_launcher.nlp.encoder import load_encoder, load_tokenizer
    from tao_launcher.nlp.model import write_payload
    from tao_launcher.tasks.text_classification.model import TextClassifier

    folder = resolve_encoder("all-minilm-l6-v2")
    config = {"num_classes": 2, "label_names": ["negative", "positive"], "max_seq_length": 128,
              "class_balancing": None, "num_output_layers": 2, "fc_dropout": 0.1, "pooling": "mean",
              "pretrained_model_name": "all-minilm-l6-v2"}
    net, tokenizer = TextClassifier(load_encoder(folder), config).eval(), load_tokenizer(folder)
    model = work / "model.tao"
    write_model_archive(model, bench_env()["TAO_KEY"], kind="tao", task=TASK, metrics=None,
                        write_payload=lambda out: write_payload(out, net, tokenizer))
    return model


def measure(args) -> Dict:
    work = prepare_workdir(args.out, "commands-work")
    env = {**bench_env(), "TAO_RUNNER": "local"}
    env.pop("PYTHONPATH", None)
    trees = {"after": (REPO, env)}
    if args.before:
        trees = {"before": (args.before, {**env, "PYTHONPATH": str(args.before)}), **trees}
    for tree, (tree_dir, tree_env) in trees.items():  # each tree's processes import its own tao_launcher
        found = subprocess.run([sys.executable, "-c", "import tao_launcher; print(tao_launcher.__file__)"],
                               env=tree_env, cwd=tree_dir, capture_output=True, text=True).stdout.strip()
        if not found.startswith(str(Path(tree_dir).resolve())):
            sys.exit(f"the {tree} tree's processes would import {found}, not {tree_dir}")
    model = write_model(work)
    run_logged([tao_cli(), TASK, "dataset_convert", "-r", str(work / "convert"), f"source_data_dir={SAMPLE}",
                f"target_data_dir={work / 'data'}"], env, work / "convert.log", "dataset_convert of the sample")
    results: Dict[str, Dict[str, List[Dict]]] = {}
    for name, argv in commands(work, model).items():
        results[name] = {tree: [] for tree in trees}
        for i in range(args.runs):
            for tree, (tree_dir, tree_env) in (trees.items() if i % 2 == 0 else reversed(list(trees.items()))):
                run = work / f"{tree}-{len(results)}-{i}"
                cmd = [tao_cli(), *[a.replace("{run}", str(run)) for a in argv]]
                if argv != ["--help"]:
                    cmd[3:3] = ["-r", str(run)]
                # cwd: the runner starts `python -m tao_launcher.entrypoint`, which finds tao_launcher in cwd first
                figures = run_logged(cmd, tree_env, work / f"{run.name}.log", f"{name} ({tree})", cwd=tree_dir)
                results[name][tree].append(figures)
                log(f"{name:40s} {tree:6s} run {i + 1}: {figures['wall_seconds']:.2f} s")
    return {"started": now(), "command": "python " + " ".join([os.path.relpath(__file__, REPO)] + sys.argv[1:]),
            "runs": args.runs, "trees": {t: str(p) for t, (p, _) in trees.items()}, "machine": machine_info(),
            "results": results}


def report(data: Dict) -> str:
    trees = list(data["trees"])
    head = "| command | " + " | ".join(f"{t}: median wall s (min-max)" for t in trees) + " |"
    lines = [head, "|" + "---|" * (len(trees) + 1)]
    for name, per_tree in data["results"].items():
        cells = []
        for tree in trees:
            walls = [r["wall_seconds"] for r in per_tree[tree]]
            cells.append(f"{fmt(median(walls), 2)} ({fmt(min(walls), 2)}-{fmt(max(walls), 2)})")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    others = [r["other_cores"] for per_tree in data["results"].values() for runs in per_tree.values() for r in runs
              if "other_cores" in r]
    m = data["machine"]
    lines += ["", f"{data['runs']} runs each, {m.get('cpu_model')} x {m.get('cpu_count')}, {m.get('os')}, "
              f"torch {m['versions'].get('torch')}, transformers {m['versions'].get('transformers')}; "
              f"other processes used {fmt(median(others), 2) if others else 'n/a'} cores (median) while measuring."]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, help="a checkout of an earlier tao to compare with")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.before and not (args.before / "tao_launcher" / "__init__.py").is_file():
        sys.exit(f"--before {args.before} holds no tao_launcher/: pass a checkout of tao")
    data = measure(args)
    table = report(data)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_commands.json").write_text(json.dumps(data, indent=2, default=str))
    (args.out / "bench_commands.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()

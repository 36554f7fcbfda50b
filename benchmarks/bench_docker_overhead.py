#!/usr/bin/env python
"""What the Docker runner costs over the local runner, on the lightest subtask (download_specs).

    python benchmarks/bench_docker_overhead.py [--runs 7] [--out DIR]

In one run, N rounds; in each round, in a rotating order, one command of each kind, every one
a fresh process timed from start to exit (wall clock):

- local     ``tao text_classification download_specs -o /bench/specs --overwrite -g 0 --runner local``
- docker    the same command with ``--runner docker`` (create, attach, start, wait, remove)
- peer      the ``docker run --rm ...`` line that ``tao ... --dry-run`` prints for that command, run
            by the docker CLI: what the same container costs without tao's runner around it
- fallbacks ``--runner docker`` with ``-g 1`` and the default ulimits: on an engine without an
            NVIDIA runtime that may not raise memlock (a sandbox like ours), tao's two fallbacks
            (a refused start each) are part of the cost; where the engine allows both, it equals docker

``-g 0`` and ulimits this engine may set (``DockerOptions.ulimits``: memlock at the engine's own
hard limit, read from /proc, stack 64 MiB) keep local, docker and peer the same container.
Reported: the median of each, and docker - local (the runner's overhead) and docker - peer
(what tao adds over a hand-written docker run). Needs a Docker Engine and the image
(``make image-offline``). Writes DIR/bench_docker_overhead.json and .md (DIR: benchmarks/out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TAO = [sys.executable, "-c", "import sys; sys.argv[0] = 'tao'; from tao_launcher.launcher.cli import run; run()"]
COMMAND = ["text_classification", "download_specs", "-o", "/bench/specs", "--overwrite"]


def memlock_hard_limit() -> int:
    """This machine's hard memlock limit in bytes (-1: unlimited); a container may not exceed it here."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return -1 if hard == resource.RLIM_INFINITY else hard


def timed(argv, env) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_docker_overhead: {' '.join(argv[:4])}... exited {proc.returncode}:\n{proc.stderr}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args(argv)

    import tao_launcher
    from tao_launcher.registry import TASKS

    work = Path(tempfile.mkdtemp(prefix="tao-bench-docker-"))
    (work / "bench").mkdir()
    mounts = {"Mounts": [{"source": str(work / "bench"), "destination": "/bench"}]}
    (work / "defaults.json").write_text(json.dumps(mounts))
    mounts["DockerOptions"] = {"ulimits": {"memlock": memlock_hard_limit(), "stack": 67108864}}
    (work / "mounts.json").write_text(json.dumps(mounts))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAO_")}
    env.update(TAO_MOUNTS_FILE=str(work / "mounts.json"), PYTHONUNBUFFERED="1")
    local = TAO + COMMAND + ["-g", "0", "--runner", "local"]
    docker = TAO + COMMAND + ["-g", "0", "--runner", "docker"]
    fallbacks = ["env", f"TAO_MOUNTS_FILE={work / 'defaults.json'}"] + TAO + COMMAND + ["--runner", "docker"]
    dry = subprocess.run(docker + ["--dry-run"], env=env, capture_output=True, text=True)
    if dry.returncode != 0:
        sys.exit(f"bench_docker_overhead: the dry run failed (is the engine up and the image built?):\n{dry.stderr}")
    peer = shlex.split(dry.stdout.strip().splitlines()[-1])
    peer[0] = shutil.which("docker") or "docker"
    kinds = {"local": local, "docker": docker, "peer": peer, "fallbacks": fallbacks}
    for argv_ in kinds.values():   # warm-up: page cache, image layers, Python bytecode
        timed(argv_, env)
    times = {k: [] for k in kinds}
    order = list(kinds)
    for r in range(args.runs):
        for kind in order[r % len(order):] + order[:r % len(order)]:
            times[kind].append(timed(kinds[kind], env))
    shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    docker_version = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                                    capture_output=True, text=True).stdout.strip()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "runs": args.runs, "tao_version": tao_launcher.__version__,
        "image": TASKS["text_classification"].image, "docker_server": docker_version,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "load_before_and_after": os.getloadavg(), "seconds": times, "median_s": med,
        "docker_minus_local_s": med["docker"] - med["local"], "docker_minus_peer_s": med["docker"] - med["peer"],
        "fallbacks_minus_docker_s": med["fallbacks"] - med["docker"],
        "peer_command": " ".join(shlex.quote(a) for a in peer),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_docker_overhead.json").write_text(json.dumps(result, indent=2))
    table = "\n".join([
        f"Docker runner overhead, `tao text_classification download_specs`, {args.runs} rounds, median wall seconds",
        "",
        "| runner | median s | runs (s) |", "|---|---|---|",
        *(f"| {k} | {med[k]:.2f} | {' / '.join(f'{t:.2f}' for t in times[k])} |" for k in kinds),
        "",
        f"docker - local: {result['docker_minus_local_s']:+.2f} s; docker - peer (plain docker run): "
        f"{result['docker_minus_peer_s']:+.2f} s; fallbacks - docker: {result['fallbacks_minus_docker_s']:+.2f} s",
    ])
    (args.out / "bench_docker_overhead.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

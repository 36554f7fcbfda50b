#!/usr/bin/env python
"""Benchmark ``tao serve`` (a real Triton server) against a hand-written model server, on SST-2 (CPU).

    python benchmarks/bench_serving.py [--runs 3] [--seconds 8] [--clients 1,4,16] [--train-samples 4000] [--out DIR]

One text_classification model, trained here by ``tao text_classification train`` on the first --train-samples
SST-2 sentences (1 epoch), then exported twice: ``export_format=TRITON`` (served by ``tao serve`` with
``--riva-port``) and ``export_format=HF`` (served by the peer). Measured, in one run, side by side:

a. accuracy  every SST-2 dev sentence (872) through the served model (Triton HTTP, batches of 16) and through
             the peer: a working model scores well above the majority class (0.51), an empty one does not.
b. load      a bounded closed loop: C client threads (--clients, default 1, 4 and 16), each sending one-sentence
             requests (dev sentences in turn) for --seconds, --runs times, systems interleaved within a run;
             requests/s, p50 and p99 latency (ms), medians over runs. Systems: Triton's KServe v2 HTTP (raw JSON,
             keep-alive), Triton's gRPC (tritonclient), Riva's API (riva.client ClassifyText) -- all three the same
             ``tao serve`` -- and the peer: ``transformers.pipeline("text-classification")`` behind Python's
             ThreadingHTTPServer in one process, what a user writes by hand (benchmarks/README.md).
c. the CLI   ``tao text_classification infer_onnx`` for one sentence, a whole process per request (--runs times).

Client threads run on the same 2 cores as the servers (there is no other machine), so every system pays the same
client cost. Writes <out>/bench_serving.json and .md; work files go to <out>/work/.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

from bench_common import (DEFAULT_OUT, bench_env, die, finish_results, fmt, header_lines, log, median,
                          offline_encoder, prepare_workdir, result_header, run_tao, tao_cli, verdict)

DEFAULT_SST2 = Path(os.environ.get("SST2_DIR", "/work/shared/datasets/sst2"))
STEM = "bench_serving"
TASK = "text_classification"
KEY = "bench-serving-key"
TARGET_THROUGHPUT_X = 3.0   # at 16 clients, against the hand-written server
TARGET_P50_MS = 20.0        # one sentence, one client
READY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_tsv(path: Path, limit: int = -1) -> List[tuple]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        sentence, _, label = line.rpartition("\t")
        if number == 0 or not sentence:
            continue
        rows.append((sentence, int(label)))
        if 0 < limit <= len(rows):
            break
    return rows


# ============================================================================ the peer (a worker process)

def peer_server(args) -> None:
    """``transformers.pipeline`` behind ThreadingHTTPServer: POST / {"text": ...} -> {"label", "score"}."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from transformers import pipeline

    classify = pipeline("text-classification", model=args.model, trust_remote_code=True, device="cpu")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm and the client's delayed
        # ACK hold every answer ~40 ms (measured: p50 68 ms at 1 client instead of ~25)
        disable_nagle_algorithm = True

        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            texts = body["text"] if isinstance(body["text"], list) else [body["text"]]
            answer = json.dumps(classify(texts)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_):
            pass

    ThreadingHTTPServer.request_queue_size = 128  # the default backlog, 5, resets connections at 16 clients
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


# ============================================================================ clients

def http_post(connection: http.client.HTTPConnection, path: str, body: Dict) -> Dict:
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    reply = connection.getresponse()
    data = reply.read()
    if reply.status != 200:
        raise RuntimeError(f"{path}: HTTP {reply.status}: {data[:200]!r}")
    return json.loads(data)


def triton_http(port: int) -> Callable[[], Callable[[str], str]]:
    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def ask(text: str) -> str:
            out = http_post(connection, f"/v2/models/{TASK}/infer", {"inputs": [
                {"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": [text]}]})
            return json.loads(out["outputs"][0]["data"][0])["label"]
        return ask
    return client


def triton_grpc(port: int) -> Callable[[], Callable[[str], str]]:
    def client():
        import numpy as np
        import tritonclient.grpc as grpc_client

        connection = grpc_client.InferenceServerClient(f"127.0.0.1:{port}")

        def ask(text: str) -> str:
            tensor = grpc_client.InferInput("TEXT", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[text]], dtype=np.object_))
            result = connection.infer(TASK, [tensor])
            return json.loads(result.as_numpy("ANSWER")[0][0])["label"]
        return ask
    return client


def riva_api(port: int) -> Callable[[], Callable[[str], str]]:
    def client():
        import riva.client

        service = riva.client.NLPService(riva.client.Auth(uri=f"127.0.0.1:{port}"))

        def ask(text: str) -> str:
            return service.classify_text([text], TASK).results[0].labels[0].class_name
        return ask
    return client


def peer_http(port: int) -> Callable[[], Callable[[str], str]]:
    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def ask(text: str) -> str:
            return http_post(connection, "/", {"text": text})[0]["label"]
        return ask
    return client


def closed_loop(make_client: Callable, sentences: List[str], clients: int, seconds: float) -> Dict[str, float]:
    """``clients`` threads each send one request after another for ``seconds`` (bounded: the loop stops by time,
    and each thread by at most 100,000 requests); requests/s and latency percentiles."""
    latencies: List[List[float]] = [[] for _ in range(clients)]
    errors: List[str] = []
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def run(number: int) -> None:
        try:
            ask = make_client()
            ask(sentences[number % len(sentences)])  # connect and warm, not timed
        except Exception as err:  # noqa: BLE001 - reported below; the others must not wait for this one
            errors.append(f"warm-up: {str(err)[:200]}")
            start.abort()
            return
        try:
            start.wait()
        except threading.BrokenBarrierError:
            return
        i = number
        while time.perf_counter() < stop_at[0] and len(latencies[number]) < 100_000:
            t0 = time.perf_counter()
            try:
                ask(sentences[i % len(sentences)])
            except Exception as err:  # noqa: BLE001 - counted and reported
                errors.append(str(err)[:200])
                return
            latencies[number].append(time.perf_counter() - t0)
            i += clients

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(clients)]
    stop_at[0] = time.perf_counter() + 3600
    for thread in threads:
        thread.start()
    try:
        start.wait(timeout=120)
    except threading.BrokenBarrierError:
        die(f"a client could not start: {errors[:3]}")
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    every = sorted(x for per in latencies for x in per)
    if errors or not every:
        die(f"requests failed: {errors[:3]}")
    pick = lambda q: every[min(len(every) - 1, int(q * len(every)))] * 1000  # noqa: E731
    return {"requests": len(every), "requests_per_s": len(every) / wall, "p50_ms": pick(0.50), "p99_ms": pick(0.99)}


# ============================================================================ the benchmark

def wait_ready(port: int, proc: subprocess.Popen, path: str, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            die(f"{what} exited {proc.returncode} before it was ready")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET" if path.startswith("/v2") else "POST", path,
                               None if path.startswith("/v2") else json.dumps({"text": "warm"}))
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    die(f"{what} was not ready within {READY_TIMEOUT_S} s")


def accuracy(ask_batch: Callable[[List[str]], List[str]], dev: List[tuple], names: List[str]) -> float:
    right = 0
    for start in range(0, len(dev), 16):
        chunk = dev[start:start + 16]
        labels = ask_batch([s for s, _ in chunk])
        right += sum(names.index(label) == gold for label, (_, gold) in zip(labels, chunk))
    return right / len(dev)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--train-samples", type=int, default=4000)
    parser.add_argument("--sst2", type=Path, default=DEFAULT_SST2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", choices=["peer"])
    parser.add_argument("--model")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    if args.worker == "peer":
        peer_server(args)
        return 0
    if not (args.sst2 / "train.tsv").exists():
        die(f"SST-2 is not at {args.sst2} (set SST2_DIR or --sst2)")
    clients = [int(c) for c in args.clients.split(",")]
    res: Dict[str, Any] = result_header(__file__, argv, args, ["worker", "model", "port"])
    work = prepare_workdir(args.out)
    env = dict(bench_env(), TAO_KEY=KEY)
    encoder = offline_encoder()

    # --- the model: trained here, exported twice
    train = read_tsv(args.sst2 / "train.tsv", args.train_samples)
    (work / "train.tsv").write_text("".join(f"{s}\t{label}\n" for s, label in train), encoding="utf-8")
    (work / "labels.txt").write_text("negative\npositive\n")
    model = work / "train" / "checkpoints" / "trained-model.tao"
    run_tao(TASK, ["train", "-r", str(work / "train"), f"model.language_model.pretrained_model_name={encoder}",
                   f"model.class_labels.class_labels_file={work / 'labels.txt'}",
                   f"training_ds.file_path={work / 'train.tsv'}", f"validation_ds.file_path={args.sst2 / 'dev.tsv'}",
                   "trainer.max_epochs=1", "training_ds.batch_size=32", "model.dataset.max_seq_length=128",
                   "trainer.enable_progress_bar=false"], env, work / "train.log", "tao train")
    run_tao(TASK, ["export", "-r", str(work / "export-triton"), "-m", str(model), "export_format=TRITON"], env,
            work / "export-triton.log", "tao export TRITON")
    run_tao(TASK, ["export", "-r", str(work / "export-hf"), "-m", str(model), "export_format=HF"], env,
            work / "export-hf.log", "tao export HF")
    dev = read_tsv(args.sst2 / "dev.tsv")
    sentences = [s for s, _ in dev]

    # --- the servers
    ports = {"http": free_port(), "grpc": free_port(), "riva": free_port(), "peer": free_port()}
    serve = subprocess.Popen([tao_cli(), "serve", "-m", str(work / "export-triton" / "exported-model-triton"),
                              "-r", str(work / "serve"), "--http-port", str(ports["http"]),
                              "--grpc-port", str(ports["grpc"]), "--riva-port", str(ports["riva"])],
                             env=env, stdout=open(work / "serve.log", "w"), stderr=subprocess.STDOUT)
    peer = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", "peer", "--model",
                             str(work / "export-hf" / "exported-model-hf"), "--port", str(ports["peer"])],
                            env=env, stdout=open(work / "peer.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_ready(ports["http"], serve, f"/v2/models/{TASK}/ready", "tao serve")
        while "Ctrl-C" not in (work / "serve.log").read_text():  # Riva's API is up once tao serve says so
            if serve.poll() is not None:
                die("tao serve exited while starting Riva's API")
            time.sleep(0.5)
        wait_ready(ports["peer"], peer, "/", "the peer server")
        names = ["negative", "positive"]
        http_conn = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=120)
        peer_conn = http.client.HTTPConnection("127.0.0.1", ports["peer"], timeout=120)
        served = lambda texts: [json.loads(x)["label"] for x in http_post(  # noqa: E731
            http_conn, f"/v2/models/{TASK}/infer", {"inputs": [{"name": "TEXT", "shape": [len(texts), 1],
                                                                "datatype": "BYTES", "data": texts}]})
            ["outputs"][0]["data"]]
        peer_labels = json.loads((work / "export-hf" / "exported-model-hf" / "config.json").read_text())["id2label"]
        by_peer = lambda texts: [peer_labels[str(int(r["label"].split("_")[-1]))] if r["label"].startswith("LABEL_")  # noqa: E731
                                 else r["label"] for r in http_post(peer_conn, "/", {"text": texts})]
        res["accuracy"] = {"tao serve": accuracy(served, dev, names), "peer": accuracy(by_peer, dev, names),
                           "majority_class": max(sum(g for _, g in dev), len(dev) - sum(g for _, g in dev)) / len(dev),
                           "sentences": len(dev)}
        log(f"accuracy: {res['accuracy']}")

        systems = {"Triton HTTP (tao serve)": triton_http(ports["http"]),
                   "Triton gRPC (tao serve)": triton_grpc(ports["grpc"]),
                   "Riva API (tao serve)": riva_api(ports["riva"]),
                   "pipeline + ThreadingHTTPServer (peer)": peer_http(ports["peer"])}
        runs: Dict[str, Dict[int, List[Dict[str, float]]]] = {s: {c: [] for c in clients} for s in systems}
        for run in range(args.runs):
            for c in clients:
                for name, make in systems.items():
                    figures = closed_loop(make, sentences, c, args.seconds)
                    runs[name][c].append(figures)
                    log(f"run {run + 1} {name} clients={c}: {figures}")
        res["load"] = {name: {str(c): {k: median([r[k] for r in per[c]]) for k in per[c][0]} for c in clients}
                       for name, per in runs.items()}
        res["load_runs"] = runs
    finally:
        for proc in (serve, peer):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if proc is serve else signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()

    # --- the CLI, a process per request
    walls = []
    for run in range(args.runs):
        figures = run_tao(TASK, ["infer_onnx", "-r", str(work / f"infer_onnx-{run}"), "-m",
                                 str(work / "export-triton" / "exported-model-triton" / TASK / "1" / "model.eonnx"),
                                 "input_batch=" + json.dumps([sentences[run]])], env, work / "infer_onnx.log",
                          "tao infer_onnx")
        walls.append(figures["wall_seconds"])
    res["infer_onnx_per_request_s"] = median(walls)
    return finish_results(args.out, STEM, res, summarize, markdown)


def summarize(res: Dict[str, Any]) -> None:
    load = res["load"]
    top = max(load["pipeline + ThreadingHTTPServer (peer)"], key=int)
    peer = load["pipeline + ThreadingHTTPServer (peer)"][top]["requests_per_s"]
    best = max(load[s][top]["requests_per_s"] for s in load if "tao serve" in s)
    res["throughput_x_at_most_clients"] = best / peer
    res["p50_ms_one_client_http"] = load["Triton HTTP (tao serve)"].get("1", {}).get("p50_ms")


def markdown(res: Dict[str, Any]) -> str:
    acc = res["accuracy"]
    lines = header_lines("tao serve against a hand-written pipeline server (SST-2, text_classification)", res)
    lines += [f"Accuracy on the {acc['sentences']} dev sentences: tao serve {acc['tao serve']:.4f}, the peer "
              f"{acc['peer']:.4f} (majority class {acc['majority_class']:.4f}).", "",
              "| system | clients | requests/s | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    for name, per in res["load"].items():
        for c, f in per.items():
            lines.append(f"| {name} | {c} | {fmt(f['requests_per_s'])} | {fmt(f['p50_ms'])} | {fmt(f['p99_ms'])} |")
    lines += ["", f"`tao text_classification infer_onnx`, one sentence, a process per request: "
                  f"{res['infer_onnx_per_request_s']:.2f} s.", "",
              f"Goal: at the most clients, >= {TARGET_THROUGHPUT_X:.0f}x the peer's throughput: "
              f"{res['throughput_x_at_most_clients']:.2f}x, {verdict(res['throughput_x_at_most_clients'] >= TARGET_THROUGHPUT_X)}; "
              f"p50 under {TARGET_P50_MS:.0f} ms at 1 client (Triton HTTP): {fmt(res['p50_ms_one_client_http'])} ms, "
              f"{verdict((res['p50_ms_one_client_http'] or 1e9) < TARGET_P50_MS)}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

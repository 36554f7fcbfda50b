"""``tao serve`` on a real Triton Inference Server (the pytriton wheel's tritonserver 2.51, python backend, CPU).

One server for the module serves a model of each of the six tasks (tiny random networks: what matters here is
that the served answers are infer_onnx's, not what a network learned). For each task the answers from
tritonclient's HTTP and gRPC clients and from one raw KServe v2 JSON request equal ``tao <task> infer_onnx`` on
the same inputs. The faults (wrong key, a port in use, SIGTERM, ``kill -9`` of tao serve) each start a server of
their own, of one small model.

Needs the serving environment (``make serve-env``; ``TAO_SERVE_ENV`` names another): the tests skip without it,
and fail under ``TAO_REQUIRE_SERVING=1`` (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nlp"))

from conftest import KEY, REPO, TAO, assert_error, sine_wav, status, tao, tao_env, tiny_speech_archive  # noqa: E402
from tiny_models import tiny_archive  # noqa: E402

REQUIRED = os.environ.get("TAO_REQUIRE_SERVING") == "1"
SERVE_ENV = os.environ.get("TAO_SERVE_ENV") or str(REPO / ".serve-venv")
START_TIMEOUT_S = 240


def serve_env_or_skip() -> None:
    probe = Path(SERVE_ENV) / "bin" / "python"
    reason = None
    if not probe.exists():
        reason = f"no serving environment at {SERVE_ENV} (make serve-env builds it)"
    else:
        ok = subprocess.run([str(probe), "-c", "import pytriton, onnxruntime, tao_launcher"], capture_output=True)
        if ok.returncode != 0:
            reason = f"the serving environment {SERVE_ENV} is incomplete (make serve-env)"
    if reason:
        if REQUIRED:
            pytest.fail(f"{reason}; TAO_REQUIRE_SERVING=1 says these tests must run here")
        pytest.skip(reason)


def env() -> dict:
    return tao_env(TAO_SERVE_ENV=SERVE_ENV, TAO_KEY=KEY)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


TEXTS = {
    "text_classification": ["a fine movie with a good cast", "dull"],
    "token_classification": ["Jim lives in Paris", "hello world"],
    "punctuation_and_capitalization": ["hello how are you", "what is this"],
    "intent_slot_classification": ["show flights to boston", "cheapest airfare"],
}
QUESTIONS = [{"question": "where does jim live", "context": "Jim lives in Paris and works in Lyon."},
             {"question": "who works in lyon", "context": "Jim works in Lyon. Ann works in Nice."}]


class Server:
    """A running ``tao serve`` (its process, ports and results folder)."""

    def __init__(self, repositories, folder: Path, *extra: str, key: str | None = KEY):
        self.http, self.grpc = free_port(), free_port()
        self.results = folder
        args = [*TAO, "serve", *(a for r in repositories for a in ("-m", str(r))), "-r", str(folder),
                "--http-port", str(self.http), "--grpc-port", str(self.grpc), *extra]
        environment = env() if key == KEY else tao_env(TAO_SERVE_ENV=SERVE_ENV, **({"TAO_KEY": key} if key else {}))
        self.proc = subprocess.Popen(args, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tao serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
            if (self.results / "status.json").exists() and status(self.results).get("state") == "serving":
                return
            time.sleep(0.25)
        raise AssertionError("tao serve was not ready in time")

    def server_pid(self) -> int:
        return status(self.results)["server_pid"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A TRITON export of a tiny model of every task: {task: (repository, the model.eonnx inside it)}."""
    serve_env_or_skip()
    root = tmp_path_factory.mktemp("serving")
    out = {}
    for task in [*TEXTS, "question_answering", "speech_to_text"]:
        archive = root / f"{task}.tao"
        if task == "speech_to_text":
            tiny_speech_archive(archive)
        else:
            tiny_archive(task, archive, KEY)
        results = root / f"export-{task}"
        tao(task, "export", "-r", results, "-m", archive, "export_format=TRITON", env=env(), check=True)
        repository = results / "exported-model-triton"
        out[task] = (repository, repository / task / "1" / "model.eonnx")
    return out


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    running = Server([repo for repo, _ in exported.values()], tmp_path_factory.mktemp("serve"),
                     "--riva-port", str(free_port()))
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return [sine_wav(folder / "a.wav", 0.6, 8000, 330.0), sine_wav(folder / "b.wav", 1.1, 16000, 520.0)]


def infer_onnx_rows(task: str, model: Path, inputs, results: Path) -> list:
    if task == "speech_to_text":
        items = f"file_paths=[{','.join(str(p) for p in inputs)}]"
    else:
        items = "input_batch=" + json.dumps(inputs)
    tao(task, "infer_onnx", "-r", results, "-m", model, items, env=env(), check=True)
    return json.loads((results / "infer_results.json").read_text(encoding="utf-8"))


def request_columns(task: str, inputs) -> dict:
    if task == "question_answering":
        return {"QUESTION": [q["question"] for q in inputs], "CONTEXT": [q["context"] for q in inputs]}
    if task == "speech_to_text":
        return {"AUDIO": [Path(p).read_bytes() for p in inputs]}
    return {"TEXT": list(inputs)}


def comparable(task: str, rows: list) -> list:
    """Rows without what names the input's file (infer_onnx names the path, a served clip its item)."""
    return [{k: v for k, v in row.items() if k != "audio_filepath"} for row in rows]


def served_rows_by_client(protocol: str, server: Server, task: str, columns: dict) -> list:
    import numpy as np

    if protocol == "http":
        import tritonclient.http as client
        connection = client.InferenceServerClient(f"127.0.0.1:{server.http}", network_timeout=60)
    else:
        import tritonclient.grpc as client
        connection = client.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    tensors = []
    for name, values in columns.items():
        array = np.array([[v] for v in values], dtype=np.object_)
        tensor = client.InferInput(name, list(array.shape), "BYTES")
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    result = connection.infer(task, tensors, outputs=[client.InferRequestedOutput("ANSWER")])
    return [json.loads(item[0]) for item in result.as_numpy("ANSWER")]


def served_rows_by_json(server: Server, task: str, columns: dict) -> list:
    """One raw KServe v2 JSON request, as curl would send it (audio as a base64 string is not KServe's JSON:
    the test sends the text tasks only)."""
    body = {"inputs": [{"name": name, "shape": [len(values), 1], "datatype": "BYTES", "data": values}
                       for name, values in columns.items()]}
    request = urllib.request.Request(f"http://127.0.0.1:{server.http}/v2/models/{task}/infer",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        answer = json.loads(reply.read())
    return [json.loads(item) for item in answer["outputs"][0]["data"]]


TASKS = [*TEXTS, "question_answering", "speech_to_text"]


def inputs_of(task: str, clips) -> list:
    return {"question_answering": QUESTIONS, "speech_to_text": clips}.get(task) or TEXTS[task]


@pytest.fixture(scope="module")
def expected(exported, clips, tmp_path_factory):
    """infer_onnx's rows for each task's inputs, from the export inside its repository."""
    root = tmp_path_factory.mktemp("infer_onnx")
    return {task: comparable(task, infer_onnx_rows(task, exported[task][1], inputs_of(task, clips), root / task))
            for task in TASKS}


@pytest.mark.parametrize("task", TASKS)
def test_served_answers_equal_infer_onnx(task, expected, server, clips):
    inputs = inputs_of(task, clips)
    expected = expected[task]
    columns = request_columns(task, inputs)
    assert comparable(task, served_rows_by_client("http", server, task, columns)) == expected
    assert comparable(task, served_rows_by_client("grpc", server, task, columns)) == expected
    if task != "speech_to_text":
        assert served_rows_by_json(server, task, columns) == expected
    if task == "speech_to_text":
        assert [round(r["duration"], 2) for r in expected] == [0.6, 1.1]


def test_a_bad_request_gets_its_own_error_and_the_server_keeps_serving(server):
    import tritonclient.http as client
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="TEXT item 2 is blank"):
        served_rows_by_client("http", server, "text_classification", {"TEXT": ["fine", "   "]})
    with pytest.raises(InferenceServerException, match="batch size does not match"):  # Triton's own check
        served_rows_by_client("http", server, "question_answering", {"QUESTION": ["a", "b"], "CONTEXT": ["c"]})
    with pytest.raises(InferenceServerException, match="QUESTION item 1 is blank"):
        served_rows_by_client("grpc", server, "question_answering", {"QUESTION": [" "], "CONTEXT": ["c"]})
    with pytest.raises(InferenceServerException, match="has no words"):  # the task's own word rule
        served_rows_by_client("grpc", server, "punctuation_and_capitalization", {"TEXT": ["?!"]})
    with pytest.raises(InferenceServerException, match="AUDIO item 1"):
        served_rows_by_client("http", server, "speech_to_text", {"AUDIO": [b"not audio at all"]})
    with pytest.raises(InferenceServerException, match="unknown"):
        served_rows_by_client("http", server, "no_such_model", {"TEXT": ["fine"]})
    assert served_rows_by_client("http", server, "text_classification", {"TEXT": ["fine"]})[0]["sentence"] == "fine"
    assert client  # the module the bad requests went through


def test_status_names_the_endpoints_models_and_server(server):
    value = status(server.results)
    assert value["state"] == "serving"
    assert value["endpoints"]["http"] == f"http://127.0.0.1:{server.http}"
    assert set(value["models"]) == {*TEXTS, "question_answering", "speech_to_text"}
    assert alive(value["server_pid"])
    assert KEY not in (server.results / "status.json").read_text()
    assert KEY not in Path(f"/proc/{value['server_pid']}/cmdline").read_text()


# ----------------------------------------------------------------------------- Riva's API

def riva_port(server: Server) -> int:
    return int(status(server.results)["endpoints"]["riva"].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def riva(server):
    import riva.client

    auth = riva.client.Auth(uri=f"127.0.0.1:{riva_port(server)}")
    return riva.client, riva.client.NLPService(auth), riva.client.ASRService(auth)


def speech_config(client, rate: int = 0, encoding=None):
    return client.RecognitionConfig(encoding=encoding or client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=rate,
                                    language_code="en-US", max_alternatives=1)


@pytest.mark.parametrize("task", TASKS)
def test_riva_clients_get_the_answers_of_infer_onnx(task, riva, expected, clips):
    """The official riva.client call of each task, unchanged, against tao serve --riva-port."""
    client, nlp, asr = riva
    rows = expected[task]
    if task == "text_classification":
        reply = nlp.classify_text(TEXTS[task], task)
        assert [r.labels[0].class_name for r in reply.results] == [r["label"] for r in rows]
        assert [round(r.labels[0].score, 4) for r in reply.results] == [round(r["score"], 4) for r in rows]
    elif task == "token_classification":
        reply = nlp.classify_tokens(TEXTS[task], task)
        assert [[v.token for v in seq.results] for seq in reply.results] == [r["text"].split() for r in rows]
        assert [[v.label[0].class_name for v in seq.results] for seq in reply.results] == [r["tags"] for r in rows]
        first = reply.results[0].results[-1]  # "Paris" in "Jim lives in Paris"
        assert (first.span[0].start, first.span[0].end) == (13, 18)
    elif task == "punctuation_and_capitalization":
        assert list(nlp.punctuate_text(TEXTS[task], task).text) == [r["restored"] for r in rows]
    elif task == "intent_slot_classification":
        for text, row in zip(TEXTS[task], rows):
            reply = nlp.analyze_intent(text, client.AnalyzeIntentOptions(domain=task))
            assert reply.intent.class_name == row["intent"]
            assert [s.token for s in reply.slots] == [s["text"] for s in row["slots"]]
    elif task == "question_answering":
        for question, row in zip(QUESTIONS, rows):
            reply = nlp.natural_query(question["question"], question["context"])
            assert reply.results[0].answer == row["answer"]
    else:
        import wave

        for clip, row in zip(clips, rows):
            whole = asr.offline_recognize(clip.read_bytes(), speech_config(client))  # a WAV file's bytes
            with wave.open(str(clip)) as wav:  # raw PCM, as Riva's own examples read it
                rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
            raw = asr.offline_recognize(pcm, speech_config(client, rate))
            for reply in (whole, raw):
                assert reply.results[0].alternatives[0].transcript == row["transcript"]
                assert round(reply.results[0].audio_processed, 2) == round(row["duration"], 2)
            chunks = [pcm[i:i + 3200] for i in range(0, len(pcm), 3200)]
            streamed = list(asr.streaming_response_generator(
                iter(chunks), client.StreamingRecognitionConfig(config=speech_config(client, rate),
                                                                interim_results=True)))
            finals = [r for reply in streamed for r in reply.results if r.is_final]
            assert [f.alternatives[0].transcript for f in finals] == [row["transcript"]]


def test_riva_lists_what_is_served(riva):
    from riva.client.proto import riva_asr_pb2, riva_nlp_pb2

    _, nlp, asr = riva
    nlp_models = {c.model_name: c.parameters["task"] for c in
                  nlp.stub.GetRivaNLPConfig(riva_nlp_pb2.RivaNLPConfigRequest()).model_config}
    asr_models = {c.model_name for c in
                  asr.stub.GetRivaSpeechRecognitionConfig(
                      riva_asr_pb2.RivaSpeechRecognitionConfigRequest()).model_config}
    assert nlp_models == {t: t for t in TASKS if t != "speech_to_text"} and asr_models == {"speech_to_text"}


def bad_riva_requests(client, nlp, asr):
    """(what, call, gRPC status, words of the message): the Riva API's bad-request table."""
    import grpc

    invalid, missing = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    pcm = b"\x00\x01" * 800
    return [
        ("no text", lambda: nlp.classify_text([], "text_classification"), invalid, "no text"),
        ("a blank text", lambda: nlp.classify_text(["  "], "text_classification"), invalid, "TEXT item 1 is blank"),
        ("an unknown model", lambda: nlp.classify_text(["fine"], "no_such_model"), missing, "no_such_model"),
        ("a model of another task", lambda: nlp.classify_tokens(["fine"], "text_classification"), missing,
         "no token_classification model"),
        ("a text with no words", lambda: nlp.punctuate_text(["?!"], "punctuation_and_capitalization"), invalid,
         "has no words"),
        ("an empty intent query", lambda: nlp.analyze_intent(""), invalid, "no query"),
        ("a question without context", lambda: nlp.natural_query("who", ""), invalid, "needs a context"),
        ("an empty question", lambda: nlp.natural_query("", "Jim lives in Paris."), invalid, "no query"),
        ("mu-law audio", lambda: asr.offline_recognize(pcm, speech_config(client, 8000,
                                                                          client.AudioEncoding.MULAW)),
         invalid, "MULAW is not supported"),
        ("raw PCM without a rate", lambda: asr.offline_recognize(pcm, speech_config(client)), invalid,
         "sample_rate_hertz"),
        ("half a sample", lambda: asr.offline_recognize(pcm + b"\x00", speech_config(client, 16000)), invalid,
         "not 16-bit samples"),
        ("a file that is not audio", lambda: asr.offline_recognize(b"RIFF" + b"\x00" * 40, speech_config(client)),
         invalid, "AUDIO item 1"),
        ("an unknown speech model", lambda: asr.offline_recognize(pcm, client.RecognitionConfig(
            encoding=client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000, model="nope")), missing, "nope"),
    ]


def test_riva_bad_requests_get_their_status_and_the_server_keeps_answering(riva):
    import grpc

    client, nlp, asr = riva
    table = bad_riva_requests(client, nlp, asr)
    assert len(table) >= 10
    for what, call, code, words in table:
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == code, f"{what}: {raised.value.code()} {raised.value.details()}"
        assert words in raised.value.details(), f"{what}: {raised.value.details()}"
        assert nlp.classify_text(["fine"], "text_classification").results[0].labels[0].class_name, what


# ----------------------------------------------------------------------------- faults

def test_a_wrong_key_fails_at_load_with_one_sentence_and_leaves_no_server(exported, tmp_path):
    server = Server([exported["text_classification"][0]], tmp_path / "serve", key="not-the-key")
    out, err = server.proc.communicate(timeout=START_TIMEOUT_S)
    assert server.proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("tao: error: ")]
    assert len(lines) == 1 and "wrong key or corrupted file" in lines[0], err
    assert status(server.results)["state"] == "failed"
    assert gone_within(status(server.results)["server_pid"], 10)


def test_a_port_in_use_is_refused_before_anything_starts(exported, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = tao("serve", "-m", exported["text_classification"][0], "--http-port", port,
                   "--grpc-port", free_port(), "-r", tmp_path / "serve", env=env())
    assert_error(proc, 2, f"port {port} on 127.0.0.1 is not free", "--http-port")
    assert not (tmp_path / "serve").exists()


@pytest.mark.parametrize("how", ["SIGTERM", "kill -9"])
def test_stopping_tao_serve_leaves_no_server_running(how, exported, tmp_path):
    server = Server([exported["text_classification"][0]], tmp_path / "serve")
    server.wait_ready()
    pid = server.server_pid()
    assert alive(pid)
    if how == "SIGTERM":
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=60)
        assert server.proc.returncode == 130
        assert "tao: interrupted" in server.proc.stderr.read()
        assert status(server.results)["state"] == "stopped"
    else:
        server.proc.kill()
        server.proc.wait(timeout=10)
    assert gone_within(pid, 15), f"tritonserver (pid {pid}) still runs after {how} of tao serve"


def test_repository_is_checked_and_described(exported):
    repository, model = exported["token_classification"]
    info = json.loads((repository / "token_classification" / "tao_model.json").read_text())
    assert info["task"] == "token_classification" and info["inputs"] == ["TEXT"] and info["encrypted"]
    assert model.read_bytes()[:6] != b"\x08\x07\x12\x07py"  # encrypted: not an ONNX protobuf
    config = (repository / "token_classification" / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and "dynamic_batching" in config
    qa = json.loads((exported["question_answering"][0] / "question_answering" / "tao_model.json").read_text())
    assert qa["inputs"] == ["QUESTION", "CONTEXT"]


def test_docker_dry_run_prints_the_command_without_the_key(exported):
    proc = tao("serve", "-m", exported["speech_to_text"][0], "--runner", "docker", "--dry-run", env=env())
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("docker run --rm") and "-e TAO_KEY" in line and KEY not in line
    assert f"{exported['speech_to_text'][0].resolve()}:/models/0:ro" in line
    assert "-p 127.0.0.1:8000:8000" in line

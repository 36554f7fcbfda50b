"""The formats users take elsewhere (issue 12, section 6): a plain ONNX folder that onnxruntime opens and a
Hugging Face folder that transformers loads, each giving the predictions of ``infer``; the encrypted
default stays what onnxruntime refuses.

The loading side runs as a user's script would: its own process, its own HOME, no tao import.
text_classification uses the session's trained model; token_classification and punctuation use tiny
untrained models (tests/nlp/tiny_models.py): what is checked is that two ways of running one network
agree. Runtime: about 60 s on 2 cores besides the session's training.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KEY, assert_error, assert_ok, concurrently, tao, tao_env
from tiny_models import tiny_archive

TC, NER, PUNCT = "text_classification", "token_classification", "punctuation_and_capitalization"
SENTENCES = ["a warm , funny and moving film .", "two hours i will never get back .", "it is a film ."]
WORDS = ["Peter Blackburn visited Brussels on Monday", "EU rejects German call to boycott British lamb"]

HF_SEQUENCE = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder, sentences = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    probs = model(**tokenizer(sentences, return_tensors="pt", padding=True)).logits.softmax(-1)
print(json.dumps([[model.config.id2label[int(p.argmax())], float(p.max())] for p in probs]))
"""
HF_TOKENS = """
import json, sys, torch
from transformers import AutoModelForTokenClassification, AutoTokenizer
folder, sentences, trust = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "trust"
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
model = AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=trust).eval()
out = []
for words in (s.split() for s in sentences):
    enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        result = model(**enc)
    heads = [result.logits[0]] + [h[0] for h in (getattr(result, "extra_logits", None) or ())]
    first = [enc.word_ids().index(w) for w in range(len(words))]
    out.append({"tags": [model.config.id2label[int(heads[0][i].argmax())] for i in first],
                "logits": [[heads[k][i].tolist() for i in first] for k in range(len(heads))]})
print(json.dumps({"class": type(model).__name__, "sentences": out}))
"""
ONNX_PLAIN = """
import json, sys, numpy as np, onnxruntime as ort
from transformers import AutoTokenizer
folder, sentences = sys.argv[1], json.loads(sys.argv[2])
session = ort.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
tokenizer = AutoTokenizer.from_pretrained(folder + "/tokenizer")
enc = tokenizer(sentences, padding=True, return_tensors="np")
logits = session.run(None, {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()})[0]
probs = np.exp(logits - logits.max(-1, keepdims=True)); probs /= probs.sum(-1, keepdims=True)
labels = open(folder + "/labels.txt").read().split()
print(json.dumps([[labels[int(p.argmax())], float(p.max())] for p in probs]))
"""


def as_user(script: str, tmp_path: Path, *args: str):
    """Run a user's script (no tao, its own HOME) and return what it printed as JSON."""
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
                          env=tao_env(tmp_path / "user-home"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def infer_rows(results: Path) -> list:
    return json.loads((results / "infer_results.json").read_text())


# ----------------------------------------------------------------------------- text_classification

@pytest.fixture(scope="module")
def tc_runs(trained, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("formats")
    model = trained / "checkpoints" / "trained-model.tao"
    batch = f"input_batch={json.dumps(SENTENCES)}"
    done = concurrently(
        infer=[TC, "infer", "-r", root / "infer", "-k", KEY, "-m", model, batch],
        onnx=[TC, "export", "-r", root / "onnx", "-k", KEY, "-m", model, "export_format=ONNX", "encrypt=false"],
    )
    done.update(concurrently(
        hf=[TC, "export", "-r", root / "hf", "-k", KEY, "-m", model, "export_format=HF"],
        eonnx=[TC, "export", "-r", root / "eonnx", "-k", KEY, "-m", model, "export_format=ONNX"],
    ))
    for proc in done.values():
        assert_ok(proc)
    return root


def assert_same_predictions(got: list, rows: list) -> None:
    assert [label for label, _ in got] == [r["label"] for r in rows]
    assert max(abs(score - r["score"]) for (_, score), r in zip(got, rows)) <= 1e-4


def test_plain_onnx_folder_loads_in_onnxruntime_with_the_labels_of_infer(tc_runs, tmp_path):
    folder = tc_runs / "onnx" / "exported-model-onnx"
    assert {"model.onnx", "model_config.json", "labels.txt", "manifest.json", "tokenizer"} <= {
        p.name for p in folder.iterdir()}
    assert_same_predictions(as_user(ONNX_PLAIN, tmp_path, str(folder), json.dumps(SENTENCES)),
                            infer_rows(tc_runs / "infer"))


def test_infer_onnx_reads_the_plain_model_without_a_key(tc_runs, tmp_path):
    env = tao_env(tmp_path / "home")
    proc = tao(TC, "infer_onnx", "-r", tmp_path / "io", "-m", tc_runs / "onnx" / "exported-model-onnx" / "model.onnx",
               f"input_batch={json.dumps(SENTENCES)}", env=env)
    assert_ok(proc)
    got = [[r["label"], r["score"]] for r in infer_rows(tmp_path / "io")]
    assert_same_predictions(got, infer_rows(tc_runs / "infer"))


def test_hf_folder_loads_in_transformers_with_the_predictions_of_infer(tc_runs, tmp_path):
    folder = tc_runs / "hf" / "exported-model-hf"
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_tao.TaoForSequenceClassification"
    assert (folder / "model.safetensors").is_file() and (folder / "modeling_tao.py").is_file()
    assert_same_predictions(as_user(HF_SEQUENCE, tmp_path, str(folder), json.dumps(SENTENCES)),
                            infer_rows(tc_runs / "infer"))


def test_the_encrypted_default_is_refused_by_onnxruntime(tc_runs):
    import onnxruntime as ort

    eonnx = tc_runs / "eonnx" / "exported-model.eonnx"
    assert eonnx.is_file() and not list((tc_runs / "eonnx").glob("*.onnx"))
    with pytest.raises(Exception, match="(?i)protobuf|parse|load"):
        ort.InferenceSession(str(eonnx), providers=["CPUExecutionProvider"])


def test_riva_cannot_be_plain_and_says_what_can(trained, tmp_path):
    proc = tao(TC, "export", "-r", tmp_path / "r", "-k", KEY, "-m", trained / "checkpoints" / "trained-model.tao",
               "export_format=RIVA", "encrypt=false")
    assert_error(proc, 2, "export_format=RIVA is always encrypted", "encrypt=false")


# ----------------------------------------------------------------------------- word-level tasks

@pytest.fixture(scope="module")
def word_runs(tmp_path_factory) -> dict:
    """Tiny NER and punctuation models: infer, the HF export and the plain ONNX export of each."""
    root = tmp_path_factory.mktemp("word-formats")
    models = {NER: tiny_archive(NER, root / "ner.tao", KEY), PUNCT: tiny_archive(PUNCT, root / "punct.tao", KEY)}
    batch = f"input_batch={json.dumps(WORDS)}"
    commands = {}
    for task, model in models.items():
        commands[f"{task}-infer"] = [task, "infer", "-r", root / task / "infer", "-k", KEY, "-m", model, batch]
        commands[f"{task}-hf"] = [task, "export", "-r", root / task / "hf", "-k", KEY, "-m", model, "export_format=HF"]
    done = {}
    names = list(commands)
    for pair in (names[:2], names[2:]):
        done.update(concurrently(**{name: commands[name] for name in pair}))
    for proc in done.values():
        assert_ok(proc)
    return {task: root / task for task in models}


def test_ner_with_a_linear_head_is_a_stock_hf_folder_with_the_tags_of_infer(word_runs, tmp_path):
    folder = word_runs[NER] / "hf" / "exported-model-hf"
    assert not (folder / "modeling_tao.py").exists()
    got = as_user(HF_TOKENS, tmp_path, str(folder), json.dumps(WORDS), "stock")
    assert got["class"] == "BertForTokenClassification"
    assert [s["tags"] for s in got["sentences"]] == [r["tags"] for r in infer_rows(word_runs[NER] / "infer")]


def test_punctuation_hf_folder_gives_both_heads_of_infer(word_runs, tmp_path):
    """Two heads: custom code; the marks and the case of every word are infer's."""
    from tao_launcher.tasks.punctuation_and_capitalization.data import normalize_input, restore

    folder = word_runs[PUNCT] / "hf" / "exported-model-hf"
    words = [normalize_input(text) for text in WORDS]
    got = as_user(HF_TOKENS, tmp_path, str(folder), json.dumps([" ".join(w) for w in words]), "trust")
    config = json.loads((folder / "config.json").read_text())
    punct_labels, capit_labels = (head["labels"] for head in config["tao_heads"])

    def best(labels, rows):
        return [labels[max(range(len(row)), key=row.__getitem__)] for row in rows]

    restored = [restore(w, best(punct_labels, s["logits"][0]), best(capit_labels, s["logits"][1]))
                for w, s in zip(words, got["sentences"])]
    assert restored == [r["restored"] for r in infer_rows(word_runs[PUNCT] / "infer")]

"""nlp/bert.py: the BERT forward and tokenizer that evaluate and infer run without transformers compute
what transformers' BertModel and tokenizer do, and the fast path is taken only where that holds.

On the packaged all-MiniLM-L6-v2 encoder (its real weights and tokenizer) and on tiny archives of
every task (tests/nlp/tiny_models.py). Runtime: about 25 s on 2 cores (transformers is imported
here to compare with).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import KEY, SAMPLE
from tiny_models import DEFAULT_LABELS, net_class, tiny_archive
from tao_launcher.core.data import collate_examples
from tao_launcher.core.encoders import resolve_encoder
from tao_launcher.nlp import bert
from tao_launcher.nlp.encoder import load_encoder, load_tokenizer, save_tokenizer
from tao_launcher.core.inference import torch_runner
from tao_launcher.nlp.inference import run_batched
from tao_launcher.core import model as archives
from tao_launcher.nlp import model as nlp_family

SENTENCES = [line.split("\t")[0] for line in (SAMPLE / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
EDGE_CASES = ["", "   ", "Café naïve résumé ÅNGSTRÖM", "北京欢迎你 and tokyo", "a [SEP] inside, [CLS] and [MASK]",
              "tabs\tand\nnewlines\r\nand \u200b zero-width", "emoji 🙂 and \u00a0nbsp",
              "don't U.N. 1996-08-30 $5.00", "supercalifragilisticexpialidocious " * 3, "word " * 600]
WORDS = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn", "\u200b", "visited", "Brussels"],
         ["naïve", "北京", "don't", "[SEP]"], ["x"] * 200]


def load_model(path, key, task, net_cls, *, inference=False):
    """An NLP archive as the subtasks load it (core/model.py with the NLP family)."""
    return archives.load_model(path, key, task, nlp_family, net_cls, inference=inference)


@pytest.fixture(scope="module")
def encoder_folder() -> Path:
    try:
        return resolve_encoder("all-minilm-l6-v2")
    except Exception as err:  # noqa: BLE001 - the reason is shown in the skip
        pytest.skip(f"the packaged encoder is not installed: {err}")


@pytest.fixture(scope="module")
def saved_tokenizer(encoder_folder, tmp_path_factory) -> Path:
    """The tokenizer folder as a tao archive holds it (save_tokenizer of transformers' tokenizer)."""
    folder = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(load_tokenizer(encoder_folder), folder)
    return folder


# ----------------------------------------------------------------------------- the encoder

def padded(rows, pad_id=0):
    batch = collate_examples([{"input_ids": ids} for ids in rows], pad_id)
    return batch["input_ids"], batch["attention_mask"]


def test_bert_encoder_equals_transformers_bert_on_padded_batches(encoder_folder):
    reference = load_encoder(encoder_folder).eval()
    ours = bert.BertEncoder.from_file(encoder_folder / "config.json").eval()
    ours.load_state_dict(reference.state_dict())  # strict: the same names, every one
    tokenizer = load_tokenizer(encoder_folder)
    ids = tokenizer(SENTENCES[:12] + EDGE_CASES[:4], truncation=True, max_length=128)["input_ids"]
    input_ids, mask = padded(ids)
    assert not bool(mask.all())  # padded: the masked attention path
    pairs = tokenizer(["who visited brussels?", "what is it?", "why?"],
                      ["peter blackburn visited brussels on monday", "a film", "no one knows why it rained"])
    pair_batch = collate_examples([{"input_ids": i, "token_type_ids": t}
                                   for i, t in zip(pairs["input_ids"], pairs["token_type_ids"])], 0)
    assert pair_batch["token_type_ids"].any()  # second segments: token type 1 is read
    with torch.inference_mode():
        for kwargs in ({"input_ids": input_ids, "attention_mask": mask},
                       {"input_ids": input_ids[:1, :8], "attention_mask": mask[:1, :8]},   # nothing padded
                       pair_batch):
            expected = reference(**kwargs).last_hidden_state
            got = ours(**kwargs).last_hidden_state
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()


def test_bert_encoder_refuses_training_mode(encoder_folder):
    encoder = bert.BertEncoder.from_file(encoder_folder / "config.json")
    with pytest.raises(RuntimeError, match="inference only"):
        encoder.train()(torch.tensor([[101, 102]]))


@pytest.mark.parametrize("change, supported", [
    ({}, True), ({"model_type": "roberta"}, False), ({"hidden_act": "gelu_new"}, False),
    ({"position_embedding_type": "relative_key"}, False), ({"is_decoder": True}, False), ({"hidden_act": "relu"}, True),
])
def test_only_configs_that_bert_encoder_computes_exactly_take_the_fast_path(encoder_folder, change, supported):
    config = {**json.loads((encoder_folder / "config.json").read_text()), **change}
    assert bert.supports(config) is supported
    assert bert.supports({"model_type": "bert"})  # keys left out have BertConfig's defaults


# ----------------------------------------------------------------------------- the tokenizer

@pytest.mark.parametrize("which", ["packaged", "saved"])
def test_tokenizer_gives_what_transformers_gives(encoder_folder, saved_tokenizer, which):
    folder = encoder_folder if which == "packaged" else saved_tokenizer
    reference, ours = load_tokenizer(folder), bert.BertTokenizer.load(folder)
    assert isinstance(ours, bert.BertTokenizer)
    assert len(ours) == len(reference)
    for name in ("pad", "cls", "sep", "unk", "mask"):
        assert getattr(ours, f"{name}_token_id") == getattr(reference, f"{name}_token_id"), name
    texts = SENTENCES + EDGE_CASES
    for kwargs in ({"truncation": True, "max_length": 128}, {"truncation": True, "max_length": 16},
                   {"add_special_tokens": False, "return_offsets_mapping": True, "verbose": False},
                   {"add_special_tokens": False, "truncation": True, "max_length": 5, "verbose": False}, {}):
        expected, got = reference(texts, **kwargs), ours(texts, **kwargs)
        for key in ("input_ids", "token_type_ids", "attention_mask", "offset_mapping"):
            assert (key in got) == (key in expected), key
            if key in got:
                assert [list(map(tuple, r)) if key == "offset_mapping" else r for r in got[key]] == \
                       [list(map(tuple, r)) if key == "offset_mapping" else r for r in expected[key]], (key, kwargs)
    assert max(len(r) for r in ours(texts)["input_ids"]) > 512  # nothing truncated unless asked
    words_expected = reference(WORDS, is_split_into_words=True, add_special_tokens=False, verbose=False)
    words_got = ours(WORDS, is_split_into_words=True, add_special_tokens=False, verbose=False)
    assert words_got["input_ids"] == words_expected["input_ids"]
    assert [words_got.word_ids(i) for i in range(len(WORDS))] == [words_expected.word_ids(i) for i in range(len(WORDS))]
    pair_expected, pair_got = reference("x", "y"), ours("x", "y")  # QA's PairLayout: a single pair, unbatched
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert pair_got[key] == pair_expected[key], key
    assert pair_got.sequence_ids(0) == pair_expected.sequence_ids(0)
    assert ours("a film")["input_ids"] == reference("a film")["input_ids"]


def rewrite(folder: Path, dest: Path, file: str, change) -> Path:
    shutil.copytree(folder, dest)
    data = json.loads((dest / file).read_text())
    change(data)
    (dest / file).write_text(json.dumps(data))
    return dest


@pytest.mark.parametrize("file, change", [
    ("tokenizer_config.json", lambda c: c.update(do_lower_case=False)),        # transformers rebuilds: cased
    ("tokenizer_config.json", lambda c: c.update(tokenizer_class="RobertaTokenizer")),
    ("tokenizer.json", lambda t: t.update(pre_tokenizer={"type": "Whitespace"})),
    ("tokenizer.json", lambda t: t["model"].update(max_input_chars_per_word=20)),
])
def test_tokenizer_falls_back_to_transformers_when_the_pipelines_would_differ(saved_tokenizer, tmp_path, file, change):
    folder = rewrite(saved_tokenizer, tmp_path / "tok", file, change)
    assert bert.BertTokenizer.load(folder) is None
    assert not isinstance(load_tokenizer(folder, inference=True), bert.BertTokenizer)


def test_a_folder_without_tokenizer_json_uses_transformers(saved_tokenizer, tmp_path):
    shutil.copytree(saved_tokenizer, tmp_path / "tok")
    (tmp_path / "tok" / "tokenizer.json").unlink()
    assert bert.BertTokenizer.load(tmp_path / "tok") is None


# ----------------------------------------------------------------------------- whole networks from archives

@pytest.mark.parametrize("task", sorted(DEFAULT_LABELS))
def test_load_model_for_inference_predicts_what_the_transformers_model_predicts(tmp_path, task):
    archive = tiny_archive(task, tmp_path / "model.tao", KEY)
    fast, fast_tokenizer, config = load_model(archive, KEY, task, net_class(task), inference=True)
    slow, slow_tokenizer, slow_config = load_model(archive, KEY, task, net_class(task))
    assert isinstance(fast.encoder, bert.BertEncoder) and isinstance(fast_tokenizer, bert.BertTokenizer)
    assert not isinstance(slow.encoder, bert.BertEncoder) and not fast.training
    assert config == slow_config
    ids = fast_tokenizer(SENTENCES[:9], truncation=True, max_length=config["max_seq_length"])["input_ids"]
    assert ids == slow_tokenizer(SENTENCES[:9], truncation=True, max_length=config["max_seq_length"])["input_ids"]
    examples = [{"input_ids": row} for row in ids]
    got = run_batched(torch_runner(fast), examples, 4, fast_tokenizer.pad_token_id)
    expected = run_batched(torch_runner(slow), examples, 4, slow_tokenizer.pad_token_id)
    for g, e in zip(got, expected):
        for a, b in zip(g, e):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_question_answering_net_reads_token_types_on_the_fast_path(encoder_folder):
    from tao_launcher.tasks.question_answering.model import QuestionAnsweringNet

    config = {"num_layers": 1, "dropout": 0.0, "max_seq_length": 64, "doc_stride": 16, "max_query_length": 16,
              "version_2_with_negative": True}
    reference = QuestionAnsweringNet(load_encoder(encoder_folder), config).eval()
    ours = QuestionAnsweringNet(bert.BertEncoder.from_file(encoder_folder / "config.json"), config).eval()
    ours.load_state_dict(reference.state_dict())
    enc = load_tokenizer(encoder_folder)(["who visited brussels?"] * 2, ["peter blackburn visited brussels", "no one"])
    batch = collate_examples([{"input_ids": i, "token_type_ids": t}
                              for i, t in zip(enc["input_ids"], enc["token_type_ids"])], 0)
    feeds = {name: tensor.numpy() for name, tensor in batch.items()}
    for a, b in zip(torch_runner(ours)(feeds), torch_runner(reference)(feeds)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_inference_loading_imports_no_transformers(tmp_path):
    archive = tiny_archive("text_classification", tmp_path / "model.tao", KEY)
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from tao_launcher.core.model import load_model\n"
            "from tao_launcher.nlp import model as family\n"
            "from tao_launcher.core.inference import torch_runner\n"
            "from tao_launcher.tasks.text_classification.model import TextClassifier\n"
            f"net, tokenizer, _ = load_model(Path({str(archive)!r}), {KEY!r}, 'text_classification', family, TextClassifier,"
            " inference=True)\n"
            "import numpy as np\n"
            "ids = np.array([tokenizer('a great film')['input_ids']])\n"
            "out = torch_runner(net)({'input_ids': ids, 'attention_mask': np.ones_like(ids)})\n"
            "print(out[0].shape, sorted(m for m in ('transformers', 'torch._dynamo') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 2) []", proc.stdout

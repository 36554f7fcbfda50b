"""question_answering pieces without a model: the SQuAD reader and its errors, dataset_convert, the official
scoring, windows with doc_stride and their labels, and n-best decoding with the null answer (~3 s)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tao_launcher.errors import DataError, UsageError
from tao_launcher.nlp.qa_windows import NO_ANSWER, PairLayout, Window, context_spans, make_windows, token_span
from tao_launcher.nlp.span_decoding import decode, decode_all
from tao_launcher.nlp.squad_scoring import exact_score, f1_score, gold_texts, normalize_answer, squad_scores
from tao_launcher.tasks.question_answering import data

CONTEXT = "The Normans gave their name to Normandy, a region in France."


def squad(*paragraphs, version="v2.0") -> dict:
    return {"version": version, "data": [{"title": f"a{i}", "paragraphs": [p]} for i, p in enumerate(paragraphs)]}


def qa(qid, question, answers=(), impossible=None) -> dict:
    out = {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers]}
    if impossible is not None:
        out["is_impossible"] = impossible
    return out


def write(tmp_path: Path, content, name="squad.json", indent=None) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=indent), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from tao_launcher.core.encoders import resolve_encoder
    from tao_launcher.nlp.encoder import load_tokenizer

    return load_tokenizer(resolve_encoder("all-minilm-l6-v2"))


# ----------------------------------------------------------------------------- the official scoring

def test_normalisation_follows_the_official_script():
    assert normalize_answer("  The  Normans, in FRANCE! ") == "normans in france"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words


def test_exact_and_f1_of_one_answer():
    assert exact_score("the 10th century", "10th Century.") == 1
    assert exact_score("10th century", "10th") == 0
    assert f1_score("10th and 11th centuries", "11th centuries") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert f1_score("France", "Normandy") == 0.0
    assert f1_score("", "") == 1.0 and f1_score("", "France") == 0.0 and f1_score("France", "") == 0.0


def test_a_question_scores_its_best_gold_answer_and_unanswerable_gold_is_empty():
    gold = {"q1": ["10th and 11th centuries", "in the 10th and 11th centuries"], "q2": [], "q3": ["France"],
            "q4": []}
    pred = {"q1": "in the 10th and 11th centuries", "q2": "", "q3": "", "q4": "France"}
    scores = squad_scores(gold, pred)
    assert scores["exact"] == pytest.approx(50.0) and scores["f1"] == pytest.approx(50.0)
    assert (scores["HasAns_total"], scores["NoAns_total"]) == (2, 2)
    assert scores["HasAns_exact"] == pytest.approx(50.0) and scores["NoAns_exact"] == pytest.approx(50.0)
    assert gold_texts(["a", "the"]) == [""]  # answers that normalise to nothing are dropped
    assert squad_scores({"q": ["France"]}, {})["exact"] == 0.0  # a missing prediction is "no answer"
    assert "NoAns_total" not in squad_scores({"q": ["France"]}, {"q": "France"})


# ----------------------------------------------------------------------------- the reader

def test_reads_questions_counts_and_mismatches(tmp_path):
    path = write(tmp_path, squad({"context": CONTEXT, "qas": [
        qa("q1", "Where is Normandy?", [("France", 53), ("in France", 50)]),
        qa("q2", "Who?", [("normans", 4)]),          # text differs from the context at answer_start
        qa(7, "What is the capital?", [], True),
        qa("q4", "Why?")]}))                           # no answers, no is_impossible: unanswerable
    file = data.read_squad(path)
    assert [q.id for q in file.questions] == ["q1", "q2", "7", "q4"]
    assert file.questions[0].answer_texts == ["France", "in France"]
    assert file.counts == {"articles": 1, "paragraphs": 1, "questions": 4, "unanswerable": 2, "answers": 3,
                           "answers_not_at_start": 1}
    drawn = [q.id for q in data.read_squad(path, num_samples=2).questions]   # tests/test_num_samples.py
    assert len(drawn) == 2 and drawn == [i for i in ["q1", "q2", "7", "q4"] if i in drawn]


@pytest.mark.parametrize("content,fragments", [
    ('{"data": [\n  {"title": "x",\n   "paragraphs": [}\n]}', ["squad.json:3:19: not valid JSON"]),
    (squad({"context": CONTEXT, "qas": [qa("q1", "Where?", [("France", 55)])]}),
     ["data[0].paragraphs[0].qas[0].answers[0]", "question 'q1'", "outside its context of 60 characters",
      "fix answer_start"]),
    (squad({"context": CONTEXT, "qas": [qa("q1", "Where?", [("France", -1)])]}), ["is outside its context"]),
    (squad({"context": CONTEXT, "qas": [qa("q1", "Where?"), qa("q1", "Again?")]}),
     ["data[0].paragraphs[0].qas[1]", "the id repeats data[0].paragraphs[0].qas[0]"]),
    (squad({"context": CONTEXT, "qas": [qa("q1", "Where?", [("France", 53)], True)]}),
     ["is_impossible is true but the question has 1 answer"]),
    (squad({"context": CONTEXT, "qas": [qa("q1", "Where?", [("France", "53")])]}),
     ["'answer_start' must be a whole number, got a str"]),
    (squad({"qas": []}), ["data[0].paragraphs[0]: 'context' must be a string, got missing"]),
    ({"version": "v2.0"}, ["'data' must be a JSON list, got missing"]),
    (squad({"context": CONTEXT, "qas": []}), ["holds no questions"]),
])
def test_bad_files_name_the_place_and_the_fix(tmp_path, content, fragments):
    path = write(tmp_path, content)
    with pytest.raises(DataError) as err:
        data.read_squad(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_question_error_names_its_line_in_a_pretty_printed_file(tmp_path):
    content = squad({"context": CONTEXT, "qas": [qa("q1", "Where?", [("France", 53)]),
                                                 qa("q2", "Where?", [("France", 99)])]})
    path = write(tmp_path, content, indent=2)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"q2"' in text)
    with pytest.raises(DataError, match=rf"squad.json:{line}:\d+: data\[0\]"):
        data.read_squad(path)


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "squad.json"
    path.write_bytes(b'{"data": [\n"caf\xe9"]}')
    with pytest.raises(DataError, match=r"squad.json:2: not UTF-8"):
        data.read_squad(path)


def test_infer_batch_items_are_checked():
    assert [q.question for q in data.batch_questions([{"question": "Who?", "context": "Ann."}])] == ["Who?"]
    for bad, fragment in ((["Who?"], "write each item"), ([{"question": "Who?"}], "needs a non-empty 'context'"),
                          ([{"question": "Who?", "context": "x", "answer": "y"}], "unknown key(s) answer")):
        with pytest.raises(UsageError, match="input_batch item 1"):
            data.batch_questions(bad)
        with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            data.batch_questions(bad)


# ----------------------------------------------------------------------------- dataset_convert

def test_convert_splits_by_article_and_reports_counts(tmp_path):
    articles = [{"context": f"Paragraph {i} is about France.", "qas": [qa(f"q{i}{j}", "Where?", [("France", 22)])
                                                                       for j in range(i + 1)]} for i in range(10)]
    source = write(tmp_path, squad(*articles))
    counts = data.convert(source, None)
    assert counts["articles"] == 10 and counts["questions"] == 55 and not list(tmp_path.glob("*/"))
    target = tmp_path / "split"
    counts = data.convert(source, target, dev_ratio=0.2, seed=3)
    assert sorted(p.name for p in target.iterdir()) == [".tao-convert.json", "dev.json", "train.json"]
    train, dev = (json.loads((target / n).read_text()) for n in ("train.json", "dev.json"))
    titles = [a["title"] for a in train["data"]], [a["title"] for a in dev["data"]]
    assert len(titles[1]) == 2 and not set(titles[0]) & set(titles[1]) and len(set(titles[0] + titles[1])) == 10
    assert titles[0] == sorted(titles[0], key=lambda t: int(t[1:]))  # the source's order is kept
    assert counts["train_questions"] + counts["dev_questions"] == 55 and train["version"] == "v2.0"
    assert counts["dev_questions"] == sum(len(p["qas"]) for a in dev["data"] for p in a["paragraphs"])


def test_convert_of_a_bad_file_writes_nothing(tmp_path):
    source = write(tmp_path, squad({"context": CONTEXT, "qas": [qa("q1", "Where?", [("France", 99)])]},
                                   {"context": CONTEXT, "qas": [qa("q2", "Where?", [("France", 53)])]}))
    with pytest.raises(DataError):
        data.convert(source, tmp_path / "out", dev_ratio=0.5)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- windows

def test_context_spans_follow_doc_stride_and_reach_the_end():
    assert context_spans(10, 20, 4) == [(0, 10)]
    assert context_spans(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert context_spans(10, 4, 8) == [(0, 4), (4, 8), (8, 10)]  # a stride past the room leaves no gap
    spans = context_spans(1000, 61, 32)
    assert spans[0][0] == 0 and spans[-1][1] == 1000 and all(b - a <= 61 for a, b in spans)
    assert all(s2[0] - s1[0] == 32 for s1, s2 in zip(spans, spans[1:]))


def test_token_span_of_characters():
    offsets = [(0, 3), (4, 11), (12, 16), (16, 17)]
    assert token_span(offsets, 4, 11) == (1, 1)
    assert token_span(offsets, 5, 16) == (1, 2)   # a span inside words takes the whole tokens
    assert token_span(offsets, 3, 4) is None        # only a space


def test_windows_labels_and_no_answer_windows(tokenizer):
    layout = PairLayout.of(tokenizer)
    assert layout.head == (tokenizer.cls_token_id,) and layout.tail == (tokenizer.sep_token_id,)
    words = [f"word{i}" for i in range(60)]
    context = " ".join(words[:50]) + " Paris " + " ".join(words[50:])
    start = context.index("Paris")
    questions = [data.Question("q1", "Which city?", context, [("Paris", start)]),
                 data.Question("q2", "Which river?", context, [])]
    windows = make_windows(tokenizer, questions, max_seq_length=48, doc_stride=16, max_query_length=8)
    first = [w for w in windows if w.question == 0]
    assert len(first) > 3 and all(len(w.input_ids) <= 48 for w in windows)
    assert [w.question for w in windows] == [0] * len(first) + [1] * len(first)
    with_answer = [w for w in first if w.start_position != NO_ANSWER]
    assert with_answer and len(with_answer) < len(first)  # windows without the answer train as "no answer"
    for w in with_answer:
        assert tokenizer.decode(w.input_ids[w.start_position:w.end_position + 1]) == "paris"
        a = w.offsets[w.start_position - w.context_start][0]
        b = w.offsets[w.end_position - w.context_start][1]
        assert context[a:b] == "Paris"
        assert w.token_type_ids[w.context_start] == 1 and w.token_type_ids[1] == 0
    assert all(w.start_position == w.end_position == NO_ANSWER for w in windows if w.question == 1)
    # together the windows cover the whole context
    covered = {o for w in first for o in w.offsets}
    assert covered == set(tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"])


def test_questions_are_cut_to_max_query_length(tokenizer):
    long_question = "why " * 100
    [w] = make_windows(tokenizer, [data.Question("q", long_question, "Paris.")], 64, 16, 10)
    assert w.context_start == 1 + 10 + 1


def test_the_loss_sees_only_cls_and_the_context_as_answer_positions(tokenizer):
    """Training's softmax runs over the positions decoding can pick: [CLS] and the window's context tokens."""
    from tao_launcher.core.data import collate_examples
    from tao_launcher.tasks.question_answering.training import answer_positions

    questions = [data.Question("q1", "Which city is it?", "It is Paris.", [("Paris", 6)]),
                 data.Question("q2", "Where?", "A much longer context about the river Seine in Paris.", [])]
    windows = make_windows(tokenizer, questions, 64, 16, 16)
    batch = collate_examples([w.example(k) for k, w in enumerate(windows)], pad_id=tokenizer.pad_token_id)
    allowed = answer_positions(batch)
    assert allowed.shape == batch["input_ids"].shape
    for row, w in zip(allowed.tolist(), windows):
        context = range(w.context_start, w.context_start + len(w.offsets))
        assert [k for k, on in enumerate(row) if on] == [NO_ANSWER, *context]  # no question, separator, padding
        assert row[w.start_position] and row[w.end_position]  # every label is a position the loss sees


# ----------------------------------------------------------------------------- decoding

def window(question: int, n_context: int, offsets=None) -> Window:
    offsets = offsets or [(3 * i, 3 * i + 2) for i in range(n_context)]
    return Window(question, [0] * (n_context + 3), [0] * (n_context + 3), 2, offsets)


def logits(length: int, starts: dict, ends: dict, null=(0.0, 0.0)) -> np.ndarray:
    out = np.full((length, 2), -10.0)
    out[NO_ANSWER] = null
    for position, value in starts.items():
        out[position, 0] = value
    for position, value in ends.items():
        out[position, 1] = value
    return out


SETTINGS = dict(n_best_size=20, max_answer_length=30, version_2_with_negative=True, null_score_diff_threshold=0.0)
TEXT = "aa bb cc dd ee ff gg"  # token k covers characters 3k..3k+2


def test_best_span_across_windows_and_its_text():
    w1, w2 = window(0, 4), window(0, 4, [(9, 11), (12, 14), (15, 17), (18, 20)])
    out1 = logits(7, {2: 1.0}, {3: 1.0})            # "aa bb": score 2
    out2 = logits(7, {3: 3.0}, {4: 2.0})            # second window "ee ff": score 5
    p = decode([out1, out2], [w1, w2], TEXT, **SETTINGS)
    assert p.answer == "ee ff" and p.null_score_diff == pytest.approx(-5.0)
    assert [c["text"] for c in p.nbest[:3]] == ["ee ff", "aa bb", ""]
    assert sum(c["probability"] for c in p.nbest) == pytest.approx(1.0)


def test_spans_must_be_ordered_short_and_inside_the_context():
    w = window(0, 4)
    out = logits(7, {4: 5.0, 0: 9.0}, {2: 5.0, 5: 1.0, 6: 9.0})  # [CLS] and the [SEP] (6) are not context
    p = decode([out], [w], TEXT, **{**SETTINGS, "version_2_with_negative": False})
    assert p.answer == "cc dd" and p.null_score_diff is None  # end before start (4 -> 2) is refused
    p = decode([logits(7, {2: 5.0}, {5: 5.0})], [w], TEXT, **{**SETTINGS, "max_answer_length": 2,
                                                             "version_2_with_negative": False})
    assert p.answer != "aa bb cc dd"


def test_null_answer_wins_by_the_threshold_and_uses_the_lowest_window_null():
    w1, w2 = window(0, 4), window(0, 4)
    out1 = logits(7, {2: 1.0}, {2: 1.0}, null=(4.0, 4.0))   # null 8, span 2
    out2 = logits(7, {}, {}, null=(1.0, 2.0))               # null 3: the question's null score is 3
    p = decode([out1, out2], [w1, w2], TEXT, **SETTINGS)
    assert p.null_score_diff == pytest.approx(1.0) and p.answer == ""
    assert decode([out1, out2], [w1, w2], TEXT, **{**SETTINGS, "null_score_diff_threshold": 1.5}).answer == "aa"
    assert decode([out1, out2], [w1, w2], TEXT, **{**SETTINGS, "version_2_with_negative": False}).answer == "aa"


def test_decode_all_groups_windows_by_question():
    ws = [window(0, 4), window(1, 4), window(0, 4)]
    outs = [logits(7, {2: 1.0}, {2: 1.0}), logits(7, {3: 5.0}, {3: 5.0}), logits(7, {4: 5.0}, {4: 5.0})]
    assert [p.answer for p in decode_all(outs, ws, [TEXT, TEXT], **SETTINGS)] == ["cc", "bb"]

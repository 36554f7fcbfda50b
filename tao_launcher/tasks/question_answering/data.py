"""question_answering data: SQuAD v1.1 / v2.0 JSON, what every subtask reads, and dataset_convert.

The format (train, finetune, evaluate, dataset_convert and infer's ``input_file`` all read it)::

    {"version": "v2.0",
     "data": [{"title": "Normans",
               "paragraphs": [{"context": "The Normans ... gave their name to Normandy, a region in France.",
                               "qas": [{"id": "56ddde6b9a695914005b9628",
                                        "question": "In what country is Normandy located?",
                                        "answers": [{"text": "France", "answer_start": 159}],
                                        "is_impossible": false}]}]}]}

- ``id`` is unique in the file (a string; a number is read as its text); predictions are keyed by it.
- ``answers``: the gold answers; ``answer_start`` is the character offset of ``text`` in ``context``
  (0-based, Python characters). Training uses the first answer; evaluation scores against all of them.
  A span that does not fit in its context (negative, or past its end) is an error; an answer whose
  text differs from the context at ``answer_start`` is counted (dataset_convert reports it) and trained
  on the span at ``answer_start``, as Hugging Face does.
- ``is_impossible`` (SQuAD v2.0, default false): the question has no answer in its context; its
  ``answers`` must then be empty (v2.0's ``plausible_answers`` are ignored). A question with no answers
  and no ``is_impossible`` is unanswerable too.
- infer's ``input_file`` needs no ``answers``; other keys (``version``, ``title``) are optional.

A mistake is one DataError naming the file and where: the line and column for JSON syntax, and for a
question its line:column in the file (of its ``id``) and its JSON path, as ``data[3].paragraphs[0].qas[5]``.

dataset_convert checks a file and reports its counts (articles, paragraphs, questions, unanswerable
ones, answers whose text is not at ``answer_start``). With ``dev_ratio`` > 0 it also splits the file by
article into ``train.json`` and ``dev.json`` in ``target_data_dir``: ``round(dev_ratio * articles)``
articles (at least one, never all), drawn by a shuffle seeded with ``seed``, go to dev; each file keeps
the source's article order and its ``version``.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tao_launcher.core.convert import check_not_converted, check_target, staged_into
from tao_launcher.core.textfiles import SUBSET_SEED, check_file, subset, visible
from tao_launcher.errors import DataError, UsageError
from tao_launcher.nlp.qa_windows import Question

TASK = "question_answering"
log = logging.getLogger("tao.question_answering")
FIX = "point it at a SQuAD v1.1/v2.0 JSON file"
SPLIT_FILES = ("train.json", "dev.json")  # what dataset_convert writes with dev_ratio > 0


@dataclass
class SquadFile:
    """A parsed SQuAD file: its questions in file order, the raw JSON, and its counts."""

    path: Path
    raw: Dict[str, Any]
    questions: List[Question]
    counts: Dict[str, int]


@dataclass
class _Where:
    """Where something sits in the file, for messages: its JSON path and, for a question, the line:column of
    its id. Computed only when a message is written (``str``): reading a good file never pays for it."""

    path: Path
    text: str
    json_path: str = ""
    qid: Optional[str] = None

    def at(self, json_path: str, qid: Optional[str] = None) -> "_Where":
        return _Where(self.path, self.text, json_path, qid)

    def __str__(self) -> str:
        path, text = self.path, self.text
        if self.qid is not None:
            pos = text.find(json.dumps(self.qid))
            if pos >= 0:
                line = text.count("\n", 0, pos) + 1
                column = pos - (text.rfind("\n", 0, pos) + 1) + 1
                return f"{path}:{line}:{column}: {self.json_path} (question {self.qid!r})"
        return f"{path}: {self.json_path}"

    __format__ = lambda self, spec: format(str(self), spec)  # noqa: E731 - f-strings format it


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8 "
                        f"JSON") from None


def _expect(value: Any, kind: type, where: str, what: str, fix: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise DataError(f"{where}: {what} must be a {_kind(kind)}, got {got}; {fix}")
    return value


def _kind(kind: type) -> str:
    return {dict: "JSON object", list: "JSON list", str: "string", int: "whole number", bool: "true or false"}[kind]


def read_squad(path: str | Path, num_samples: int = -1, *, need_answers: bool = True,
               what: str = "SQuAD file", seed: int = SUBSET_SEED) -> SquadFile:
    """The questions of a SQuAD JSON file (layout above); ``num_samples`` > 0 draws that many
    (``textfiles.subset``, with ``seed``; the counts stay the whole file's).

    ``need_answers=False`` (infer) reads questions without ``answers``. Any mistake is a DataError that names
    the file and where in it."""
    path = Path(path)
    check_file(path, what, FIX)
    text = _decode(path)
    try:
        top = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}); fix the syntax there "
                        f"(a SQuAD file is one JSON object with a 'data' list)") from None
    locate = _Where(path, text)
    _expect(top, dict, f"{path}", "the file", "a SQuAD file is one JSON object with a 'data' list")
    articles = _expect(top.get("data"), list, f"{path}", "'data'", "a SQuAD file is {\"data\": [articles]}")
    questions: List[Question] = []
    seen: Dict[str, str] = {}
    counts = {"articles": len(articles), "paragraphs": 0, "questions": 0, "unanswerable": 0,
              "answers": 0, "answers_not_at_start": 0}
    for a, article in enumerate(articles):
        where = f"data[{a}]"
        _expect(article, dict, locate.at(where), "an article", "write {\"title\": ..., \"paragraphs\": [...]}")
        title = str(article.get("title", ""))
        paragraphs = _expect(article.get("paragraphs"), list, locate.at(where), "'paragraphs'",
                             "each article holds a 'paragraphs' list")
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            _expect(paragraph, dict, locate.at(where), "a paragraph", "write {\"context\": ..., \"qas\": [...]}")
            context = _expect(paragraph.get("context"), str, locate.at(where), "'context'",
                              "each paragraph holds its text as 'context'")
            qas = _expect(paragraph.get("qas"), list, locate.at(where), "'qas'",
                          "each paragraph holds a 'qas' list of questions")
            counts["paragraphs"] += 1
            for q, qa in enumerate(qas):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                _expect(qa, dict, locate.at(where), "a question", "write {\"id\": ..., \"question\": ..., "
                                                                    "\"answers\": [...]}")
                raw_id = qa.get("id")
                if isinstance(raw_id, int) and not isinstance(raw_id, bool):
                    raw_id = str(raw_id)
                qid = _expect(raw_id, str, locate.at(where), "'id'", "give every question a unique 'id'")
                here = locate.at(where, qid)
                if qid in seen:
                    raise DataError(f"{here}: the id repeats {seen[qid]}; give every question a unique 'id'")
                seen[qid] = where
                question = _expect(qa.get("question"), str, here, "'question'", "write the question's text")
                if not visible(question):
                    raise DataError(f"{here}: the question is empty; write its text or delete the question")
                answers = _answers(qa, context, here, need_answers, counts)
                questions.append(Question(qid, question, context, answers, title))
                counts["questions"] += 1
                counts["unanswerable"] += not answers
    if not questions:
        raise DataError(f"{path} holds no questions: a SQuAD file needs data[].paragraphs[].qas[] entries")
    questions = subset(questions, num_samples, source=path, seed=seed, unit="questions", what="kinds of question",
                       labels=lambda q: ["answerable" if q.answers else "unanswerable"])
    return SquadFile(path, top, questions, counts)


def _answers(qa: Dict[str, Any], context: str, here: _Where, need_answers: bool,
             counts: Dict[str, int]) -> List[Tuple[str, int]]:
    impossible = qa.get("is_impossible", False)
    _expect(impossible, bool, here, "'is_impossible'", "write true or false")
    raw = qa.get("answers")
    if raw is None and not need_answers:
        return []
    raw = _expect(raw, list, here, "'answers'", "give a list of {\"text\": ..., \"answer_start\": ...} "
                                                "(an empty list for an unanswerable question)")
    if impossible and raw:
        raise DataError(f"{here}: is_impossible is true but the question has {len(raw)} answer(s); empty its "
                        f"'answers' list (SQuAD v2.0 keeps them as 'plausible_answers') or set is_impossible "
                        f"to false")
    answers = []
    for i, answer in enumerate(raw):
        at = here.at(f"{here.json_path}.answers[{i}]", here.qid)
        _expect(answer, dict, at, "an answer", "write {\"text\": ..., \"answer_start\": ...}")
        text = _expect(answer.get("text"), str, at, "'text'", "write the answer's text")
        start = _expect(answer.get("answer_start"), int, at, "'answer_start'",
                        "give the character offset of the answer in the context")
        if not visible(text):
            raise DataError(f"{at}: the answer text is empty; write the answer, or make the question "
                            f"unanswerable (\"answers\": [], \"is_impossible\": true)")
        if start < 0 or start + len(text) > len(context):
            raise DataError(f"{at}: the answer span {start}..{start + len(text)} ({text[:40]!r}) is outside its "
                            f"context of {len(context)} characters; fix answer_start (the answer's character "
                            f"offset in the context) or the context")
        counts["answers"] += 1
        if context[start:start + len(text)] != text:
            counts["answers_not_at_start"] += 1
        answers.append((text, start))
    return answers


# ----------------------------------------------------------------------------- infer inputs

def batch_questions(items: Sequence[Any]) -> List[Question]:
    """infer's ``input_batch``: ``{"question": ..., "context": ...}`` items as questions with ids "1", "2", ..."""
    out = []
    for i, item in enumerate(items, start=1):
        where = f"input_batch item {i}"
        if not isinstance(item, dict):
            raise UsageError(f"{where} is {item!r}: write each item as {{\"question\": ..., \"context\": ...}}")
        unknown = sorted(set(item) - {"question", "context", "id"})
        if unknown:
            raise UsageError(f"{where} has unknown key(s) {', '.join(unknown)}: an item holds 'question' and "
                             f"'context' (and optionally 'id')")
        for key in ("question", "context"):
            if not isinstance(item.get(key), str) or not visible(item[key]):
                raise UsageError(f"{where} needs a non-empty {key!r} string: write {{\"question\": ..., "
                                 f"\"context\": ...}}")
        out.append(Question(str(item.get("id", i)), item["question"], item["context"]))
    return out


# ----------------------------------------------------------------------------- dataset_convert

def convert(source: Path, target: Optional[Path], dev_ratio: float = 0.0, seed: int = 42,
            overwrite: bool = False) -> Dict[str, int]:
    """Check ``source`` and report its counts; with ``dev_ratio`` > 0 split it by article into ``target``
    (train.json, dev.json), staged in a temp folder first: nothing half-written. ``overwrite``: the user lets it
    replace files of those names that no dataset_convert wrote (core/convert.py)."""
    if dev_ratio > 0:
        check_target(Path(target), SPLIT_FILES, overwrite=overwrite)
        check_not_converted(source, "source_file")  # splitting a split again would shrink it at every rerun
    squad = read_squad(source, what="source_file")
    counts = dict(squad.counts)
    if squad.counts["answers_not_at_start"]:
        log.warning("%d of the %d answers of %s differ from their context at answer_start (training uses the "
                    "span at answer_start)", squad.counts["answers_not_at_start"], squad.counts["answers"], source)
    if dev_ratio <= 0:
        return counts
    articles = squad.raw["data"]
    if len(articles) < 2:
        raise UsageError(f"source_file {source} holds {len(articles)} article: too few to split by article; "
                         f"set dev_ratio=0 or give more articles")
    order = list(range(len(articles)))
    random.Random(seed).shuffle(order)
    n_dev = min(max(1, int(len(articles) * dev_ratio + 0.5)), len(articles) - 1)
    dev = set(order[:n_dev])
    version = squad.raw.get("version", "v2.0")
    splits = {"train.json": [x for i, x in enumerate(articles) if i not in dev],
              "dev.json": [x for i, x in enumerate(articles) if i in dev]}
    with staged_into(Path(target), SPLIT_FILES, overwrite=overwrite) as stage:
        for name, split in splits.items():
            with open(stage / name, "w", encoding="utf-8") as out:
                json.dump({"version": version, "data": split}, out, ensure_ascii=False)
            stem = name.split(".")[0]
            counts[f"{stem}_articles"] = len(split)
            counts[f"{stem}_questions"] = sum(len(p["qas"]) for x in split for p in x["paragraphs"])
    return counts

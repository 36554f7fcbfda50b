"""intent_slot_classification data: NeMo's training format, dataset_convert for ATIS and SNIPS, infer files.

Training format (what train, finetune and evaluate read; what dataset_convert writes), NeMo's::

    dict.intents.csv     intent names, one a line; line N is intent id N-1
    dict.slots.csv       slot tags (BIO: B-X starts an X slot, I-X continues it, O is no slot), one a line;
                         line N is slot id N-1
    <prefix>.tsv         a header line 'sentence<TAB>label', then one utterance a line: its words separated
                         by single spaces, a TAB, its intent id
    <prefix>_slots.tsv   no header; line N holds the slot ids of the words of utterance N of <prefix>.tsv,
                         one a word, separated by spaces

``<prefix>`` is ``train``, ``dev`` or ``test`` (the spec's ``training_ds.prefix``, ``validation_ds.prefix``,
``test_ds.prefix``). dataset_convert writes ``UNK`` as the last line of both dicts: the id of the intents and
slot tags that appear only in dev or test (see below). A model never predicts UNK; evaluate counts an UNK
gold intent, and an UNK gold slot, as an error. Data written by other tools needs no UNK line.

Source of dataset_convert (``dataset_name=atis`` or ``snips``; both come in this layout, as in the
SlotGated-SLU and JointBERT releases)::

    train/seq.in    one utterance a line, words separated by spaces
    train/seq.out   the same lines: one BIO slot tag a word
    train/label     the same lines: the utterance's intent (a multi-intent label such as
                    ``atis_flight#atis_airfare`` is one intent)
    dev/ ...        the same three files (``valid/`` is read as dev); optional
    test/ ...       optional
    intent_label.txt, slot_label.txt   optional: the label sets, one a line (JointBERT's UNK and PAD
                    entries are skipped); they give the ids' order

The label sets are those of the label files, in their order (O first among the slots), and any other
label of the train split after them, sorted; without label files, the train split's labels, sorted
(O first). An intent or slot tag of dev or test outside these sets is written as the UNK id and counted
in the summary, by split and by label: it is never dropped. A line blank in seq.in and seq.out is
skipped (its label line must be blank too). A word/tag count mismatch, a missing or extra label line, or an
intent with a space is an error naming ``file:line``; nothing is written then.

infer ``input_file``: one utterance a line, words separated by spaces; blank lines are skipped. infer prints
the intent with its probability and the slots as spans::

    show me flights from boston to denver on monday
      intent: atis_flight (0.9931)
      slots: fromloc.city_name: boston | toloc.city_name: denver | depart_date.day_name: monday
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tao_launcher.core.convert import check_target, staged_into
from tao_launcher.core.textfiles import (SUBSET_SEED, check_file, read_input_lines, read_label_list, read_lines,
                                         read_parallel, subset)
from tao_launcher.errors import DataError, UsageError
from tao_launcher.core.textfiles import data_folder

TASK = "intent_slot_classification"
log = logging.getLogger("tao.intent_slot_classification")
INTENTS_DICT = "dict.intents.csv"
SLOTS_DICT = "dict.slots.csv"
UNK = "UNK"
OUTSIDE = "O"
HEADER = "sentence\tlabel"
SPLITS = ("train", "dev", "test")
SOURCE_FOLDERS = {"train": ("train",), "dev": ("dev", "valid"), "test": ("test",)}
SOURCE_FILES = ("seq.in", "seq.out", "label")
LABEL_FILE_MARKERS = ("UNK", "PAD")  # JointBERT's vocab entries, not labels


# ----------------------------------------------------------------------------- the training files

def read_dict(path: str | Path, what: str) -> List[str]:
    """The labels of dict.intents.csv or dict.slots.csv, id order."""
    name = INTENTS_DICT if what == "intent" else SLOTS_DICT
    return read_label_list(path, fix=f"point it at the {name} that dataset_convert wrote",
                           empty_fix=f"write one {what} name a line")


def read_examples(folder: Path, prefix: str, num_samples: int, intents: Sequence[str], slots: Sequence[str],
                  seed: int = SUBSET_SEED) -> Tuple[List[List[str]], List[int], List[List[int]]]:
    """(words, intent id, slot ids) of each utterance of ``<prefix>.tsv`` / ``<prefix>_slots.tsv``.

    A bad line is a DataError naming file:line and the fix; ``num_samples`` > 0 draws that many utterances
    (``textfiles.subset``, with ``seed``)."""
    tsv, slots_tsv = folder / f"{prefix}.tsv", folder / f"{prefix}_slots.tsv"
    fix = f"dataset_convert writes {prefix}.tsv and {prefix}_slots.tsv; check data_dir and the prefix"
    check_file(tsv, "data file", fix)
    check_file(slots_tsv, "slots file", fix)
    utterances: List[Tuple[int, List[str], int]] = []
    for number, line in read_lines(tsv):
        if not line.strip() or (number == 1 and line.strip().lower().replace(" ", "") == HEADER.replace(" ", "")):
            continue
        sentence, tab, label = line.rpartition("\t")
        if not tab or not sentence.split():
            raise DataError(f"{tsv}:{number}: expected 'sentence<TAB>intent id', got {line[:60]!r}; separate the "
                            f"words and the intent id with one TAB")
        intent = _label_id(label, len(intents), f"{tsv}:{number}", "intent", INTENTS_DICT)
        utterances.append((number, sentence.split(), intent))
    if not utterances:
        raise DataError(f"data file {tsv} holds no utterances: write 'words<TAB>intent id' lines under the header")
    slot_lines = [(n, line.split()) for n, line in read_lines(slots_tsv)]
    while slot_lines and not slot_lines[-1][1]:
        slot_lines.pop()
    examples: List[Tuple[List[str], int, List[int]]] = []
    for index, (number, sentence, intent) in enumerate(utterances):
        if index >= len(slot_lines):
            raise DataError(f"{slots_tsv}:{index + 1}: missing: {tsv} has an utterance on line {number} but "
                            f"{slots_tsv} has only {len(slot_lines)} lines; line N of the slots file holds the "
                            f"slot ids of the N-th utterance")
        slot_number, ids = slot_lines[index]
        if len(ids) != len(sentence):
            raise DataError(f"{slots_tsv}:{slot_number}: {len(ids)} slot ids for the {len(sentence)} words of "
                            f"{tsv}:{number}; give every word exactly one slot id")
        examples.append((sentence, intent, [_label_id(i, len(slots), f"{slots_tsv}:{slot_number}", "slot",
                                                      SLOTS_DICT) for i in ids]))
    if len(slot_lines) > len(utterances):
        raise DataError(f"{slots_tsv}:{len(utterances) + 1}: {tsv} has {len(utterances)} utterances but "
                        f"{slots_tsv} has {len(slot_lines)} lines; make them line up")
    examples = subset(examples, num_samples, source=tsv, seed=seed, unit="utterances", what="intents and slot tags",
                      labels=lambda example: [intents[example[1]], *(slots[i] for i in example[2])])
    words, intent_ids, slot_ids = (list(column) for column in zip(*examples))
    return words, intent_ids, slot_ids


def label_sets(class_labels, data_dir: str) -> Tuple[List[str], List[str]]:
    """(intents, slots) of the spec's ``class_labels`` files, else of the dicts in data_dir."""
    folder = data_folder(data_dir)
    return (read_dict(Path(class_labels.intent_labels_file or folder / INTENTS_DICT), "intent"),
            read_dict(Path(class_labels.slot_labels_file or folder / SLOTS_DICT), "slot"))


def read(data_dir: str, ds, config: Dict, seed: int = SUBSET_SEED,
         ) -> Tuple[List[List[str]], List[int], List[List[int]]]:
    """``read_examples`` of the ``<ds.prefix>`` files in data_dir, as ids of the model's labels (``config``):
    dicts in data_dir that say otherwise are an error, not a silent mix-up. ``seed`` draws num_samples."""
    folder = data_folder(data_dir)
    for name, what, labels in ((INTENTS_DICT, "intent", config["intent_labels"]),
                               (SLOTS_DICT, "slot", config["slot_labels"])):
        if (folder / name).is_file() and read_dict(folder / name, what) != labels:
            raise DataError(f"{folder / name} differs from the {what} labels of the model ({len(labels)}: "
                            f"{' '.join(labels[:5])} ...), so the ids in {ds.prefix}.tsv would name other labels: "
                            f"use data converted with the model's dicts, or finetune on this data first")
    return read_examples(folder, ds.prefix, ds.num_samples, config["intent_labels"], config["slot_labels"], seed)


def _label_id(text: str, count: int, where: str, what: str, dict_name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DataError(f"{where}: {what} id {text.strip()[:20]!r} is not an integer; ids are line numbers "
                        f"(from 0) of {dict_name}") from None
    if not 0 <= value < count:
        raise DataError(f"{where}: {what} id {value} is out of range for the {count} {what}s of {dict_name}; fix "
                        f"the line or the dict")
    return value


def read_utterances(path: str | Path) -> List[str]:
    """Utterances for infer: one a line, blank lines skipped."""
    return read_input_lines(path, fix="set input_file to a text file with one utterance a line",
                            empty_fix="write one utterance a line in it")


def slot_spans(words: Sequence[str], tags: Sequence[str]) -> List[Dict[str, object]]:
    """The slots of an utterance as spans by the conlleval rules: slot type, words, word range."""
    from tao_launcher.core.metrics import extract_spans

    return [{"slot": kind, "text": " ".join(words[start:end]), "start": start, "end": end}
            for kind, start, end in extract_spans(tags)]


# ----------------------------------------------------------------------------- dataset_convert

Utterance = Tuple[List[str], List[str], str]  # words, slot tags, intent


def _read_source_split(folder: Path) -> List[Utterance]:
    """The utterances of one source split folder (seq.in, seq.out, label); errors name file:line."""
    seq_in, seq_out, label = (folder / name for name in SOURCE_FILES)
    for path in (seq_in, seq_out, label):
        check_file(path, "source file", f"a split folder holds {', '.join(SOURCE_FILES)}")
    intents = [(n, line.strip()) for n, line in read_lines(label)]
    while intents and not intents[-1][1]:
        intents.pop()
    out: List[Utterance] = []
    used = set()
    for number, words, tags in read_parallel(seq_in, seq_out):
        intent = intents[number - 1][1] if number <= len(intents) else ""
        if not intent:
            raise DataError(f"{label}:{number}: missing: {seq_in}:{number} has an utterance but {label} has no "
                            f"intent on that line; line N of label holds the intent of line N of seq.in")
        if len(intent.split()) != 1:
            raise DataError(f"{label}:{number}: intent {intent[:40]!r} holds a space; write one intent name "
                            f"without spaces a line")
        out.append((words, tags, intent))
        used.add(number)
    extra = [n for n, text in intents if text and n not in used]
    if extra:
        raise DataError(f"{label}:{extra[0]}: an intent, but line {extra[0]} of {seq_in} holds no utterance; "
                        f"make the three files line up")
    return out


def _source_folder(source: Path, split: str) -> Optional[Path]:
    for name in SOURCE_FOLDERS[split]:
        if (source / name).is_dir():
            return source / name
    return None


def _label_file(path: Path) -> Optional[List[str]]:
    """The labels of intent_label.txt / slot_label.txt without JointBERT's UNK and PAD, or None when absent."""
    if not path.is_file():
        return None
    labels = read_label_list(path, fix="delete it or write one label a line")
    return [label for label in labels if label not in LABEL_FILE_MARKERS]


def label_set(listed: Optional[List[str]], seen: Counter, outside_first: bool) -> List[str]:
    """The label file's labels in order, then the train split's others, sorted; O first for slots."""
    labels = list(listed or [])
    extra = sorted(set(seen) - set(labels))
    if listed is not None and extra:
        log.warning("labels of the train split missing from the label file, added after its labels: %s",
                    " ".join(extra))
    labels += extra
    if outside_first:
        labels = [OUTSIDE] + [label for label in labels if label != OUTSIDE]
    return labels


def convert(dataset_name: str, source: Path, target: Path, overwrite: bool = False) -> Dict[str, object]:
    """Write NeMo's files into ``target`` from the seq.in/seq.out/label layout; returns the summary:
    utterances per split, the label counts, and per split the UNK intents and slot tags. ``overwrite``: the user
    lets it replace files of those names that no dataset_convert wrote (core/convert.py)."""
    source, target = Path(source), Path(target)
    if not source.is_dir():
        what = "is a file, not a folder" if source.exists() else "does not exist"
        raise UsageError(f"source_data_dir {source} {what}: give the {dataset_name} folder holding train/ "
                         f"(and dev/, test/) with seq.in, seq.out and label")
    if target.exists() and not target.is_dir():
        raise UsageError(f"target_data_dir {target} is a file, not a folder: give a folder (it is created "
                         f"when missing)")
    # every split's files, written or not: a split an earlier convert wrote that this source lacks would not
    # match the new dicts, so it goes
    names = [INTENTS_DICT, SLOTS_DICT] + [name for split in SPLITS for name in (f"{split}.tsv", f"{split}_slots.tsv")]
    check_target(target, names, overwrite=overwrite)
    folders = {split: _source_folder(source, split) for split in SPLITS}
    if folders["train"] is None:
        found = ", ".join(sorted(p.name for p in source.iterdir())) or "nothing"
        raise UsageError(f"source_data_dir {source} has no train/ folder (found: {found}): the {dataset_name} "
                         f"layout is train/, dev/ and test/ folders, each with seq.in, seq.out and label")
    data = {split: _read_source_split(folder) for split, folder in folders.items() if folder is not None}
    intents = label_set(_label_file(source / "intent_label.txt"), Counter(i for _, _, i in data["train"]), False)
    slots = label_set(_label_file(source / "slot_label.txt"),
                      Counter(t for _, tags, _ in data["train"] for t in tags), True)
    intents, slots = intents + [UNK], slots + [UNK]
    intent_id = {name: i for i, name in enumerate(intents)}
    slot_id = {name: i for i, name in enumerate(slots)}
    summary: Dict[str, object] = {"dataset_name": dataset_name, "intents": len(intents) - 1,
                                  "slots": len(slots) - 1}
    with staged_into(target, names, overwrite=overwrite) as stage:  # nothing half-written in target
        (stage / INTENTS_DICT).write_text("".join(f"{name}\n" for name in intents), encoding="utf-8")
        (stage / SLOTS_DICT).write_text("".join(f"{name}\n" for name in slots), encoding="utf-8")
        for split, utterances in data.items():
            unknown_intents: Counter = Counter(i for _, _, i in utterances if i not in intent_id)
            unknown_slots: Counter = Counter(t for _, tags, _ in utterances for t in tags if t not in slot_id)
            with open(stage / f"{split}.tsv", "w", encoding="utf-8", newline="\n") as tsv, \
                    open(stage / f"{split}_slots.tsv", "w", encoding="utf-8", newline="\n") as slots_out:
                tsv.write(HEADER + "\n")
                for words, tags, intent in utterances:
                    tsv.write(f"{' '.join(words)}\t{intent_id.get(intent, intent_id[UNK])}\n")
                    slots_out.write(" ".join(str(slot_id.get(t, slot_id[UNK])) for t in tags) + "\n")
            summary[f"utterances_{split}"] = len(utterances)
            summary[f"unk_intents_{split}"] = sum(unknown_intents.values())
            summary[f"unk_slots_{split}"] = sum(unknown_slots.values())
            if unknown_intents or unknown_slots:
                log.warning("%s: %d utterance(s) with an intent the train split lacks, written as %s: %s; %d word(s) "
                            "with a slot tag the train split lacks, written as %s: %s", split,
                            sum(unknown_intents.values()), UNK, _counted(unknown_intents),
                            sum(unknown_slots.values()), UNK, _counted(unknown_slots))
    return summary


def _counted(counts: Counter) -> str:
    return ", ".join(f"{name} ({n})" for name, n in sorted(counts.items())) or "none"

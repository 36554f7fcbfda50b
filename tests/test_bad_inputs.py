"""Bad input, table-driven: every row is a mistake a user can make, and what tao must do about it.

Each row asserts the exit code, exactly one ``tao: error:`` sentence (one line, no traceback, the
fragments it must and must not hold), and that nothing was created or half-written: an exit-2 row
leaves the test folder exactly as it was (no results folder), any row leaves no ``*.partial`` file
and no model archive behind.

The rows live in ``ROWS``, by task. A new task adds ``ROWS["<task>"] = [...]`` (its own paths and
data mistakes) and gets the shared rows (spec ranges, parser errors, folders) for free through
``shared_rows``; ``test_every_task_has_rows`` fails until it does.

How a row runs (``via``), cheapest first; all are the real code paths a user reaches:
- ``host``: the ``tao`` command line (``cli.run``) in this process: spec, override and mounts-file
  errors stop there, before any runner starts (milliseconds each);
- ``entry``: the in-container entrypoint (``entrypoint.main``) in this process, as both runners call
  it; torch is imported once for the whole file;
- ``cli``: the real ``tao`` in a subprocess with the local runner (a few rows, end to end).
Runtime: about 26 s on 2 cores for 363 rows (most of it the rows that load a tiny model or the encoder).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from conftest import KEY, sine_wav, tao, tao_env, tiny_speech_archive
from tao_launcher.registry import TASKS

TC, NER, PC = "text_classification", "token_classification", "punctuation_and_capitalization"
DIGITS_400 = "1" * 400
# the mounts file is read when no runner is named (a local run named by TAO_RUNNER ignores it)
MOUNTS_ENV = {"TAO_RUNNER": "", "TAO_MOUNTS_FILE": "{mounts_json}"}


@dataclass
class Row:
    """One bad input. ``args`` follow ``tao TASK SUBTASK``; ``{name}`` is replaced by a path of ``Paths``."""

    id: str
    task: str
    subtask: str
    args: List[str]
    code: int
    expect: Tuple[str, ...]                  # fragments of the error sentence
    forbid: Tuple[str, ...] = ()             # fragments it must not hold (a misleading hint)
    via: str = "entry"
    files: Dict[str, bytes] = field(default_factory=dict)   # extra files, {name} -> content
    env: Dict[str, str] = field(default_factory=dict)
    needs: Optional[Callable[["Paths"], Optional[str]]] = None   # returns a skip reason, or None


# ----------------------------------------------------------------------------- shared rows

PATH_VALUES = {"file": "{file}", "dir": "{folder}", "exists": "{folder}", "out_dir": "{out}", True: "{folder}"}


def schema_of(task: str, subtask: str):
    return TASKS[task].subtasks[subtask].schema()


def required_args(task: str, subtask: str) -> List[str]:
    """-m and every ??? field of a subtask, with values that pass every check before the one a row breaks
    (read from the schema, so a new task needs nothing here)."""
    from tao_launcher.spec.load import leaf_fields
    from tao_launcher.spec.schema import REQUIRED

    args = ["-m", "{file}"] if subtask not in ("train", "dataset_convert") else []
    for key, leaf in leaf_fields(schema_of(task, subtask)).items():
        if leaf.default != REQUIRED:
            continue
        if leaf.path:
            value = PATH_VALUES[leaf.path]
        elif leaf.choices:
            value = str(leaf.choices[0])
        elif leaf.type in (int, float):
            value = str(leaf.range.min if leaf.range.min is not None else 2)
        else:
            value = "x"
        args.append(f"{key}={value}")
    return args


def find_key(task: str, subtask: str, name: str) -> Optional[str]:
    """The schema key ``name`` (or the first one ending in ``.name``), or None where the task has none."""
    from tao_launcher.spec.load import leaf_fields

    keys = list(leaf_fields(schema_of(task, subtask)))
    return next((k for k in keys if k == name), None) or next((k for k in keys if k.endswith("." + name)), None)


# (subtask, key or key suffix, value, fragments after "KEY must be"): ranges every task shares
SHARED_RANGES = [
    ("train", "training_ds.batch_size", "0", "1 to"),
    ("train", "training_ds.batch_size", "-4", "1 to"),
    ("train", "trainer.max_epochs", "-1", "1 to"),
    ("train", "trainer.max_epochs", "0", "1 to"),
    ("train", "trainer.max_steps", "0", "1 to", "(or -1)"),
    ("train", "training_ds.num_workers", "-1", "0 to"),
    ("train", "optim.lr", "-1", "more than 0"),
    ("train", "optim.lr", ".nan", ""),
    ("train", "optim.lr", DIGITS_400, "", "a 400-digit number"),
    ("train", "trainer.seed", DIGITS_400, "0 to", "a 400-digit number"),
    ("train", "max_seq_length", "0", ""),
    ("train", "max_seq_length", "-1", ""),
    ("train", "trainer.val_check_interval", "0", "more than 0"),
    ("train", "optim.sched.warmup_ratio", "5", "0 to 1"),
    ("train", "fc_dropout", "1", "at least 0 and less than 1"),
    ("train", "optim.betas", "[0.9]", "a list of 2 numbers"),
    ("export", "onnx_opset", "1", ""),
    ("evaluate", "test_ds.batch_size", "0", "1 to"),
]


def shared_rows(task: str) -> List[Row]:
    """The rows every task gets from its schemas alone: spec ranges, override and spec-file parser errors,
    and the -e/-r/-m paths."""
    rows = []
    subtasks = TASKS[task].subtasks
    for subtask, name, value, *expect in SHARED_RANGES:
        key = find_key(task, subtask, name) if subtask in subtasks else None
        if key:
            rows.append(Row(f"{task}-{subtask}-{key}={value[:12]}", task, subtask,
                            required_args(task, subtask) + [f"{key}={value}"], 2,
                            (f"command line '{key}=", f"{key} must be {expect[0]}", *expect[1:]), via="host"))

    def spec(id, extra, *expect, files=None, forbid=()):
        return Row(f"{task}-{id}", task, "train", required_args(task, "train") + list(extra), 2, expect, forbid,
                   "host", files or {})

    return rows + [
        # class 1: overrides the parser refuses, named as the user typed them
        spec("override-open-list", ["optim.betas=[0.9,"], "cannot read override 'optim.betas=[0.9,'"),
        spec("override-open-quote", ["optim.name='adamw"], "cannot read override 'optim.name='adamw'"),
        spec("override-interpolation", ["optim.name=${"], "cannot read override 'optim.name=${'"),
        spec("override-blank-key", [" =1"], "cannot read override ' =1'", "key=value"),
        spec("override-alias", ["optim.name=*a"], "cannot read override 'optim.name=*a'"),
        spec("override-set-tag", ["optim.name=!!set"], "cannot read override 'optim.name=!!set'"),
        spec("override-python-tag", ["optim.name=!!python/name:os.system"], "cannot read override"),
        # class 1: spec files the parser refuses, named by file:line
        spec("spec-python-tag", ["-e", "{bad_yaml}"], "bad.yaml:2: not valid YAML",
             files={"bad_yaml": b"trainer:\n  seed: !!python/name:os.system\n"}),
        spec("spec-not-utf8", ["-e", "{bad_yaml}"], "bad.yaml:3: not UTF-8",
             files={"bad_yaml": b"trainer:\n  seed: 1\n  # caf\xe9\n"}),
        spec("spec-syntax", ["-e", "{bad_yaml}"], "bad.yaml:3: not valid YAML",
             files={"bad_yaml": b"trainer:\n  seed: 1\n\tmax_epochs: 2\n"}),
        spec("spec-range-line", ["-e", "{bad_yaml}"], "bad.yaml:3: trainer.max_epochs must be 1 to",
             files={"bad_yaml": b"trainer:\n  seed: 1\n  max_epochs: 0\n"}),
        spec("spec-is-folder", ["-e", "{folder}"], "is a folder, not a file", forbid=("does not exist",)),
        # class 2: where the results would go, and the model
        Row(f"{task}-results-under-file", task, "dataset_convert",
            ["-r", "{file}/results"] + required_args(task, "dataset_convert"), 2,
            ("cannot be created because", "is a file")),
        Row(f"{task}-results-read-only", task, "dataset_convert",
            ["-r", "{read_only}/results"] + required_args(task, "dataset_convert"), 2, ("read-only",),
            needs=lambda p: p.read_only_reason),
        Row(f"{task}-model-is-folder", task, "evaluate", required_args(task, "evaluate")[2:] + ["-m", "{folder}"], 2,
            ("model archive", "is a folder, not a file"), ("does not exist",)),
        Row(f"{task}-model-is-a-device", task, "evaluate", required_args(task, "evaluate")[2:] + ["-m", "/dev/zero"],
            2, ("model archive /dev/zero is not a regular file (a character device)",), ("does not exist",)),
        # numbered GPUs this machine lacks (the local runner counts them; -g N alone runs on the CPU where none)
        Row(f"{task}-gpu-index-missing", task, "evaluate", required_args(task, "evaluate") + ["--gpu-index", "0,63"], 2,
            ("GPUs 0,63 were asked for, but this machine has", "--gpu-index"), via="host", needs=gpus_uncountable),
    ] + input_file_rows(task)


def input_file_rows(task: str) -> List[Row]:
    """An existing FIFO as infer's input file (or one of speech's file_paths): not a regular file."""
    key = find_key(task, "infer", "input_file")
    value = "{fifo}" if key else "[{fifo}]"
    key = key or find_key(task, "infer", "file_paths")
    if not key:
        return []
    return [Row(f"{task}-infer-input-fifo", task, "infer", required_args(task, "infer") + [f"{key}={value}"], 2,
                ("is not a regular file (a FIFO)", "{fifo}"), ("does not exist",))]


def gpus_uncountable(paths: "Paths") -> Optional[str]:
    from tao_launcher.launcher.gpus import host_gpus

    count = host_gpus()
    return "this machine's GPUs cannot be counted" if count is None or count > 63 else None


# ----------------------------------------------------------------------------- task rows

# the good arguments of a text_classification train, for the rows that break one thing after them
TC_TRAIN = ["model.dataset.num_classes=2", "training_ds.file_path={tc_train}", "validation_ds.file_path={tc_dev}"]

ROWS: Dict[str, List[Row]] = {
    TC: [
        Row("tc-train-file-is-folder", TC, "train",
            ["model.dataset.num_classes=2", "training_ds.file_path={folder}", "validation_ds.file_path={tc_dev}"],
            2, ("training_ds.file_path", "is a folder, not a file"), ("does not exist",)),
        Row("tc-train-file-missing", TC, "train",
            ["model.dataset.num_classes=2", "training_ds.file_path={missing}", "validation_ds.file_path={tc_dev}"],
            2, ("training_ds.file_path", "does not exist")),
        Row("tc-train-file-empty-path", TC, "train",
            ["model.dataset.num_classes=2", "training_ds.file_path=''", "validation_ds.file_path={tc_dev}"],
            2, ("training_ds.file_path is empty",)),
        Row("tc-num_classes-1", TC, "train", TC_TRAIN[1:] + ["model.dataset.num_classes=1"],
            2, ("model.dataset.num_classes must be 2 to",), via="host"),
        Row("tc-num_classes-0", TC, "train", TC_TRAIN[1:] + ["model.dataset.num_classes=0"],
            2, ("model.dataset.num_classes must be 2 to",), via="host"),
        Row("tc-train-data-not-utf8", TC, "train",
            ["model.dataset.num_classes=2", "training_ds.file_path={not_utf8}", "validation_ds.file_path={tc_dev}"],
            1, ("not_utf8.txt:1: not UTF-8", "save the file as UTF-8")),
        Row("tc-labels-not-utf8", TC, "train", TC_TRAIN +
            ["model.class_labels.class_labels_file={not_utf8}"], 1, ("not_utf8.txt:1: not UTF-8",)),
        Row("tc-labels-is-folder", TC, "train", TC_TRAIN +
            ["model.class_labels.class_labels_file={folder}"], 2, ("class_labels_file", "is a folder, not a file")),
        Row("tc-convert-target-is-file", TC, "dataset_convert", ["source_data_dir={sst2}", "target_data_dir={file}"],
            2, ("target_data_dir", "is a file, not a folder")),
        Row("tc-convert-target-under-file", TC, "dataset_convert",
            ["source_data_dir={sst2}", "target_data_dir={file}/data"], 2, ("cannot be created because",)),
        Row("tc-convert-source-missing", TC, "dataset_convert", ["source_data_dir={missing}", "target_data_dir={out}"],
            2, ("source_data_dir", "does not exist")),
        Row("tc-convert-dataset-choice", TC, "dataset_convert", required_args(TC, "dataset_convert") +
            ["dataset_name=glue"], 2, ("dataset_name must be one of sst2, imdb",), via="host"),
        Row("tc-infer-input-is-folder", TC, "infer", ["-m", "{tc_model}", "input_file={folder}"],
            2, ("input_file", "is a folder, not a file"), ("does not exist",)),
        Row("tc-infer-input-empty-path", TC, "infer", ["-m", "{tc_model}", "input_file=''"],
            2, ("input_file is empty", "null to leave it unset")),
        Row("tc-infer-input-empty-file", TC, "infer", ["-m", "{tc_model}", "input_file={empty}"],
            1, ("holds no sentences",), ("set input_file",)),
        Row("tc-infer-input-not-utf8", TC, "infer", ["-m", "{tc_model}", "input_file={not_utf8}"],
            1, ("not_utf8.txt:1: not UTF-8",)),
        Row("tc-infer-not-an-archive", TC, "infer", ["-m", "{file}"], 1, ("not a tao archive",)),
        Row("tc-infer-wrong-key", TC, "infer", ["-m", "{tc_model}"], 1, ("wrong key or corrupted file",),
            env={"TAO_KEY": "not-the-key"}),
        Row("tc-infer-model-missing", TC, "infer", ["-m", "{missing}"], 2, ("model archive", "does not exist")),
        Row("tc-finetune-label-names", TC, "finetune", ["-m", "{tc_model}", "finetuning_ds.file_path={tc_train}",
                                                       "validation_ds.file_path={tc_dev}"] +
            ["model.class_labels.class_labels_file={tc_other_labels}"], 2, ("do not match",),
            ("num_classes",)),
        Row("tc-finetune-label-range", TC, "finetune",
            ["-m", "{tc_model}", "finetuning_ds.file_path={tc_label_5}", "validation_ds.file_path={tc_dev}"],
            1, ("label 5 is out of range for the model's 2 classes",), ("num_classes",)),
        Row("tc-evaluate-not-utf8", TC, "evaluate", ["-m", "{tc_model}", "test_ds.file_path={not_utf8}"],
            1, ("not_utf8.txt:1: not UTF-8",)),
        Row("tc-export-opset-high", TC, "export", ["-m", "{tc_model}", "onnx_opset=99"], 2,
            ("onnx_opset must be",), via="host"),
        Row("tc-export-format", TC, "export", ["-m", "{tc_model}", "export_format=tflite"], 2,
            ("export_format must be one of RIVA, ONNX",), via="host"),
        Row("tc-infer_onnx-tao-archive", TC, "infer_onnx", ["-m", "{tc_model}"], 2, ("is a .tao archive",)),
        # the launcher's own inputs: the mounts file
        Row("mounts-is-folder", TC, "train", required_args(TC, "train"), 2,
            ("mounts file", "is a folder, not a file"), via="host", env={**MOUNTS_ENV, "TAO_MOUNTS_FILE": "{folder}"}),
        Row("mounts-not-utf8", TC, "train", required_args(TC, "train"), 2, ("mounts.json:2: not UTF-8",),
            via="host", files={"mounts_json": b'{\n"Runner": "local\xff"}\n'}, env=MOUNTS_ENV),
        Row("mounts-bad-json", TC, "train", required_args(TC, "train"), 2, ("mounts.json:1: not valid JSON",),
            via="host", files={"mounts_json": b'{"Mounts": [}'}, env=MOUNTS_ENV),
        Row("mounts-ulimit-abc", TC, "train", required_args(TC, "train"), 2,
            ("DockerOptions.ulimits.nofile must be a whole number", '"abc"'), via="host",
            files={"mounts_json": b'{"DockerOptions": {"ulimits": {"nofile": "abc"}}}'},
            env=MOUNTS_ENV),
        Row("mounts-shm-lots", TC, "train", required_args(TC, "train"), 2,
            ("DockerOptions.shm_size must be a size", '"lots"'), via="host",
            files={"mounts_json": b'{"DockerOptions": {"shm_size": "lots"}}'},
            env=MOUNTS_ENV),
        Row("download-specs-output-is-file", TC, "download_specs", ["-o", "{file}"], 2, ("is a file",)),
        # end to end through the real command and the local runner
        Row("cli-tc-train-folder-as-file", TC, "train",
            ["model.dataset.num_classes=2", "training_ds.file_path={folder}", "validation_ds.file_path={tc_dev}"],
            2, ("is a folder, not a file",), via="cli"),
        Row("cli-tc-lr-neg", TC, "train", required_args(TC, "train") + ["optim.lr=-1"], 2,
            ("optim.lr must be more than 0",), via="cli"),
        Row("cli-tc-infer-not-utf8", TC, "infer", ["-m", "{tc_model}", "input_file={not_utf8}"],
            1, ("not UTF-8",), via="cli"),
        Row("cli-tc-full-disk", TC, "infer", ["-m", "{tc_model}", "-r", "{full_disk}/results"], 1,
            ("no space left on the device",), via="cli", needs=lambda p: p.full_disk_reason),
    ],
    NER: [
        Row("ner-data_dir-is-file", NER, "train", ["data_dir={file}"], 2, ("data_dir", "is a file, not a folder")),
        Row("ner-data_dir-missing", NER, "train", ["data_dir={missing}"], 2, ("data_dir", "does not exist")),
        Row("ner-label_ids-is-folder", NER, "train", ["data_dir={ner_data}", "model.label_ids={folder}"], 2,
            ("model.label_ids", "is a folder, not a file")),
        Row("ner-labels-not-utf8", NER, "train", ["data_dir={ner_bad_data}"], 1, ("labels_train.txt:1: not UTF-8",)),
        Row("ner-label_ids-not-utf8", NER, "train", ["data_dir={ner_data}", "model.label_ids={not_utf8}"], 1,
            ("not_utf8.txt:1: not UTF-8",)),
        Row("ner-infer-input-not-utf8", NER, "infer", ["-m", "{ner_model}", "input_file={not_utf8}"], 1,
            ("not_utf8.txt:1: not UTF-8",)),
        Row("ner-infer-input-is-folder", NER, "infer", ["-m", "{ner_model}", "input_file={folder}"], 2,
            ("input_file", "is a folder, not a file")),
        Row("ner-convert-source-is-file", NER, "dataset_convert", ["source_data_dir={file}", "target_data_dir={out}"],
            2, ("source_data_dir", "is a file, not a folder")),
        Row("ner-convert-target-is-file", NER, "dataset_convert",
            ["source_data_dir={ner_source}", "target_data_dir={file}"], 2, ("target_data_dir", "is a file")),
        Row("ner-evaluate-not-utf8", NER, "evaluate", ["-m", "{ner_model}", "data_dir={ner_bad_data}"], 1,
            ("not UTF-8",)),
        Row("ner-num_fc_layers-0", NER, "train", ["data_dir={ner_data}", "model.head.num_fc_layers=0"], 2,
            ("model.head.num_fc_layers must be 1 to 16",), via="host"),
        Row("ner-finetune-task-mismatch", NER, "finetune", ["-m", "{tc_model}", "data_dir={ner_data}"], 2,
            ("holds a text_classification model",)),
    ],
    PC: [
        Row("pc-data_dir-missing", PC, "train", ["data_dir={missing}"], 2, ("data_dir", "does not exist")),
        Row("pc-loss-weight-2", PC, "train", ["data_dir={pc_data}", "model.punct_loss_weight=2"], 2,
            ("model.punct_loss_weight must be 0 to 1",), via="host"),
        Row("pc-margin-neg", PC, "infer", ["-m", "{pc_model}", "margin=-1"], 2, ("margin must be 0 to",), via="host"),
        Row("pc-dev_ratio-1", PC, "dataset_convert", required_args(PC, "dataset_convert") + ["dev_ratio=1"], 2,
            ("dev_ratio must be at least 0 and less than 1",), via="host"),
        Row("pc-convert-target-is-file", PC, "dataset_convert", ["source_data_dir={pc_source}",
                                                                 "target_data_dir={file}"], 2, ("is a file",)),
        Row("pc-convert-source-missing", PC, "dataset_convert", ["source_data_dir={missing}",
                                                                 "target_data_dir={out}"], 2, ("does not exist",)),
        Row("pc-punct-labels-not-utf8", PC, "train", ["data_dir={pc_data}", "model.punct_label_ids={not_utf8}"], 1,
            ("not_utf8.txt:1: not UTF-8",)),
        Row("pc-evaluate-labels-not-utf8", PC, "evaluate", ["-m", "{pc_model}", "data_dir={pc_bad_data}"], 1,
            ("labels_dev.txt:1: not UTF-8",)),
        Row("pc-finetune-unknown-mark", PC, "finetune", ["-m", "{pc_model}", "data_dir={pc_exclaim_data}"], 1,
            ("has punctuation '!'", "knows only these marks"), ("punct_label_ids",)),
        Row("pc-infer-input-empty-file", PC, "infer", ["-m", "{pc_model}", "input_file={empty}"], 1,
            ("is empty",), ("set input_file",)),
        Row("pc-infer-batch-punctuation", PC, "infer", ["-m", "{pc_model}", 'input_batch=["?! ...", "hello"]'], 2,
            ("input_batch item 1 '?! ...' has no words, only punctuation or symbols",)),
        Row("pc-infer-input-punctuation-line", PC, "infer", ["-m", "{pc_model}", "input_file={pc_punct_input}"], 1,
            ("{pc_punct_input}:3: '?!' has no words",)),
    ],
}
ISC = "intent_slot_classification"
ROWS[ISC] = [
    Row("isc-data_dir-missing", ISC, "train", ["data_dir={missing}"], 2, ("data_dir", "does not exist")),
    Row("isc-loss-weight-2", ISC, "train", ["data_dir={isc_data}", "model.intent_loss_weight=2"], 2,
        ("model.intent_loss_weight must be 0 to 1",), via="host"),
    Row("isc-dataset-choice", ISC, "dataset_convert", ["source_data_dir={isc_source}", "target_data_dir={out}",
                                                       "dataset_name=multiwoz"], 2,
        ("dataset_name must be one of atis, snips",), via="host"),
    Row("isc-convert-seq-mismatch", ISC, "dataset_convert", ["source_data_dir={isc_bad_source}",
                                                             "target_data_dir={out}"], 1,
        ("train/seq.out:2: 1 labels for the 3 words of", "train/seq.in:2")),
    Row("isc-convert-no-train", ISC, "dataset_convert", ["source_data_dir={folder}", "target_data_dir={out}"], 2,
        ("has no train/ folder",)),
    Row("isc-convert-source-missing", ISC, "dataset_convert", ["source_data_dir={missing}", "target_data_dir={out}"],
        2, ("source_data_dir", "does not exist")),
    Row("isc-train-slots-mismatch", ISC, "train", ["data_dir={isc_bad_data}"], 1,
        ("train_slots.tsv:2: 1 slot ids for the 3 words of",)),
    Row("isc-evaluate-missing-prefix", ISC, "evaluate", ["-m", "{isc_model}", "data_dir={isc_data}"], 1,
        ("test.tsv does not exist", "prefix")),
    Row("isc-evaluate-other-dicts", ISC, "evaluate", ["-m", "{isc_model}", "data_dir={isc_bad_data}",
                                                      "test_ds.prefix=train"], 1,
        ("dict.intents.csv differs from the intent labels of the model",)),
    Row("isc-finetune-task-mismatch", ISC, "finetune", ["-m", "{tc_model}", "data_dir={isc_data}"], 2,
        ("holds a text_classification model",)),
    Row("isc-infer-input-empty-file", ISC, "infer", ["-m", "{isc_model}", "input_file={empty}"], 1, ("is empty",)),
    Row("isc-infer-batch-spaces", ISC, "infer", ["-m", "{isc_model}", 'input_batch=["   ", "show flights"]'], 2,
        ("input_batch item 1 is blank",)),
]
QA = "question_answering"
QA_TRAIN = ["training_ds.file={qa_train}", "validation_ds.file={qa_train}"]
ROWS[QA] = [
    Row("qa-train-bad-json", QA, "train", ["training_ds.file={qa_bad_json}", "validation_ds.file={qa_train}"], 1,
        ("qa_bad.json:2:33: not valid JSON",)),
    Row("qa-train-answer-outside", QA, "train", ["training_ds.file={qa_outside}", "validation_ds.file={qa_train}"],
        1, ("qa_outside.json:1:", "data[0].paragraphs[0].qas[0].answers[0] (question 'q1')", "is outside its context")),
    Row("qa-evaluate-not-utf8", QA, "evaluate", ["-m", "{qa_model}", "test_ds.file={not_utf8}"], 1,
        ("not_utf8.txt:1: not UTF-8",)),
    Row("qa-train-file-is-folder", QA, "train", ["training_ds.file={folder}", "validation_ds.file={qa_train}"], 2,
        ("training_ds.file", "is a folder, not a file")),
    Row("qa-window-too-small", QA, "train", QA_TRAIN + ["model.dataset.max_seq_length=64"], 2,
        ("leaves -3 sub-tokens of context", "max_query_length"), via="host"),
    Row("qa-n_best-0", QA, "evaluate", ["-m", "{qa_model}", "test_ds.file={qa_train}", "decoding.n_best_size=0"], 2,
        ("decoding.n_best_size must be 1 to 1000",), via="host"),
    Row("qa-convert-dev_ratio-needs-target", QA, "dataset_convert", ["source_file={qa_train}", "dev_ratio=0.5"], 2,
        ("target_data_dir is required",), via="host"),
    Row("qa-convert-one-article", QA, "dataset_convert", ["source_file={qa_train}", "target_data_dir={out}",
                                                          "dev_ratio=0.5"], 2, ("too few to split by article",)),
    Row("qa-evaluate-task-mismatch", QA, "evaluate", ["-m", "{tc_model}", "test_ds.file={qa_train}"], 2,
        ("holds a text_classification model, not question_answering",)),
    Row("qa-infer_onnx-tao-archive", QA, "infer_onnx", ["-m", "{qa_model}"], 2, ("is a .tao archive",)),
    Row("qa-infer-batch-item", QA, "infer", ["-m", "{qa_model}", 'input_batch=[{"question": "Who?"}]'], 2,
        ("input_batch item 1 needs a non-empty 'context'",)),
    Row("qa-infer-batch-zero-width-question", QA, "infer",
        ["-m", "{qa_model}", 'input_batch=[{"question": "\u200b", "context": "Ann lives in Paris."}]'], 2,
        ("input_batch item 1 needs a non-empty 'question'",)),
    Row("qa-infer-file-zero-width-question", QA, "infer", ["-m", "{qa_model}", "input_file={qa_zero_width}"], 1,
        ("qa_zero_width.json:1:", "the question is empty")),
    Row("qa-infer-batch-strings", QA, "infer", ["-m", "{qa_model}", "input_batch=[Who?]"], 2,
        ("input_batch must be a list of mappings",), via="host"),
]
ASR = "speech_to_text"
ASR_TRAIN = ["validation_ds.manifest_filepath={asr_manifest}"]
ASR_GOOD = ["training_ds.manifest_filepath={asr_manifest}", *ASR_TRAIN]
ROWS[ASR] = [
    Row("asr-train-manifest-missing", ASR, "train", ["training_ds.manifest_filepath={missing}", *ASR_TRAIN], 2,
        ("training_ds.manifest_filepath", "does not exist")),
    Row("asr-train-manifest-is-folder", ASR, "train", ["training_ds.manifest_filepath={folder}", *ASR_TRAIN], 2,
        ("training_ds.manifest_filepath", "is a folder, not a file")),
    Row("asr-train-manifest-not-json", ASR, "train", ["training_ds.manifest_filepath={asr_bad_json}", *ASR_TRAIN], 1,
        ("asr_bad.json:2: not JSON", "one object a line")),
    Row("asr-train-audio-missing", ASR, "train", ["training_ds.manifest_filepath={asr_gone}", *ASR_TRAIN], 1,
        ("asr_gone.json:1: audio file", "gone.wav does not exist")),
    Row("asr-train-audio-unreadable", ASR, "train", ["training_ds.manifest_filepath={asr_noise}", *ASR_TRAIN], 1,
        ("asr_noise.json:1: cannot read audio file", "noise.wav")),
    Row("asr-train-wrong-duration", ASR, "train", ["training_ds.manifest_filepath={asr_long}", *ASR_TRAIN], 1,
        ("asr_long.json:1: duration 3.0 s but", "set duration to the file's length")),
    Row("asr-train-empty-transcript", ASR, "train", ["training_ds.manifest_filepath={asr_empty}", *ASR_TRAIN], 1,
        ("asr_empty.json:1: empty transcript",)),
    Row("asr-validation-not-utf8", ASR, "train", ["training_ds.manifest_filepath={asr_manifest}",
                                                  "validation_ds.manifest_filepath={not_utf8}"], 1,
        ("not_utf8.txt:1: not UTF-8",)),
    Row("asr-arch-choice", ASR, "train", ASR_GOOD + ["model.arch=conformer"], 2,
        ("model.arch must be one of quartznet_5x5",), via="host"),
    Row("asr-channel-scale-0", ASR, "train", ASR_GOOD + ["model.encoder.channel_scale=0"], 2,
        ("model.encoder.channel_scale must be",), via="host"),
    Row("asr-labels-not-characters", ASR, "train", ASR_GOOD + ["model.labels=[ab,c]"], 2,
        ("model.labels must be single characters",), via="host"),
    Row("asr-freq-width-over-bands", ASR, "train", ASR_GOOD + ["model.spec_augment.freq_width=200"], 2,
        ("model.spec_augment.freq_width=200 must be below model.preprocessor.features=64",), via="host"),
    Row("asr-n_fft-below-window", ASR, "train", ASR_GOOD + ["model.preprocessor.n_fft=128"], 2,
        ("n_fft=128 is shorter than the window",), via="host"),
    Row("asr-jasper-unknown-key", ASR, "train", ASR_GOOD + ["model.encoder.jasper=[{filters: 8, kernel: [3], "
                                                            "kernal: [5]}]"], 2,
        ("encoder block 0 has unknown key(s) kernal",), via="host"),
    Row("asr-optim-choice", ASR, "train", ASR_GOOD + ["optim.name=lamb"], 2,
        ("optim.name must be one of novograd",), via="host"),
    Row("asr-encoder-dropout-1", ASR, "train", ASR_GOOD + ["model.encoder.dropout=1"], 2,
        ("model.encoder.dropout must be at least 0 and less than 1",), via="host"),
    Row("asr-speed-perturb-range", ASR, "train", ASR_GOOD + ["training_ds.speed_perturb=[0.9,3]"], 2,
        ("training_ds.speed_perturb must be a list of", "each 0.5 to 2"), via="host"),
    Row("asr-infer-nothing", ASR, "infer", ["-m", "{asr_model}"], 2, ("nothing to transcribe", "file_paths=")),
    Row("asr-infer-file-missing", ASR, "infer", ["-m", "{asr_model}", "file_paths=[{asr_wav},{missing}]"], 2,
        ("file_paths[1]", "does not exist")),
    Row("asr-infer-not-audio", ASR, "infer", ["-m", "{asr_model}", "file_paths=[{asr_noise_wav}]"], 1,
        ("cannot read audio file", "noise.wav")),
    Row("asr-evaluate-task-mismatch", ASR, "evaluate", ["-m", "{tc_model}", "test_ds.manifest_filepath={asr_manifest}"],
        2, ("holds a text_classification model, not speech_to_text",)),
    Row("asr-infer_onnx-tao-archive", ASR, "infer_onnx", ["-m", "{asr_model}", "file_paths=[{asr_wav}]"], 2,
        ("is a .tao archive",)),
    Row("asr-infer-wrong-key", ASR, "infer", ["-m", "{asr_model}", "file_paths=[{asr_wav}]"], 1,
        ("wrong key or corrupted file",), env={"TAO_KEY": "not-the-key"}),
    Row("asr-export-hf", ASR, "export", ["-m", "{asr_model}", "export_format=HF"], 2,
        ("export_format must be one of RIVA, ONNX",), via="host"),
    Row("asr-convert-dataset-choice", ASR, "dataset_convert", ["source_data_dir={folder}", "target_data_dir={out}",
                                                               "dataset_name=timit"], 2,
        ("dataset_name must be one of fsdd, librispeech",), via="host"),
    Row("asr-convert-fsdd-bad-name", ASR, "dataset_convert", ["source_data_dir={asr_fsdd_bad}",
                                                              "target_data_dir={out}"], 1, ("hello.wav",)),
    Row("asr-train-nan-sample", ASR, "train", ["training_ds.manifest_filepath={asr_nan}", *ASR_TRAIN], 1,
        ("asr_nan.json:1: audio file", "holds 3 samples that are NaN or infinite")),
    Row("asr-convert-nan-sample", ASR, "dataset_convert", ["dataset_name=manifest", "source_data_dir={asr_nan}",
                                                           "target_data_dir={out}"], 1,
        ("asr_nan.json:1: audio file", "NaN or infinite", "leave it out")),
    Row("asr-infer-nan-sample", ASR, "infer", ["-m", "{asr_model}", "file_paths=[{asr_nan_wav}]"], 1,
        ("nan.wav holds 3 samples that are NaN or infinite",)),
    Row("asr-convert-ljspeech-no-metadata", ASR, "dataset_convert", ["dataset_name=ljspeech",
                                                                     "source_data_dir={folder}",
                                                                     "target_data_dir={out}"], 2,
        ("metadata.csv does not exist", "the LJSpeech folder")),
]
# every task with a model here: the wrong key says how to fix it; an infer text with no word names its item
MODELS = {TC: "{tc_model}", NER: "{ner_model}", PC: "{pc_model}", ISC: "{isc_model}", QA: "{qa_model}",
          ASR: "{asr_model}"}
for _task, _model in MODELS.items():
    ROWS[_task].append(Row(f"{_task}-evaluate-wrong-key", _task, "evaluate",
                           required_args(_task, "evaluate")[2:] + ["-m", _model], 1,
                           ("wrong key or corrupted file; check the key (-k or TAO_KEY", "copy the archive again"),
                           env={"TAO_KEY": "not-the-key"}))
    if _task not in (QA, ASR):   # their inputs are question/context pairs and audio files
        ROWS[_task].append(Row(f"{_task}-infer-batch-blank", _task, "infer",
                               ["-m", _model, 'input_batch=["show flights", "\u200b "]'], 2,
                               ("input_batch item 2 is blank: write a text there, or remove it",)))
# dataset_convert refuses, before any work, a target holding a user's file where it writes, and a source file that a
# convert wrote (a target equal to its source would feed a rerun its own output)
CONVERT_ARGS = {TC: ["source_data_dir={sst2}"], NER: ["source_data_dir={ner_source}"],
                PC: ["source_data_dir={pc_source}"], ISC: ["source_data_dir={isc_source}"],
                QA: ["source_file={qa_train}", "dev_ratio=0.5"],
                ASR: ["dataset_name=manifest", "source_data_dir={asr_manifest}"]}
IN_THE_WAY = {TC: "dev.tsv", NER: "label_ids.csv", PC: "text_dev.txt", ISC: "test_slots.tsv", QA: "train.json",
              ASR: "asr_train.json"}
CONVERTED_SOURCE = {TC: ["source_data_dir={converted}"], PC: ["source_data_dir={converted}/text_train.txt"],
                    QA: ["source_file={converted}/train.json", "dev_ratio=0.5"],
                    ASR: ["dataset_name=manifest", "source_data_dir={converted}/train_manifest.json"]}
for _task, _args in CONVERT_ARGS.items():
    ROWS[_task].append(Row(f"{_task}-convert-users-file-in-target", _task, "dataset_convert",
                           _args + ["target_data_dir={out}"], 2,
                           (f"holds {IN_THE_WAY[_task]}, which dataset_convert did not write", "add --overwrite"),
                           files={f"converted/{IN_THE_WAY[_task]}": b"the user's own"}))
for _task, _args in CONVERTED_SOURCE.items():   # intent_slot reads seq.in, seq.out and label: never its output
    ROWS[_task].append(Row(f"{_task}-convert-source-is-its-output", _task, "dataset_convert",
                           _args + ["target_data_dir={out}"], 2,
                           ("was written by dataset_convert", "give the downloaded source")))
ROWS[NER].append(Row("ner-convert-source-holds-only-its-output", NER, "dataset_convert",
                     ["source_data_dir={converted}", "target_data_dir={out}"], 2,
                     ("no training file in", "found: no files (and 5 that dataset_convert wrote)")))
# a diverging run (TAO_TEST_FAULT makes the loss NaN, core/faultpoints.py) stops with the epoch and step and what to try,
# exit 1, status failed, no archive: its training loss before the first backward pass, or its first validation
GOOD_TRAIN = {TC: TC_TRAIN, NER: ["data_dir={ner_data}"], PC: ["data_dir={pc_data}"], ISC: ["data_dir={isc_data}"],
              QA: QA_TRAIN, ASR: ASR_GOOD}
for _task, _args in GOOD_TRAIN.items():
    _args = _args + ["trainer.max_epochs=1"]
    ROWS[_task].append(Row(f"{_task}-train-loss-nan", _task, "train", _args, 1,
                           ("the training loss is nan at epoch 1/1 step 1: lower optim.lr (now ",
                            "check the training data", "then rerun with --overwrite"),
                           env={"TAO_TEST_FAULT": "nan-training-loss"}))
    ROWS[_task].append(Row(f"{_task}-validation-nan", _task, "train", _args, 1,
                           ("val_loss is nan and val_", "at epoch 1/1 step ", "check the training and validation data"),
                           env={"TAO_TEST_FAULT": "nan-validation"}))
SHARED_ROWS = [row for name in TASKS for row in shared_rows(name)]
ALL_ROWS = SHARED_ROWS + [row for rows in ROWS.values() for row in rows]


def test_every_task_has_rows():
    """Shared rows come from the schemas; a new task is not done until it adds its own rows (its paths, its
    data formats, its model) to ROWS."""
    missing = [name for name in TASKS if name not in ROWS]
    assert not missing, f"add bad-input rows for {missing} to ROWS in tests/test_bad_inputs.py"
    assert len({row.id for row in ALL_ROWS}) == len(ALL_ROWS)
    assert len(ALL_ROWS) >= 60
    for name in ROWS:   # every shared range row was generated: the shared sections kept their keys
        ranges = [r for r in SHARED_RANGES if r[0] in TASKS[name].subtasks and find_key(name, r[0], r[1])]
        assert len(ranges) >= len(SHARED_RANGES) - 4, name  # speech has no max_seq_length, no head dropout
        assert len([r for r in SHARED_ROWS if r.task == name]) >= len(ranges) + 10, name


# ----------------------------------------------------------------------------- fixtures

class Paths(dict):
    """``{name: path}`` for the ``{name}`` placeholders, plus why a row that needs root must skip."""

    read_only_reason: Optional[str] = None
    full_disk_reason: Optional[str] = None


def tiny_model(task: str, dest: Path, labels) -> Path:
    """A real archive of ``task`` with a one-layer, 32-wide encoder: what -m rows need, in a second."""
    from transformers import BertConfig

    from tao_launcher.core.encoders import resolve_encoder
    from tao_launcher.core.model import write_model_archive
    from tao_launcher.nlp.encoder import load_encoder, load_tokenizer
    from tao_launcher.nlp.model import write_payload

    tokenizer = load_tokenizer(resolve_encoder("all-minilm-l6-v2"))
    encoder = load_encoder(config=BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64))
    base = {"max_seq_length": 32, "pretrained_model_name": "all-minilm-l6-v2"}
    if task == TC:
        from tao_launcher.tasks.text_classification.model import TextClassifier as Net
        config = {**base, "num_classes": len(labels), "label_names": labels, "class_balancing": None,
                  "num_output_layers": 1, "fc_dropout": 0.1, "pooling": "mean"}
    elif task == NER:
        from tao_launcher.tasks.token_classification.model import TokenClassifier as Net
        config = {**base, "label_names": labels, "num_fc_layers": 1, "fc_dropout": 0.1}
    elif task == "question_answering":
        from tao_launcher.tasks.question_answering.model import QuestionAnsweringNet as Net
        config = {**base, "version_2_with_negative": True, "doc_stride": 16, "max_query_length": 8,
                  "num_layers": 1, "dropout": 0.0}
    elif task == "intent_slot_classification":
        from tao_launcher.tasks.intent_slot_classification.model import IntentSlotModel as Net
        config = {**base, "intent_labels": labels[0], "slot_labels": labels[1], "pooling": "mean",
                  "intent_num_fc_layers": 1, "intent_fc_dropout": 0.1, "slot_num_fc_layers": 1, "slot_fc_dropout": 0.1}
    else:
        from tao_launcher.tasks.punctuation_and_capitalization.model import PunctCapitModel as Net
        config = {**base, "punct_labels": labels[0], "capit_labels": labels[1], "punct_num_fc_layers": 1,
                  "punct_fc_dropout": 0.1, "capit_num_fc_layers": 1, "capit_fc_dropout": 0.1}
    net = Net(encoder, config)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_model_archive(dest, KEY, kind="tao", task=task, metrics={},
                        write_payload=lambda folder: write_payload(folder, net, tokenizer))
    return dest


def write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def word_data(folder: Path, text: str, labels: str, ids: Dict[str, str]) -> Path:
    for split in ("train", "dev"):
        write(folder / f"text_{split}.txt", text)
        write(folder / f"labels_{split}.txt", labels)
    for name, content in ids.items():
        write(folder / name, content)
    return folder


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Paths:
    """Good data and models for every task, and the bad files the rows point at (shared, never written to)."""
    root = tmp_path_factory.mktemp("bad-inputs-data")
    p = Paths()
    p["tc_train"] = write(root / "tc/train.tsv", "a fine film\t1\na dull film\t0\n" * 4)
    p["tc_dev"] = write(root / "tc/dev.tsv", "a fine film\t1\na dull film\t0\n")
    p["tc_label_5"] = write(root / "tc/label5.tsv", "a fine film\t1\na dull film\t5\n")
    p["tc_other_labels"] = write(root / "tc/other_labels.txt", "bad\ngood\n")
    p["sst2"] = root / "sst2"
    write(root / "sst2/train.tsv", "sentence\tlabel\na fine film\t1\n")
    write(root / "sst2/dev.tsv", "sentence\tlabel\na dull film\t0\n")
    ner_ids = {"label_ids.csv": "O\nB-PER\nI-PER\n"}
    p["ner_data"] = word_data(root / "ner", "Jim went home\nAnn ran\n", "B-PER O O\nB-PER O\n", ner_ids)
    p["ner_bad_data"] = word_data(root / "ner_bad", "Jim went home\n", b"B-PER O \xff\n", ner_ids)
    p["ner_source"] = write(root / "conll/train.txt", "Jim NNP B-NP B-PER\nran VBD B-VP O\n").parent
    pc_ids = {"punct_label_ids.csv": "O\n,\n.\n?\n", "capit_label_ids.csv": "O\nU\n"}
    p["pc_data"] = word_data(root / "pc", "how are you\nfine thanks\n", "OU OO ?O\nOU .O\n", pc_ids)
    p["pc_bad_data"] = word_data(root / "pc_bad", "how are you\n", b"OU OO ?\xff\n", pc_ids)
    p["pc_exclaim_data"] = word_data(root / "pc_exclaim", "how are you\nfine thanks\n", "OU OO !O\nOU .O\n", pc_ids)
    p["pc_punct_input"] = write(root / "pc_punct_input.txt", "hello there\n\n?!\nhow are you\n")
    p["pc_source"] = write(root / "pc_source/text.txt", "How are you? Fine, thanks.\nWell, I am here.\n")
    isc_dicts = {"dict.intents.csv": "flight\nairfare\nUNK\n", "dict.slots.csv": "O\nB-to\nUNK\n"}
    for name, slots in (("isc_data", "0 1\n0 0 1\n"), ("isc_bad_data", "0 1\n0\n")):
        for split in ("train", "dev"):
            write(root / name / f"{split}.tsv", "sentence\tlabel\nto boston\t0\nfares to dallas\t1\n")
            write(root / name / f"{split}_slots.tsv", slots)
        for dict_name, content in isc_dicts.items():
            write(root / name / dict_name, content if name == "isc_data" else content.replace("flight", "ground"))
        p[name] = root / name
    for name, seq_out in (("isc_source", "O B-to\nO O B-to\n"), ("isc_bad_source", "O B-to\nO\n")):
        for file, content in (("seq.in", "to boston\nfares to dallas\n"), ("seq.out", seq_out),
                              ("label", "flight\nairfare\n")):
            write(root / name / "train" / file, content)
        p[name] = root / name
    qa_file = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "Ann lives in Paris.", "qas": [
        {"id": "q1", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 13}]}]}]}]}
    p["qa_train"] = write(root / "qa.json", json.dumps(qa_file))
    qa_file["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 40
    p["qa_outside"] = write(root / "qa_outside.json", json.dumps(qa_file))
    qa_file["data"][0]["paragraphs"][0]["qas"][0]["question"] = "\u200b"   # a zero-width space: nothing visible
    p["qa_zero_width"] = write(root / "qa_zero_width.json", json.dumps(qa_file))
    p["qa_bad_json"] = write(root / "qa_bad.json", '{"data": [\n  {"title": "x", "paragraphs": [}\n]}')
    asr = root / "asr"
    p["asr_wav"] = sine_wav(asr / "clip.wav", seconds=0.5, rate=16000)
    p["asr_noise_wav"] = write(asr / "noise.wav", "not audio at all\n")
    line = '{{"audio_filepath": "{}", "duration": {}, "text": "{}"}}\n'.format
    p["asr_manifest"] = write(asr / "asr_train.json", line("clip.wav", 0.5, "one") * 2)
    p["asr_bad_json"] = write(asr / "asr_bad.json", line("clip.wav", 0.5, "one") + "{not json\n")
    p["asr_gone"] = write(asr / "asr_gone.json", line("gone.wav", 1.0, "one"))
    p["asr_noise"] = write(asr / "asr_noise.json", line("noise.wav", 1.0, "one"))
    p["asr_long"] = write(asr / "asr_long.json", line("clip.wav", 3.0, "one"))
    p["asr_empty"] = write(asr / "asr_empty.json", line("clip.wav", 0.5, ""))
    import numpy as np
    import soundfile

    nan = np.sin(np.arange(8000, dtype=np.float32) / 8)
    nan[[100, 200, 300]] = [np.nan, np.inf, np.nan]   # a float wav can hold them; a 16-bit one would say -32768
    p["asr_nan_wav"] = asr / "nan.wav"
    soundfile.write(str(p["asr_nan_wav"]), nan, 16000, subtype="FLOAT")
    p["asr_nan"] = write(asr / "asr_nan.json", line("nan.wav", 0.5, "one"))
    p["asr_fsdd_bad"] = sine_wav(root / "fsdd_bad" / "recordings" / "hello.wav").parent.parent
    p["asr_model"] = tiny_speech_archive(root / "models/asr.tao")
    p["converted"] = root / "converted"   # what convert wrote, as its record says
    outputs = ("train.tsv", "dev.tsv", "text_train.txt", "train.json", "train_manifest.json")
    for name in outputs:
        write(p["converted"] / name, "written by dataset_convert\n")
    write(p["converted"] / ".tao-convert.json", json.dumps({"written": outputs}))
    p["folder"] = root / "a-folder"
    p["folder"].mkdir()
    p["file"] = write(root / "a-file.txt", "not a folder\n")
    p["empty"] = write(root / "empty.txt", "\n\n")
    p["fifo"] = root / "a-fifo"
    os.mkfifo(p["fifo"])
    threading.Thread(target=feed_readers, args=(p["fifo"],), daemon=True).start()
    p["not_utf8"] = write(root / "not_utf8.txt", b"caf\xe9\t1\n")   # Latin-1, as a spreadsheet may save it
    p["missing"] = root / "not-there.txt"
    p["tc_model"] = tiny_model(TC, root / "models/tc.tao", ["negative", "positive"])
    p["ner_model"] = tiny_model(NER, root / "models/ner.tao", ["O", "B-PER", "I-PER"])
    p["pc_model"] = tiny_model(PC, root / "models/pc.tao", (["O", ",", ".", "?"], ["O", "U"]))
    p["qa_model"] = tiny_model(QA, root / "models/qa.tao", None)
    p["isc_model"] = tiny_model("intent_slot_classification", root / "models/isc.tao",
                                (["flight", "airfare", "UNK"], ["O", "B-to", "UNK"]))
    mounted = []
    for name, options in (("read_only", "ro,size=64k"), ("full_disk", "size=64k")):
        target = root / name
        target.mkdir()
        reason = mount_tmpfs(target, options)
        if reason is None:
            mounted.append(target)
            if name == "full_disk":  # fill it: the next write of any size fails with ENOSPC
                with contextlib.suppress(OSError), open(target / "filler", "wb") as f:
                    f.write(b"\0" * 1024 * 1024)
        setattr(p, f"{name}_reason", reason)
        p[name] = target
    yield p
    for target in mounted:
        subprocess.run(["umount", str(target)], check=False)


def feed_readers(fifo: Path) -> None:
    """Give whoever opens ``fifo`` a line and an end: a regression that reads it fails its row, never hangs."""
    while True:
        with open(fifo, "w") as f:
            f.write("hello\n")


def mount_tmpfs(target: Path, options: str) -> Optional[str]:
    """Mount a tiny tmpfs (a read-only or a full file system), or say why this machine cannot."""
    if os.geteuid() != 0:
        return "mounting a read-only or full file system needs root"
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                          capture_output=True, text=True)
    return None if proc.returncode == 0 else f"cannot mount a tmpfs here: {proc.stderr.strip()}"


# ----------------------------------------------------------------------------- the runner

def tree(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@contextlib.contextmanager
def process_state():
    """The entrypoint owns its process (signal handlers, root logger): give them back after an in-process row."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for handler in list(root.handlers):
            if handler not in saved[0]:
                root.removeHandler(handler)
                handler.close()
        for handler in saved[0]:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(saved[1])


def run_row(row: Row, argv: List[str], env: Dict[str, str], home: Path) -> Tuple[int, str, str]:
    """Run ``tao ARGV`` the row's way; returns (exit code, stdout, stderr)."""
    if row.via == "cli":
        proc = tao(*argv, env=tao_env(home, **env), timeout=300)
        return proc.returncode, proc.stdout, proc.stderr
    out, err = io.StringIO(), io.StringIO()
    saved_env = dict(os.environ)
    os.environ.clear()
    os.environ.update(tao_env(home, **env))
    try:
        with process_state(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if row.via == "host":
                from tao_launcher.launcher.cli import run
                saved_argv, sys.argv = sys.argv, ["tao"] + argv
                try:
                    run()
                    code = 0
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else 1
                finally:
                    sys.argv = saved_argv
            else:
                from tao_launcher.entrypoint import main
                code = main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("row", ALL_ROWS, ids=[row.id for row in ALL_ROWS])
def test_bad_input(row: Row, fixtures: Paths, tmp_path):
    reason = row.needs(fixtures) if row.needs else None
    if reason:
        pytest.skip(reason)
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    paths = {**fixtures, "out": work / "converted"}
    for name, content in row.files.items():
        paths[name] = write(work / {"bad_yaml": "bad.yaml", "mounts_json": "mounts.json"}.get(name, name), content)
    argv = [row.task, row.subtask]
    args = [fill(a, paths) for a in row.args]
    if "-r" not in args and row.subtask != "download_specs":
        args = ["-r", str(work / "results")] + args
    argv += args
    env = {"TAO_KEY": KEY, **{k: fill(v, paths) for k, v in row.env.items()}}
    data_before = tree(fixtures_root(fixtures))
    work_before = tree(work)

    code, stdout, stderr = run_row(row, argv, env, home)

    shown = f"tao {' '.join(argv)}\nexit {code}\nstdout: {stdout[-1500:]}\nstderr: {stderr[-3000:]}"
    assert code == row.code, shown
    errors = [line for line in stderr.splitlines() if line.startswith("tao: error: ")]
    assert len(errors) == 1, shown
    sentence = errors[0]
    assert "Traceback" not in stderr + stdout and "internal error" not in sentence, shown
    assert KEY not in stderr + stdout, shown
    for fragment in row.expect:
        assert fill(fragment, paths) in sentence, shown
    for fragment in row.forbid:
        assert fragment not in sentence, shown
    # nothing created (exit 2) and nothing half-written (any exit)
    after = tree(work)
    leftovers = [p for p in after if p.endswith(".partial") or p.endswith((".tao", ".eonnx", ".riva"))
                 or "/.convert-" in p]
    assert not leftovers, leftovers
    if row.code == 2:
        assert after == work_before, f"an exit-2 error created {sorted(after - work_before)}\n{shown}"
    else:
        results = Path(args[args.index("-r") + 1])
        if results.exists():
            state = json.loads((results / "status.json").read_text())
            assert state["state"] == "failed" and state["message"] in sentence, state
    assert tree(fixtures_root(fixtures)) == data_before, "a row wrote into the shared fixtures"


def fill(text: str, paths: dict) -> str:
    """Replace each ``{name}`` of ``paths`` in ``text``; other braces (``${``) stay as they are."""
    return re.sub(r"\{(\w+)\}", lambda m: str(paths[m.group(1)]) if m.group(1) in paths else m.group(0), text)


def fixtures_root(fixtures: Paths) -> Path:
    return fixtures["folder"].parent


# ----------------------------------------------------------------------------- the guards

def boom(*args, **kwargs):
    raise RuntimeError("boom: a bug, not the user's mistake")


def one_error_line(code: int, stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("tao: error: ")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def test_an_unexpected_error_in_the_launcher_is_one_sentence_naming_its_traceback_file(tmp_path, monkeypatch):
    import tao_launcher.launcher.submit as submit_module

    monkeypatch.setattr(submit_module, "submit", boom)
    row = Row("guard", TC, "train", [], 1, (), via="host")
    code, _, stderr = run_row(row, [TC, "train", "-r", str(tmp_path / "r")], {"TAO_KEY": KEY}, tmp_path)
    line = one_error_line(code, stderr)
    assert "internal error in the tao launcher (RuntimeError: boom: a bug" in line
    crash = Path(re.search(r"the full traceback is in (\S+);", line).group(1))
    assert crash.is_relative_to(tmp_path / ".tao" / "logs") and "Traceback" in crash.read_text()


def test_an_unexpected_error_in_a_subtask_is_one_sentence_naming_log_txt(tmp_path, monkeypatch, fixtures):
    import tao_launcher.tasks.text_classification.subtasks as subtasks

    monkeypatch.setattr(subtasks, "dataset_convert", boom)
    results = tmp_path / "results"
    argv = [TC, "dataset_convert", "-r", str(results), f"source_data_dir={fixtures['sst2']}",
            f"target_data_dir={tmp_path / 'out'}"]
    code, _, stderr = run_row(Row("guard", TC, "dataset_convert", [], 1, ()), argv, {"TAO_KEY": KEY}, tmp_path)
    line = one_error_line(code, stderr)
    assert "internal error in text_classification dataset_convert (RuntimeError: boom" in line
    assert f"the full traceback is in {results / 'log.txt'}" in line
    assert "Traceback" in (results / "log.txt").read_text()
    assert json.loads((results / "status.json").read_text())["state"] == "failed"

"""The one predict path of every task: raw inputs -> model feeds -> a runner -> the task's answers.

A task declares it once, as a ``PredictStep`` in its ``subtasks.py``; ``evaluate``, ``infer`` and
``infer_onnx`` are the same three functions for every task (``PredictStep.subtasks``), and differ
only in the runner they build (core/inference.py: torch for evaluate and infer, onnxruntime for
infer_onnx). The step's ``predict`` needs neither Lightning nor the launcher, so the same function
can run wherever numpy and the runner can (a serving process, for instance).

What a step names, all plain functions of the task (loaded lazily, so dataset_convert and
``--help`` import no torch):

- ``predict(model, inputs, batch_size, spec) -> answers``: the task's pre-processing, the runner, its
  post-processing. ``model`` is a ``Loaded``; ``spec`` is the subtask's spec (decoding options).
- ``read_inputs(spec) -> inputs``: infer's inputs (``input_file`` or ``input_batch``, ...).
- ``rows(inputs, answers, model, run) -> rows``: one JSON row per input for ``infer_results.json``
  (may write further files, e.g. SQuAD's predictions.json); ``line(row) -> str`` prints one.
- ``read_labelled(spec, model) -> (inputs, gold)``: evaluate's data (``model`` a ``Loaded``).
- ``score(inputs, gold, answers, model, spec, run) -> Scored``: evaluate's metrics and report.
- ``summary(inputs, rows, seconds) -> (line, metrics)``, optional: infer's closing line (speech: real-time factor).
- ``write_files(run, inputs, answers, rows, model)``, optional: writes infer's files besides
  infer_results.json (infer_results.txt, SQuAD's predictions.json); ``rows`` itself writes nothing, so
  a serving process can call it.
- ``served_inputs`` and ``from_served({input name: [values]}) -> inputs``: a served request's inputs (Triton
  tensors of strings or bytes, serving/triton_model.py); the default is one ``TEXT`` input of texts.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from tao_launcher.registry import RunContext, resolve


@dataclass
class Loaded:
    """A model ready to predict: its runner and what pre- and post-processing need."""

    runner: Callable                  # core.inference.Runner: {input name: array} -> [outputs]
    processor: Any                    # the tokenizer (NLP) or the vocabulary (speech)
    config: Dict[str, Any]            # model_config.json
    source: Any = None                # the -m file it came from, for messages


@dataclass
class Scored:
    """What evaluate reports: ``metrics`` (recorded in status.json), ``report`` (evaluation_report.json),
    ``text`` (printed), and files the task wrote besides (by name, for status.json)."""

    metrics: Dict[str, Any]
    report: Dict[str, Any]
    text: str
    files: Dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class PredictStep:
    """A task's predict path and the model family it loads (core/model.py ``ModelFamily``), by reference."""

    task: str
    family: str                       # the module that is its ModelFamily (nlp.model, speech_to_text.model)
    net: str                          # "module:attribute" of the network class
    predict: Callable
    read_inputs: Callable
    rows: Callable
    line: Callable[[Dict], str]
    read_labelled: Callable
    score: Callable
    summary: Optional[Callable] = None  # (inputs, rows, seconds) -> (printed line, extra metrics) after infer
    write_files: Optional[Callable] = None  # (run, inputs, answers, rows, model): infer's further files
    served_inputs: Tuple[str, ...] = ("TEXT",)
    from_served: Optional[Callable[[Dict[str, List]], List]] = None

    def served(self, columns: Dict[str, List]) -> List:
        """A served request's inputs; one with no usable input is a UsageError naming the item."""
        if self.from_served is not None:
            return self.from_served(columns)
        return served_texts(columns.get("TEXT", []), "TEXT")

    def load_trained(self, run: RunContext) -> Tuple[Any, Any, Dict]:
        """(network, processor, model config) of the ``-m`` archive: what finetune continues from."""
        from tao_launcher.core.model import load_run_model

        return load_run_model(run, self.task, importlib.import_module(self.family), resolve(self.net))

    def load(self, run: RunContext, *, onnx: bool = False) -> Loaded:
        """The ``-m`` model with its runner: an ONNX export for infer_onnx, else the trained archive."""
        if onnx:
            from tao_launcher.core.inference import onnx_runner
            from tao_launcher.core.model import load_export

            model_bytes, processor, config = load_export(run.model, run.key, self.task,
                                                         importlib.import_module(self.family))
            return Loaded(onnx_runner(model_bytes), processor, config, source=run.model)
        from tao_launcher.core.inference import torch_runner

        net, processor, config = self.load_trained(run)
        return Loaded(torch_runner(net), processor, config, source=run.model)

    # --- the shared subtasks ------------------------------------------------------------------
    def infer(self, spec, run: RunContext, *, onnx: bool = False) -> Dict:
        inputs = self.read_inputs(spec)
        model = self.load(run, onnx=onnx)
        started = time.perf_counter()
        answers = self.predict(model, inputs, spec.batch_size, spec)
        seconds = time.perf_counter() - started
        rows = self.rows(inputs, answers, model, run)
        for row in rows:
            print(self.line(row), flush=True)
        metrics: Dict[str, Any] = {"inputs": len(rows)}
        if self.summary is not None:
            text, extra = self.summary(inputs, rows, seconds)
            print(text, flush=True)
            metrics.update(extra)
        if self.write_files is not None:
            self.write_files(run, inputs, answers, rows, model)
        out = write_json(run, "infer_results.json", list(rows))
        run.results.record(metrics, predictions=out)
        return metrics

    def evaluate(self, spec, run: RunContext) -> Dict:
        model = self.load(run)
        inputs, gold = self.read_labelled(spec, model)
        answers = self.predict(model, inputs, spec.test_ds.batch_size, spec)
        scored = self.score(inputs, gold, answers, model, spec, run)
        print(scored.text, flush=True)
        out = write_json(run, "evaluation_report.json", scored.report)
        run.results.record(scored.metrics, report=out, **scored.files)
        return scored.metrics

    def export(self, spec, run: RunContext) -> Dict:
        from tao_launcher.core.export import export_model

        export_model(spec, run, self.task, importlib.import_module(self.family), resolve(self.net))
        return {}

    def subtasks(self, evaluate_spec: type, infer_spec: type, infer_onnx_spec: type, export_spec: type
                 ) -> Tuple[Callable, ...]:
        """``evaluate, infer, infer_onnx, export`` as the registry's typed ``fn(spec, run)`` functions."""
        def evaluate(spec, run):
            return self.evaluate(spec, run)

        def infer(spec, run):
            return self.infer(spec, run)

        def infer_onnx(spec, run):
            return self.infer(spec, run, onnx=True)

        def export(spec, run):
            return self.export(spec, run)

        functions = (evaluate, infer, infer_onnx, export)
        for function, schema in zip(functions, (evaluate_spec, infer_spec, infer_onnx_spec, export_spec)):
            function.__annotations__ = {"spec": schema, "run": RunContext, "return": Dict}
            function.__qualname__ = f"{self.task}.{function.__name__}"
            function.__doc__ = f"{function.__name__} of {self.task}: the shared predict path (core/predict.py)."
        return functions


def write_json(run: RunContext, name: str, value) -> Path:
    """``name`` in the results folder, as indented UTF-8 JSON."""
    out = run.results.path / name
    out.write_text(json.dumps(value, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


def input_items(spec, read_file: Callable[[str], List], what: str = "sentences",
                words: Optional[Callable[[str], List]] = str.split) -> List:
    """infer's inputs: ``input_file`` when set, else ``input_batch``.

    The one rule of every task: an input with no word by the task's word rule ``words`` (``str.split``;
    punctuation's drops the marks) is refused with where it is. ``input_batch``, given on the command line or
    in the spec, is a usage error (exit 2) naming ``input_batch item N``; ``input_file`` is data, read by
    ``read_file`` with ``core.textfiles.read_input_lines`` (blank lines skipped, a line with no word a
    DataError naming ``FILE:LINE``, exit 1), and so is a file with no input at all. ``words=None``: items that
    are not texts (question_answering's), checked by the task."""
    from tao_launcher.core.textfiles import no_words, visible
    from tao_launcher.errors import DataError, UsageError

    if spec.input_file:
        items = read_file(spec.input_file)
        if not items:
            raise DataError(f"input_file {spec.input_file} holds no {what}: put one a line, or use input_batch")
        return items
    items = list(spec.input_batch)
    if not items:
        raise UsageError(f"input_batch is empty: give it a list of {what}, or set input_file")
    for number, item in enumerate(items if words is not None else [], start=1):
        if not visible(item) or not words(item):
            raise UsageError(no_words(f"input_batch item {number}", item))
    return items


def served_texts(values: List, name: str) -> List[str]:
    """The texts of a served ``name`` input (UTF-8 bytes or strings); a blank one is refused by its number."""
    from tao_launcher.core.textfiles import no_words, visible
    from tao_launcher.errors import UsageError

    if not values:
        raise UsageError(f"the request has no {name} input: send one or more texts in {name}")
    texts = []
    for number, value in enumerate(values, 1):
        try:
            text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            raise UsageError(f"{name} item {number} is not UTF-8 text") from None
        if not visible(text):
            raise UsageError(no_words(f"{name} item {number}", text))
        texts.append(text)
    return texts


def write_lines(key: str) -> Callable:
    """A ``write_files`` that writes infer_results.txt: each row's ``key``, one a line."""
    def write(run: RunContext, inputs, answers, rows: List[Dict], model: Loaded) -> None:
        (run.results.path / "infer_results.txt").write_text("".join(r[key] + "\n" for r in rows), encoding="utf-8")
    return write

"""Spec sections that several NLP tasks share (imports no torch: the launcher reads them).

Data: ``word_data_spec`` is NeMo's pair of parallel files in ``data_dir`` (``text_*.txt``, one sentence a
line, and ``labels_*.txt``, one label per word), used by token_classification and
punctuation_and_capitalization; ``file_data_specs`` one file per split (text_classification's tsv,
question_answering's SQuAD JSON); ``bucketed_data_spec`` any other, with batches of similar length.
Model: ``labels_file``, ``windows_spec`` (tokenization into windows), ``sentence_head_spec`` and
``token_head_spec``. Subtasks: ``text_infer_spec``; the others, and every task's export fields
(``ExportFields``), are in ``spec.schema``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from tao_launcher.spec.schema import (
    DROPOUT, LEARNING_RATE, POSITIVE, REQUIRED, SEQ_LENGTH, Fields, OptimSpec, data_section, make_section,
    shuffle_field, spec_field, subtask_spec)

SECTION_FACTORIES = True  # what this module makes belongs to the spec.py that asked for it (schema.make_section)


BIO_DECODING_HELP = ("decode tags as sequences that BIO allows (I-X only after B-X or I-X) rather than word by "
                     "word; used only when the training tags follow that rule (nlp/bio.py)")
MEAN_POOLING = "mean (average of the token vectors, what sentence encoders such as all-MiniLM are trained for)"
HEAD_LAYERS = dict(min=1, max=16)


def labels_file(what: str, default: str) -> Any:
    """An optional label file (``what`` it holds) that defaults to the file ``default`` in data_dir."""
    return spec_field(None, f"{what} (default: {default} in data_dir)", path="file")


def bucketed_data_spec(name: str, files: Fields, batch_size: int, batch_help: str, samples: str, training: bool,
                       unit: str = "windows") -> type:
    """A ``{<files>, batch_size, num_samples[, shuffle], num_workers}`` section (``schema.data_section``) whose
    training batches are formed from ``unit`` of similar length."""
    shuffle = [shuffle_field(f"batches are formed from {unit} of similar length")] if training else []
    return data_section(name, files, batch_size, batch_help, samples, training=shuffle)


def word_data_spec(name: str, split: str, batch_size: int, training: bool) -> type:
    """A ``{text_file, labels_file, batch_size, num_samples[, shuffle], num_workers}`` section for ``split``."""
    files = [
        ("text_file", str, spec_field(f"text_{split}.txt", "file in data_dir: one sentence a line, words separated by spaces")),
        ("labels_file", str, spec_field(f"labels_{split}.txt", "file in data_dir: one label per word of the same line of text_file")),
    ]
    return bucketed_data_spec(name, files, batch_size, "windows (sentences) per batch", "sentences", training)


def file_data_specs(key: str, data_format: str, unit: str, samples: str, batch_sizes: Tuple[int, int], *,
                    names: Tuple[str, str] = ("TrainingData", "EvalData"), eval_file: str = "evaluation",
                    train_batch_help: Optional[str] = None) -> Tuple[type, type]:
    """The training and the evaluation section of a task whose data is one file a split, named by ``key``:
    ``{<key>, batch_size, num_samples[, shuffle], num_workers}``; a batch counts ``unit``, num_samples ``samples``;
    the file's help is "<training or eval_file> file, <data_format>"."""
    def one(name: str, what: str, batch_size: int, batch_help: str, training: bool) -> type:
        files = [(key, str, spec_field(REQUIRED, f"{what} file, {data_format}", path="file"))]
        return bucketed_data_spec(name, files, batch_size, batch_help, samples, training, unit)

    return (one(names[0], "training", batch_sizes[0], train_batch_help or f"{unit} per batch", training=True),
            one(names[1], eval_file, batch_sizes[1], f"{unit} per batch", training=False))


def windows_spec(name: str, longer: str) -> type:
    """``{max_seq_length}``: windows of sub-tokens; ``longer`` says what is split ("longer lines are")."""
    return make_section(name, [("max_seq_length", int, spec_field(
        128, f"sub-tokens per window, [CLS] and [SEP] included; {longer} split into windows, never cut",
        **SEQ_LENGTH))])


def sentence_head_spec(name: str, pooling_help: str) -> type:
    """``{pooling, num_output_layers, fc_dropout}``: a classifier on the sentence vector."""
    return make_section(name, [
        ("pooling", str, spec_field("mean", pooling_help, choices=("mean", "cls"))),
        *_head_fields("num_output_layers", 2, "layers of the MLP on the sentence vector (1: a single linear layer)")])


def token_head_spec(name: str, layers_help: str, *, layers: str = "num_fc_layers", dropout: str = "fc_dropout",
                    dropout_default: float = 0.1) -> type:
    """``{<layers>, <dropout>}``: a classifier (an MLP) on each token vector."""
    return make_section(name, _head_fields(layers, 1, layers_help, dropout, dropout_default))


def _head_fields(layers: str, layers_default: int, layers_help: str, dropout: str = "fc_dropout",
                 dropout_default: float = 0.1) -> Fields:
    return [(layers, int, spec_field(layers_default, layers_help, **HEAD_LAYERS)),
            (dropout, float, spec_field(dropout_default, "dropout before each head layer", **DROPOUT))]


def text_infer_spec(example: str, inputs: List[Any], inputs_help: str, file_help: str, *,
                    batch_help: str = "windows per batch", input_type: Any = List[str], extra: Fields = ()) -> type:
    """``InferSpec`` of a text task: ``input_batch, input_file, batch_size, <extra>``."""
    return subtask_spec("InferSpec", example, [
        ("input_batch", input_type, spec_field(inputs, inputs_help + " (ignored when input_file is set)")),
        ("input_file", Optional[str], spec_field(None, file_help, path="file")),
        ("batch_size", int, spec_field(32, batch_help, **POSITIVE)),
        *extra,
    ])


@dataclass
class WordOptimSpec(OptimSpec):
    """The optimizer of the word-level tasks: a higher peak rate, since their per-token heads start from
    scratch (NER on 2,000 CoNLL sentences x 1 epoch: entity F1 0.27 at 5e-5, 0.52 at 2e-4)."""

    lr: float = spec_field(2e-4, "peak learning rate", **LEARNING_RATE)

"""Spec schemas of punctuation_and_capitalization, one per subtask, with TAO Toolkit 3.0 / NeMo field names.

The single source of the shipped YAML, validation and ``--help``. Imports no torch. The shapes shared with
the other tasks come from ``spec.schema`` and ``nlp.spec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tao_launcher.nlp.spec import (
    WordOptimSpec, labels_file, text_infer_spec, token_head_spec, windows_spec, word_data_spec)
from tao_launcher.spec.schema import (
    FRACTION, SHARE, Examples, ExportFields, LanguageModelSpec, dataset_convert_spec, evaluate_spec, finetune_spec,
    section, spec_field, split_seed, subset_section, subtask_spec, train_spec)

EXAMPLE = Examples("punctuation_and_capitalization", "/results/punct")
DATA_DIR_HELP = ("folder written by dataset_convert: text_<split>.txt, labels_<split>.txt, "
                 "punct_label_ids.csv, capit_label_ids.csv")
TEXTS = ["how are you doing today i am fine thanks",
         "the united nations was founded in 1945 after the second world war"]

TrainingData = word_data_spec("TrainingData", "train", 32, training=True)
ValidationData = word_data_spec("ValidationData", "dev", 64, training=False)
TestData = word_data_spec("TestData", "dev", 64, training=False)

PunctDatasetSpec = windows_spec("PunctDatasetSpec", "longer lines are")
HeadSpec = token_head_spec("HeadSpec", "layers of the MLP on each token vector (1: a single linear layer)")


@dataclass
class ModelSpec:
    punct_label_ids: Optional[str] = labels_file("punctuation labels, one a line", "punct_label_ids.csv")
    capit_label_ids: Optional[str] = labels_file("case labels, one a line", "capit_label_ids.csv")
    punct_loss_weight: float = spec_field(0.5, "loss = w * punctuation loss + (1 - w) * capitalization loss", **FRACTION)
    dataset: PunctDatasetSpec = section(PunctDatasetSpec, "tokenization")
    language_model: LanguageModelSpec = section(LanguageModelSpec, "the pretrained encoder")
    punct_head: HeadSpec = section(HeadSpec, "the punctuation classifier on every token")
    capit_head: HeadSpec = section(HeadSpec, "the capitalization classifier on every token")


FinetuneModelSpec = subset_section("FinetuneModelSpec", ModelSpec, "punct_loss_weight")

# the subtask schemas (the names registry.py looks up)
DatasetConvertSpec = dataset_convert_spec(
    EXAMPLE("dataset_convert", "source_data_dir=/data/raw_text target_data_dir=/data/punct dev_ratio=0.2"),
    source="a folder of *.txt files (cased, punctuated text, one paragraph a line; or IWSLT token<TAB>label "
           "files), or one such file", source_kind="exists",
    target="folder to write text_<split>.txt, labels_<split>.txt and the label id files into",
    extra=[("dev_ratio", float, spec_field(0.2, "share of the lines that go to dev (0: write only the train files)",
                                           **SHARE)),
           ("punct_marks", str, spec_field(",.?", "the punctuation marks to learn; other punctuation is dropped")),
           split_seed()])
TrainSpec = train_spec(EXAMPLE("train", "data_dir=/data/punct trainer.max_epochs=3"),
                       ModelSpec, TrainingData, ValidationData, WordOptimSpec, data_dir=DATA_DIR_HELP)
FinetuneSpec = finetune_spec(TrainSpec, EXAMPLE("finetune", "data_dir=/data/punct_domain"), FinetuneModelSpec,
                             data_dir=DATA_DIR_HELP + " (the same label sets as the -m model)")
EvaluateSpec = evaluate_spec(EXAMPLE("evaluate", "data_dir=/data/punct"), TestData, data_dir=DATA_DIR_HELP)
InferSpec = text_infer_spec(
    EXAMPLE("infer", f"'input_batch=[\"{TEXTS[0]}\"]'"), TEXTS,
    "texts to punctuate and capitalize", "text file, one text a line",
    extra=[("margin", int, spec_field(16, "words of context kept on each side where a long text is split into "
                                          "overlapping segments (NeMo's margin)", min=0, max=10000))])
ExportSpec = subtask_spec("ExportSpec", EXAMPLE("export", "export_format=ONNX"), base=ExportFields)
InferOnnxSpec = subtask_spec("InferOnnxSpec", EXAMPLE("infer_onnx", f"'input_batch=[\"{TEXTS[0]}\"]'"),
                             base=InferSpec)

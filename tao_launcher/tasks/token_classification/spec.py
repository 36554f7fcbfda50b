"""Spec schemas of token_classification (NER), one per subtask, with TAO Toolkit 3.0 / NeMo field names.

The single source of the shipped YAML (``specs/token_classification``), validation and ``--help``.
Imports no torch. The shapes shared with the other tasks come from ``spec.schema`` and ``nlp.spec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tao_launcher.nlp.spec import (
    BIO_DECODING_HELP, WordOptimSpec, labels_file, text_infer_spec, token_head_spec, windows_spec, word_data_spec)
from tao_launcher.spec.schema import (
    Examples, ExportFields, LanguageModelSpec, dataset_convert_spec, evaluate_spec, finetune_spec, section,
    spec_field, subtask_spec, train_spec)

EXAMPLE = Examples("token_classification", "/results/ner")
DATA_DIR_HELP = "folder written by dataset_convert: text_<split>.txt, labels_<split>.txt, label_ids.csv"

TrainingData = word_data_spec("TrainingData", "train", 32, training=True)
ValidationData = word_data_spec("ValidationData", "dev", 64, training=False)
TestData = word_data_spec("TestData", "dev", 64, training=False)

TokenDatasetSpec = windows_spec("TokenDatasetSpec", "longer sentences are")
TokenHeadSpec = token_head_spec("TokenHeadSpec", "layers of the MLP on each token vector (1: a single linear "
                                                 "layer, which learns fastest from little data)")


@dataclass
class ModelSpec:
    label_ids: Optional[str] = labels_file("label set, one tag a line", "label_ids.csv")
    dataset: TokenDatasetSpec = section(TokenDatasetSpec, "tokenization")
    language_model: LanguageModelSpec = section(LanguageModelSpec, "the pretrained encoder")
    head: TokenHeadSpec = section(TokenHeadSpec, "the tag classifier on every token")
    bio_decoding: bool = spec_field(True, BIO_DECODING_HELP)


@dataclass
class FinetuneModelSpec:
    label_ids: Optional[str] = spec_field(
        None, "label set of the new data (default: label_ids.csv in data_dir); a set that differs from the "
        "-m model's gets a new tag classifier on the trained encoder", path="file")
    bio_decoding: bool = spec_field(True, BIO_DECODING_HELP)


# the subtask schemas (the names registry.py looks up)
DatasetConvertSpec = dataset_convert_spec(
    EXAMPLE("dataset_convert", "source_data_dir=/data/conll2003 target_data_dir=/data/ner"),
    source="folder of CoNLL files (word ... tag columns; the split comes from the file name: *train*, "
           "*testa*/*dev*/*valid*, *testb*/*test*)",
    target="folder to write text_<split>.txt, labels_<split>.txt and label_ids.csv into")
TrainSpec = train_spec(EXAMPLE("train", "data_dir=/data/ner trainer.max_epochs=3"),
                       ModelSpec, TrainingData, ValidationData, WordOptimSpec, data_dir=DATA_DIR_HELP)
FinetuneSpec = finetune_spec(TrainSpec, EXAMPLE("finetune", "data_dir=/data/ner_domain"), FinetuneModelSpec)
EvaluateSpec = evaluate_spec(EXAMPLE("evaluate", "data_dir=/data/ner"), TestData, data_dir=DATA_DIR_HELP)
InferSpec = text_infer_spec(
    EXAMPLE("infer", "input_file=/data/sentences.txt"),
    ["Jim bought 300 shares of Acme Corp. in 2006 .", "Angela Merkel met officials of the UN in New York ."],
    "sentences to tag, words separated by spaces", "text file, one sentence a line")
ExportSpec = subtask_spec("ExportSpec", EXAMPLE("export", "export_format=ONNX"), base=ExportFields)
InferOnnxSpec = subtask_spec("InferOnnxSpec", EXAMPLE("infer_onnx", "input_file=/data/sentences.txt"), base=InferSpec)

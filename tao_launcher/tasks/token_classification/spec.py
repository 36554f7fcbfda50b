"""Spec schemas of token_classification (NER), one per subtask, with TAO Toolkit 3.0 / NeMo field names.

The single source of the shipped YAML (``specs/token_classification``), validation and ``--help``.
Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, List, Optional

from tao_launcher.nlp.spec import BIO_DECODING_HELP, WordOptimSpec, word_data_spec
from tao_launcher.spec.schema import (
    DROPOUT, POSITIVE, REQUIRED, SEQ_LENGTH, ExportFields, LanguageModelSpec, SpecBase, TrainerSpec, section,
    spec_field)

TrainingData = word_data_spec("TrainingData", "train", 32, training=True)
ValidationData = word_data_spec("ValidationData", "dev", 64, training=False)
TestData = word_data_spec("TestData", "dev", 64, training=False)

DATA_DIR_HELP = ("folder written by dataset_convert: text_<split>.txt, labels_<split>.txt, label_ids.csv")


@dataclass
class TokenDatasetSpec:
    max_seq_length: int = spec_field(128, "sub-tokens per window, [CLS] and [SEP] included; longer sentences are "
                                     "split into windows, never cut", **SEQ_LENGTH)


@dataclass
class TokenHeadSpec:
    num_fc_layers: int = spec_field(1, "layers of the MLP on each token vector (1: a single linear layer, which "
                                    "learns fastest from little data)", min=1, max=16)
    fc_dropout: float = spec_field(0.1, "dropout before each head layer", **DROPOUT)


@dataclass
class ModelSpec:
    label_ids: Optional[str] = spec_field(None, "label set, one tag a line (default: label_ids.csv in data_dir)", path="file")
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


@dataclass
class DatasetConvertSpec(SpecBase):
    example: ClassVar[str] = ("tao token_classification dataset_convert -r /results/ner/convert "
                              "source_data_dir=/data/conll2003 target_data_dir=/data/ner")
    source_data_dir: str = spec_field(REQUIRED, "folder of CoNLL files (word ... tag columns; the split comes from "
                                      "the file name: *train*, *testa*/*dev*/*valid*, *testb*/*test*)", path="dir")
    target_data_dir: str = spec_field(REQUIRED, "folder to write text_<split>.txt, labels_<split>.txt and "
                                      "label_ids.csv into", path="out_dir")


@dataclass
class TrainSpec(SpecBase):
    example: ClassVar[str] = ("tao token_classification train -e /specs/token_classification/train.yaml "
                              "-r /results/ner/train -k $KEY data_dir=/data/ner trainer.max_epochs=3")
    data_dir: str = spec_field(REQUIRED, DATA_DIR_HELP, path="dir")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    model: ModelSpec = section(ModelSpec, "the model")
    training_ds: TrainingData = section(TrainingData, "training data (files in data_dir)")
    validation_ds: ValidationData = section(ValidationData, "validation data, evaluated every epoch")
    optim: WordOptimSpec = section(WordOptimSpec, "optimizer")


@dataclass
class FinetuneSpec(SpecBase):
    example: ClassVar[str] = ("tao token_classification finetune -r /results/ner/finetune "
                              "-m /results/ner/train/checkpoints/trained-model.tao -k $KEY data_dir=/data/ner_domain")
    data_dir: str = spec_field(REQUIRED, DATA_DIR_HELP, path="dir")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    model: FinetuneModelSpec = section(FinetuneModelSpec, "the model comes from -m")
    finetuning_ds: TrainingData = section(TrainingData, "fine-tuning data (files in data_dir)")
    validation_ds: ValidationData = section(ValidationData, "validation data, evaluated every epoch")
    optim: WordOptimSpec = section(WordOptimSpec, "optimizer")


@dataclass
class EvaluateSpec(SpecBase):
    example: ClassVar[str] = ("tao token_classification evaluate -r /results/ner/evaluate "
                              "-m /results/ner/train/checkpoints/trained-model.tao -k $KEY data_dir=/data/ner")
    data_dir: str = spec_field(REQUIRED, DATA_DIR_HELP, path="dir")
    test_ds: TestData = section(TestData, "labelled test data (files in data_dir)")


@dataclass
class InferSpec(SpecBase):
    example: ClassVar[str] = ("tao token_classification infer -r /results/ner/infer "
                              "-m /results/ner/train/checkpoints/trained-model.tao -k $KEY input_file=/data/sentences.txt")
    input_batch: List[str] = spec_field(
        ["Jim bought 300 shares of Acme Corp. in 2006 .", "Angela Merkel met officials of the UN in New York ."],
        "sentences to tag, words separated by spaces (ignored when input_file is set)")
    input_file: Optional[str] = spec_field(None, "text file, one sentence a line", path="file")
    batch_size: int = spec_field(32, "windows per batch", **POSITIVE)


@dataclass
class ExportSpec(ExportFields):
    example: ClassVar[str] = ("tao token_classification export -r /results/ner/export "
                              "-m /results/ner/train/checkpoints/trained-model.tao -k $KEY export_format=ONNX")


@dataclass
class InferOnnxSpec(InferSpec):
    example: ClassVar[str] = ("tao token_classification infer_onnx -r /results/ner/infer_onnx "
                              "-m /results/ner/export/exported-model.eonnx -k $KEY input_file=/data/sentences.txt")

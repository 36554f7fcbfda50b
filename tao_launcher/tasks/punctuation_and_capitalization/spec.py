"""Spec schemas of punctuation_and_capitalization, one per subtask, with TAO Toolkit 3.0 / NeMo field names.

The single source of the shipped YAML, validation and ``--help``. Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, List, Optional

from tao_launcher.nlp.spec import WordOptimSpec, word_data_spec
from tao_launcher.spec.schema import (
    DROPOUT, FRACTION, POSITIVE, REQUIRED, SEQ_LENGTH, ExportFields, LanguageModelSpec, SpecBase, TrainerSpec,
    section, spec_field)

TrainingData = word_data_spec("TrainingData", "train", 32, training=True)
ValidationData = word_data_spec("ValidationData", "dev", 64, training=False)
TestData = word_data_spec("TestData", "dev", 64, training=False)

DATA_DIR_HELP = ("folder written by dataset_convert: text_<split>.txt, labels_<split>.txt, "
                 "punct_label_ids.csv, capit_label_ids.csv")


@dataclass
class PunctDatasetSpec:
    max_seq_length: int = spec_field(128, "sub-tokens per window, [CLS] and [SEP] included; longer lines are "
                                     "split into windows, never cut", **SEQ_LENGTH)


@dataclass
class HeadSpec:
    num_fc_layers: int = spec_field(1, "layers of the MLP on each token vector (1: a single linear layer)", min=1, max=16)
    fc_dropout: float = spec_field(0.1, "dropout before each head layer", **DROPOUT)


@dataclass
class ModelSpec:
    punct_label_ids: Optional[str] = spec_field(None, "punctuation labels, one a line (default: "
                                                "punct_label_ids.csv in data_dir)", path="file")
    capit_label_ids: Optional[str] = spec_field(None, "case labels, one a line (default: capit_label_ids.csv "
                                                "in data_dir)", path="file")
    punct_loss_weight: float = spec_field(0.5, "loss = w * punctuation loss + (1 - w) * capitalization loss", **FRACTION)
    dataset: PunctDatasetSpec = section(PunctDatasetSpec, "tokenization")
    language_model: LanguageModelSpec = section(LanguageModelSpec, "the pretrained encoder")
    punct_head: HeadSpec = section(HeadSpec, "the punctuation classifier on every token")
    capit_head: HeadSpec = section(HeadSpec, "the capitalization classifier on every token")


@dataclass
class FinetuneModelSpec:
    punct_loss_weight: float = spec_field(0.5, "loss = w * punctuation loss + (1 - w) * capitalization loss", **FRACTION)


@dataclass
class DatasetConvertSpec(SpecBase):
    example: ClassVar[str] = ("tao punctuation_and_capitalization dataset_convert -r /results/punct/convert "
                              "source_data_dir=/data/raw_text target_data_dir=/data/punct dev_ratio=0.2")
    source_data_dir: str = spec_field(REQUIRED, "a folder of *.txt files (cased, punctuated text, one paragraph a "
                                      "line; or IWSLT token<TAB>label files), or one such file", path="exists")
    target_data_dir: str = spec_field(REQUIRED, "folder to write text_<split>.txt, labels_<split>.txt and the "
                                      "label id files into", path="out_dir")
    dev_ratio: float = spec_field(0.2, "share of the lines that go to dev (0: write only the train files)",
                                  min=0.0, max=1.0, max_exclusive=True)
    punct_marks: str = spec_field(",.?", "the punctuation marks to learn; other punctuation is dropped")
    seed: int = spec_field(42, "seed of the train/dev split", min=0, max=2**32 - 1)


@dataclass
class TrainSpec(SpecBase):
    example: ClassVar[str] = ("tao punctuation_and_capitalization train -e /specs/punctuation_and_capitalization/"
                              "train.yaml -r /results/punct/train -k $KEY data_dir=/data/punct trainer.max_epochs=3")
    data_dir: str = spec_field(REQUIRED, DATA_DIR_HELP, path="dir")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    model: ModelSpec = section(ModelSpec, "the model")
    training_ds: TrainingData = section(TrainingData, "training data (files in data_dir)")
    validation_ds: ValidationData = section(ValidationData, "validation data, evaluated every epoch")
    optim: WordOptimSpec = section(WordOptimSpec, "optimizer")


@dataclass
class FinetuneSpec(SpecBase):
    example: ClassVar[str] = ("tao punctuation_and_capitalization finetune -r /results/punct/finetune "
                              "-m /results/punct/train/checkpoints/trained-model.tao -k $KEY data_dir=/data/punct_domain")
    data_dir: str = spec_field(REQUIRED, DATA_DIR_HELP + " (the same label sets as the -m model)", path="dir")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    model: FinetuneModelSpec = section(FinetuneModelSpec, "the model comes from -m")
    finetuning_ds: TrainingData = section(TrainingData, "fine-tuning data (files in data_dir)")
    validation_ds: ValidationData = section(ValidationData, "validation data, evaluated every epoch")
    optim: WordOptimSpec = section(WordOptimSpec, "optimizer")


@dataclass
class EvaluateSpec(SpecBase):
    example: ClassVar[str] = ("tao punctuation_and_capitalization evaluate -r /results/punct/evaluate "
                              "-m /results/punct/train/checkpoints/trained-model.tao -k $KEY data_dir=/data/punct")
    data_dir: str = spec_field(REQUIRED, DATA_DIR_HELP, path="dir")
    test_ds: TestData = section(TestData, "labelled test data (files in data_dir)")


@dataclass
class InferSpec(SpecBase):
    example: ClassVar[str] = ("tao punctuation_and_capitalization infer -r /results/punct/infer "
                              "-m /results/punct/train/checkpoints/trained-model.tao -k $KEY "
                              "'input_batch=[\"how are you doing today i am fine thanks\"]'")
    input_batch: List[str] = spec_field(
        ["how are you doing today i am fine thanks",
         "the united nations was founded in 1945 after the second world war"],
        "texts to punctuate and capitalize (ignored when input_file is set)")
    input_file: Optional[str] = spec_field(None, "text file, one text a line", path="file")
    batch_size: int = spec_field(32, "windows per batch", **POSITIVE)
    margin: int = spec_field(16, "words of context kept on each side where a long text is split into "
                             "overlapping segments (NeMo's margin)",
                             min=0, max=10000)


@dataclass
class ExportSpec(ExportFields):
    example: ClassVar[str] = ("tao punctuation_and_capitalization export -r /results/punct/export "
                              "-m /results/punct/train/checkpoints/trained-model.tao -k $KEY export_format=ONNX")


@dataclass
class InferOnnxSpec(InferSpec):
    example: ClassVar[str] = ("tao punctuation_and_capitalization infer_onnx -r /results/punct/infer_onnx "
                              "-m /results/punct/export/exported-model.eonnx -k $KEY "
                              "'input_batch=[\"how are you doing today i am fine thanks\"]'")

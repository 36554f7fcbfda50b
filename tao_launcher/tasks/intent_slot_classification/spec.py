"""Spec schemas of intent_slot_classification, one per subtask, with TAO Toolkit 3.0 / NeMo field names.

The single source of the shipped YAML (``specs/intent_slot_classification``), validation and ``--help``.
Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from typing import ClassVar, List, Optional

from tao_launcher.nlp.spec import BIO_DECODING_HELP
from tao_launcher.spec.schema import (
    COUNT_OR_ALL, DROPOUT, FRACTION, LEARNING_RATE, POSITIVE, REQUIRED, SEQ_LENGTH, ExportFields, LanguageModelSpec,
    OptimSpec, SpecBase, TrainerSpec, section, spec_field)

DATA_DIR_HELP = ("folder written by dataset_convert: dict.intents.csv, dict.slots.csv, <prefix>.tsv and "
                 "<prefix>_slots.tsv")
QUERIES = ["show me flights from boston to denver on monday", "what is the cheapest fare to dallas"]


def _data_spec(name: str, prefix: str, batch_size: int, training: bool) -> type:
    """NeMo's ``{prefix, batch_size, num_samples[, shuffle], num_workers}`` section: ``<prefix>.tsv`` and
    ``<prefix>_slots.tsv`` in data_dir."""
    fields = [
        ("prefix", str, spec_field(prefix, "files <prefix>.tsv (sentence<TAB>intent id) and <prefix>_slots.tsv "
                                           "(slot ids) in data_dir")),
        ("batch_size", int, spec_field(batch_size, "utterances per batch", **POSITIVE)),
        ("num_samples", int, spec_field(-1, "use only the first N utterances (-1: all)", **COUNT_OR_ALL)),
    ]
    if training:
        fields.append(("shuffle", bool, spec_field(True, "shuffle every epoch (batches are formed from utterances "
                                                         "of similar length)")))
    fields.append(("num_workers", int, spec_field(0, "DataLoader worker processes (0: load in the main process)",
                                                  min=0, max=64)))
    return make_dataclass(name, fields)


TrainingData = _data_spec("TrainingData", "train", 16, training=True)  # ATIS, 3 epochs: slot F1 0.936 at 16, 0.909 at 32
ValidationData = _data_spec("ValidationData", "dev", 64, training=False)
TestData = _data_spec("TestData", "test", 64, training=False)


@dataclass
class ClassLabelsSpec:
    intent_labels_file: Optional[str] = spec_field(None, "intent names, one a line, line N is id N-1 (default: "
                                                         "dict.intents.csv in data_dir)", path="file")
    slot_labels_file: Optional[str] = spec_field(None, "slot tags, one a line, line N is id N-1 (default: "
                                                       "dict.slots.csv in data_dir)", path="file")


@dataclass
class IntentSlotDatasetSpec:
    max_seq_length: int = spec_field(128, "sub-tokens per window, [CLS] and [SEP] included; a longer utterance "
                                          "is split into windows, never cut", **SEQ_LENGTH)


@dataclass
class IntentHeadSpec:
    pooling: str = spec_field("mean", "sentence vector for the intent head: mean (average of the token vectors, "
                                      "what sentence encoders such as all-MiniLM are trained for) or cls",
                              choices=("mean", "cls"))
    num_output_layers: int = spec_field(2, "layers of the MLP on the sentence vector (1: a single linear layer)",
                                        min=1, max=16)
    fc_dropout: float = spec_field(0.1, "dropout before each head layer", **DROPOUT)


@dataclass
class SlotHeadSpec:
    num_output_layers: int = spec_field(1, "layers of the MLP on each first sub-token (1: a single linear layer)",
                                        min=1, max=16)
    fc_dropout: float = spec_field(0.1, "dropout before each head layer", **DROPOUT)


# NeMo's default weight 0.6 costs slot F1: the shared encoder follows the intent loss, which the intent head
# fits within the first epoch (ATIS, 3 epochs, dev intent acc / slot F1: 0.976 / 0.938 at 0.6, 0.972 / 0.953
# at 0.3, 0.974 / 0.967 at 0.15; benchmarks/RESULTS.md)
DEFAULT_INTENT_LOSS_WEIGHT = 0.15
LOSS_WEIGHT_HELP = "loss = w * intent loss + (1 - w) * slot loss (NeMo's default is 0.6, which costs slot F1)"


@dataclass
class ModelSpec:
    intent_loss_weight: float = spec_field(DEFAULT_INTENT_LOSS_WEIGHT, LOSS_WEIGHT_HELP, **FRACTION)
    class_labels: ClassLabelsSpec = section(ClassLabelsSpec, "the label sets")
    dataset: IntentSlotDatasetSpec = section(IntentSlotDatasetSpec, "tokenization")
    language_model: LanguageModelSpec = section(LanguageModelSpec, "the pretrained encoder")
    intent_head: IntentHeadSpec = section(IntentHeadSpec, "the intent classifier on the sentence vector")
    slot_head: SlotHeadSpec = section(SlotHeadSpec, "the slot classifier on the first sub-token of every word")
    bio_decoding: bool = spec_field(True, BIO_DECODING_HELP)


@dataclass
class FinetuneModelSpec:
    intent_loss_weight: float = spec_field(DEFAULT_INTENT_LOSS_WEIGHT, LOSS_WEIGHT_HELP, **FRACTION)
    bio_decoding: bool = spec_field(True, BIO_DECODING_HELP)


@dataclass
class IntentSlotOptimSpec(OptimSpec):
    """A higher peak rate than text_classification's: both heads start from scratch (all of ATIS, 3 epochs,
    batch 32: dev intent accuracy / slot F1 0.960 / 0.884 at 2e-4, 0.980 / 0.909 at 5e-4, 0.970 / 0.885 at 1e-3;
    batch 16 at 5e-4: 0.978 / 0.936)."""

    lr: float = spec_field(5e-4, "peak learning rate", **LEARNING_RATE)


@dataclass
class DatasetConvertSpec(SpecBase):
    example: ClassVar[str] = ("tao intent_slot_classification dataset_convert -r /results/intent_slot/convert "
                              "dataset_name=atis source_data_dir=/data/atis_raw target_data_dir=/data/atis")
    dataset_name: str = spec_field("atis", "atis or snips: both in the {train,dev,test}/seq.in, seq.out, label layout",
                                   choices=("atis", "snips"))
    source_data_dir: str = spec_field(REQUIRED, "folder with train/ (and dev/, test/) holding seq.in, seq.out and "
                                                "label, and optionally intent_label.txt and slot_label.txt",
                                      path="dir")
    target_data_dir: str = spec_field(REQUIRED, "folder to write dict.intents.csv, dict.slots.csv, <split>.tsv and "
                                                "<split>_slots.tsv into", path="out_dir")


@dataclass
class TrainSpec(SpecBase):
    example: ClassVar[str] = ("tao intent_slot_classification train -e /specs/intent_slot_classification/train.yaml "
                              "-r /results/intent_slot/train -k $KEY data_dir=/data/atis trainer.max_epochs=3")
    data_dir: str = spec_field(REQUIRED, DATA_DIR_HELP, path="dir")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    model: ModelSpec = section(ModelSpec, "the model")
    training_ds: TrainingData = section(TrainingData, "training data (files in data_dir)")
    validation_ds: ValidationData = section(ValidationData, "validation data, evaluated every epoch")
    optim: IntentSlotOptimSpec = section(IntentSlotOptimSpec, "optimizer")


@dataclass
class FinetuneSpec(SpecBase):
    example: ClassVar[str] = ("tao intent_slot_classification finetune -r /results/intent_slot/finetune "
                              "-m /results/intent_slot/train/checkpoints/trained-model.tao -k $KEY "
                              "data_dir=/data/atis_domain")
    data_dir: str = spec_field(REQUIRED, DATA_DIR_HELP + " (ids of the -m model's label sets)", path="dir")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    model: FinetuneModelSpec = section(FinetuneModelSpec, "the model comes from -m")
    finetuning_ds: TrainingData = section(TrainingData, "fine-tuning data (files in data_dir)")
    validation_ds: ValidationData = section(ValidationData, "validation data, evaluated every epoch")
    optim: IntentSlotOptimSpec = section(IntentSlotOptimSpec, "optimizer")


@dataclass
class EvaluateSpec(SpecBase):
    example: ClassVar[str] = ("tao intent_slot_classification evaluate -r /results/intent_slot/evaluate "
                              "-m /results/intent_slot/train/checkpoints/trained-model.tao -k $KEY "
                              "data_dir=/data/atis test_ds.prefix=test")
    data_dir: str = spec_field(REQUIRED, DATA_DIR_HELP, path="dir")
    test_ds: TestData = section(TestData, "labelled test data (files in data_dir)")


@dataclass
class InferSpec(SpecBase):
    example: ClassVar[str] = ("tao intent_slot_classification infer -r /results/intent_slot/infer "
                              "-m /results/intent_slot/train/checkpoints/trained-model.tao -k $KEY "
                              "'input_batch=[\"show me flights from boston to denver on monday\"]'")
    input_batch: List[str] = spec_field(QUERIES, "utterances, words separated by spaces (ignored when input_file "
                                                 "is set)")
    input_file: Optional[str] = spec_field(None, "text file, one utterance a line", path="file")
    batch_size: int = spec_field(32, "windows per batch", **POSITIVE)


@dataclass
class ExportSpec(ExportFields):
    example: ClassVar[str] = ("tao intent_slot_classification export -r /results/intent_slot/export "
                              "-m /results/intent_slot/train/checkpoints/trained-model.tao -k $KEY "
                              "export_format=ONNX")


@dataclass
class InferOnnxSpec(InferSpec):
    example: ClassVar[str] = ("tao intent_slot_classification infer_onnx -r /results/intent_slot/infer_onnx "
                              "-m /results/intent_slot/export/exported-model.eonnx -k $KEY "
                              "'input_batch=[\"show me flights from boston to denver on monday\"]'")


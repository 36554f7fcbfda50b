"""Spec schemas of intent_slot_classification, one per subtask, with TAO Toolkit 3.0 / NeMo field names.

The single source of the shipped YAML (``specs/intent_slot_classification``), validation and ``--help``.
Imports no torch. The shapes shared with the other tasks come from ``spec.schema`` and ``nlp.spec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tao_launcher.nlp.spec import (
    BIO_DECODING_HELP, MEAN_POOLING, bucketed_data_spec, labels_file, sentence_head_spec, text_infer_spec,
    token_head_spec, windows_spec)
from tao_launcher.spec.schema import (
    FRACTION, LEARNING_RATE, Examples, ExportFields, LanguageModelSpec, OptimSpec, dataset_convert_spec,
    evaluate_spec, finetune_spec, section, spec_field, subset_section, subtask_spec, train_spec)

EXAMPLE = Examples("intent_slot_classification", "/results/intent_slot")
DATA_DIR_HELP = ("folder written by dataset_convert: dict.intents.csv, dict.slots.csv, <prefix>.tsv and "
                 "<prefix>_slots.tsv")
QUERIES = ["show me flights from boston to denver on monday", "what is the cheapest fare to dallas"]


def _data_spec(name: str, prefix: str, batch_size: int, training: bool) -> type:
    """NeMo's ``{prefix, batch_size, num_samples[, shuffle], num_workers}`` section: ``<prefix>.tsv`` and
    ``<prefix>_slots.tsv`` in data_dir."""
    files = [("prefix", str, spec_field(prefix, "files <prefix>.tsv (sentence<TAB>intent id) and <prefix>_slots.tsv "
                                                "(slot ids) in data_dir"))]
    return bucketed_data_spec(name, files, batch_size, "utterances per batch", "utterances", training, "utterances")


TrainingData = _data_spec("TrainingData", "train", 16, training=True)  # ATIS, 3 epochs: slot F1 0.936 at 16, 0.909 at 32
ValidationData = _data_spec("ValidationData", "dev", 64, training=False)
TestData = _data_spec("TestData", "test", 64, training=False)


@dataclass
class ClassLabelsSpec:
    intent_labels_file: Optional[str] = labels_file("intent names, one a line, line N is id N-1", "dict.intents.csv")
    slot_labels_file: Optional[str] = labels_file("slot tags, one a line, line N is id N-1", "dict.slots.csv")


IntentSlotDatasetSpec = windows_spec("IntentSlotDatasetSpec", "a longer utterance is")
IntentHeadSpec = sentence_head_spec("IntentHeadSpec", f"sentence vector for the intent head: {MEAN_POOLING} or cls")
SlotHeadSpec = token_head_spec("SlotHeadSpec", "layers of the MLP on each first sub-token (1: a single linear layer)",
                               layers="num_output_layers")

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


FinetuneModelSpec = subset_section("FinetuneModelSpec", ModelSpec, "intent_loss_weight", "bio_decoding")


@dataclass
class IntentSlotOptimSpec(OptimSpec):
    """A higher peak rate than text_classification's: both heads start from scratch (all of ATIS, 3 epochs,
    batch 32: dev intent accuracy / slot F1 0.960 / 0.884 at 2e-4, 0.980 / 0.909 at 5e-4, 0.970 / 0.885 at 1e-3;
    batch 16 at 5e-4: 0.978 / 0.936)."""

    lr: float = spec_field(5e-4, "peak learning rate", **LEARNING_RATE)


# the subtask schemas (the names registry.py looks up)
DatasetConvertSpec = dataset_convert_spec(
    EXAMPLE("dataset_convert", "dataset_name=atis source_data_dir=/data/atis_raw target_data_dir=/data/atis"),
    dataset=("atis", "atis or snips: both in the {train,dev,test}/seq.in, seq.out, label layout", ("atis", "snips")),
    source="folder with train/ (and dev/, test/) holding seq.in, seq.out and label, and optionally "
           "intent_label.txt and slot_label.txt",
    target="folder to write dict.intents.csv, dict.slots.csv, <split>.tsv and <split>_slots.tsv into")
TrainSpec = train_spec(EXAMPLE("train", "data_dir=/data/atis trainer.max_epochs=3"),
                       ModelSpec, TrainingData, ValidationData, IntentSlotOptimSpec, data_dir=DATA_DIR_HELP)
FinetuneSpec = finetune_spec(TrainSpec, EXAMPLE("finetune", "data_dir=/data/atis_domain"), FinetuneModelSpec,
                             data_dir=DATA_DIR_HELP + " (ids of the -m model's label sets)")
EvaluateSpec = evaluate_spec(EXAMPLE("evaluate", "data_dir=/data/atis test_ds.prefix=test"), TestData,
                             data_dir=DATA_DIR_HELP)
InferSpec = text_infer_spec(EXAMPLE("infer", f"'input_batch=[\"{QUERIES[0]}\"]'"), QUERIES,
                            "utterances, words separated by spaces", "text file, one utterance a line")
ExportSpec = subtask_spec("ExportSpec", EXAMPLE("export", "export_format=ONNX"), base=ExportFields)
InferOnnxSpec = subtask_spec("InferOnnxSpec", EXAMPLE("infer_onnx", f"'input_batch=[\"{QUERIES[0]}\"]'"),
                             base=InferSpec)

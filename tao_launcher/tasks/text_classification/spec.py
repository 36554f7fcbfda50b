"""Spec schemas of text_classification, one per subtask, with TAO Toolkit 3.0's field names.

These dataclasses are the single source of the shipped YAML (``specs/text_classification``),
of validation and of ``--help``. Imports no torch. The shapes shared with the other tasks come from
``spec.schema`` and ``nlp.spec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from tao_launcher.nlp.spec import MEAN_POOLING, file_data_specs, sentence_head_spec, text_infer_spec
from tao_launcher.spec.schema import (
    SEQ_LENGTH, Examples, ExportFields, LanguageModelSpec, dataset_convert_spec, evaluate_spec, finetune_spec,
    section, spec_field, subtask_spec, train_spec)

EXAMPLE = Examples("text_classification", "/results/tc")
DATA_FORMAT = "one example a line: sentence<TAB>label, label an integer id (see dataset_convert)"

TrainingDataSpec, EvalDataSpec = file_data_specs("file_path", DATA_FORMAT, "sentences", "lines", (32, 64),
                                                names=("TrainingDataSpec", "EvalDataSpec"))


@dataclass
class ClassLabelsSpec:
    class_labels_file: Optional[str] = spec_field(
        None, "file with one class name a line; line N names label id N (dataset_convert writes labels.txt)", path="file")


@dataclass
class ModelDatasetSpec:
    num_classes: Optional[int] = spec_field(
        None, "number of classes; label ids run 0..num_classes-1. May be left null when "
        "model.class_labels.class_labels_file names the classes: it is then their count (when both are set, "
        "they must agree)", min=2, max=100000)
    max_seq_length: int = spec_field(128, "longer sentences are truncated to this many tokens", **SEQ_LENGTH)
    class_balancing: Optional[str] = spec_field(
        None, "null, or weighted_loss to weight the loss by inverse class frequency", choices=("weighted_loss",))


ClassifierHeadSpec = sentence_head_spec("ClassifierHeadSpec",
                                        f"sentence vector for the head: {MEAN_POOLING} or cls (the [CLS] vector)")


@dataclass
class ModelSpec:
    class_labels: ClassLabelsSpec = section(ClassLabelsSpec, "names of the classes")
    dataset: ModelDatasetSpec = section(ModelDatasetSpec, "label set and tokenization")
    language_model: LanguageModelSpec = section(LanguageModelSpec, "the pretrained encoder")
    classifier_head: ClassifierHeadSpec = section(ClassifierHeadSpec, "the classification head")


@dataclass
class FinetuneModelSpec:
    class_labels: ClassLabelsSpec = section(ClassLabelsSpec, "must match the class names in the -m archive when set")


def _train_problems(spec) -> List[str]:
    if spec.model.dataset.num_classes is None and not spec.model.class_labels.class_labels_file:
        return ["model.dataset.num_classes is required when model.class_labels.class_labels_file does not "
                "name the classes: add model.dataset.num_classes=2 (or the labels file) to the command line"]
    return []


# the subtask schemas (the names registry.py looks up)
DatasetConvertSpec = dataset_convert_spec(
    EXAMPLE("dataset_convert", "dataset_name=sst2 source_data_dir=/data/SST-2 target_data_dir=/data/sst2"),
    dataset=("sst2", "sst2 (GLUE SST-2 train.tsv/dev.tsv) or imdb (aclImdb folder or its .tar.gz)", ("sst2", "imdb")),
    source="folder with the downloaded dataset (imdb: or its .tar.gz)", source_kind="exists",
    target="folder to write train.tsv, dev.tsv and labels.txt into")
TrainSpec = train_spec(
    EXAMPLE("train", "model.dataset.num_classes=2 training_ds.file_path=/data/sst2/train.tsv "
                     "validation_ds.file_path=/data/sst2/dev.tsv trainer.max_epochs=2"),
    ModelSpec, TrainingDataSpec, EvalDataSpec, problems=_train_problems)
FinetuneSpec = finetune_spec(
    TrainSpec, EXAMPLE("finetune", "finetuning_ds.file_path=/data/domain/train.tsv "
                                   "validation_ds.file_path=/data/domain/dev.tsv", spec=True),
    FinetuneModelSpec, model_help="the model comes from -m; only its labels are checked",
    data="fine-tuning data, same label set as the model")
EvaluateSpec = evaluate_spec(EXAMPLE("evaluate", "test_ds.file_path=/data/sst2/dev.tsv"), EvalDataSpec)
InferSpec = text_infer_spec(
    EXAMPLE("infer", "input_file=/data/sst2/test.tsv"),
    ["by the end of no such thing the audience , like beatrice , has a watchful affection for the monster .",
     "director rob marshall went out gunning to make a great one .",
     "uneasy mishmash of styles and genres ."],
    "sentences to classify",
    "text file, one sentence a line (a tsv's first column is used; a 'sentence' header is skipped)",
    batch_help="sentences per batch")
ExportSpec = subtask_spec("ExportSpec", EXAMPLE("export", "export_format=ONNX"), base=ExportFields)
InferOnnxSpec = subtask_spec("InferOnnxSpec", EXAMPLE("infer_onnx", "input_file=/data/sst2/test.tsv"), base=InferSpec)

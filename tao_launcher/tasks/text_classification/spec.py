"""Spec schemas of text_classification, one per subtask, with TAO Toolkit 3.0's field names.

These dataclasses are the single source of the shipped YAML (``specs/text_classification``),
of validation and of ``--help``. Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, List, Optional

from tao_launcher.spec.schema import (
    COUNT_OR_ALL, DROPOUT, POSITIVE, REQUIRED, SEQ_LENGTH, WORKERS, ExportFields, LanguageModelSpec, OptimSpec,
    SpecBase, TrainerSpec, section, spec_field)

DATA_FORMAT = "one example a line: sentence<TAB>label, label an integer id (see dataset_convert)"


@dataclass
class TrainingDataSpec:
    file_path: str = spec_field(REQUIRED, "training file, " + DATA_FORMAT, path="file")
    batch_size: int = spec_field(32, "sentences per batch", **POSITIVE)
    num_samples: int = spec_field(-1, "use only the first N lines (-1: all)", **COUNT_OR_ALL)
    shuffle: bool = spec_field(True, "shuffle every epoch (batches are formed from sentences of similar length)")
    num_workers: int = spec_field(0, "DataLoader worker processes (0: load in the main process)", **WORKERS)


@dataclass
class EvalDataSpec:
    file_path: str = spec_field(REQUIRED, "evaluation file, " + DATA_FORMAT, path="file")
    batch_size: int = spec_field(64, "sentences per batch", **POSITIVE)
    num_samples: int = spec_field(-1, "use only the first N lines (-1: all)", **COUNT_OR_ALL)
    num_workers: int = spec_field(0, "DataLoader worker processes (0: load in the main process)", **WORKERS)


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


@dataclass
class ClassifierHeadSpec:
    pooling: str = spec_field("mean", "sentence vector for the head: mean (average of the token vectors, what "
                              "sentence encoders such as all-MiniLM are trained for) or cls (the [CLS] vector)",
                              choices=("mean", "cls"))
    num_output_layers: int = spec_field(2, "layers of the MLP on the sentence vector (1: a single linear layer)",
                                         min=1, max=16)
    fc_dropout: float = spec_field(0.1, "dropout before each head layer", **DROPOUT)


@dataclass
class ModelSpec:
    class_labels: ClassLabelsSpec = section(ClassLabelsSpec, "names of the classes")
    dataset: ModelDatasetSpec = section(ModelDatasetSpec, "label set and tokenization")
    language_model: LanguageModelSpec = section(LanguageModelSpec, "the pretrained encoder")
    classifier_head: ClassifierHeadSpec = section(ClassifierHeadSpec, "the classification head")


@dataclass
class FinetuneModelSpec:
    class_labels: ClassLabelsSpec = section(ClassLabelsSpec, "must match the class names in the -m archive when set")


@dataclass
class DatasetConvertSpec(SpecBase):
    example: ClassVar[str] = (
        "tao text_classification dataset_convert -r /results/tc/convert "
        "dataset_name=sst2 source_data_dir=/data/SST-2 target_data_dir=/data/sst2")
    dataset_name: str = spec_field("sst2", "sst2 (GLUE SST-2 train.tsv/dev.tsv) or imdb (aclImdb folder or its .tar.gz)",
                                   choices=("sst2", "imdb"))
    source_data_dir: str = spec_field(REQUIRED, "folder with the downloaded dataset (imdb: or its .tar.gz)", path="exists")
    target_data_dir: str = spec_field(REQUIRED, "folder to write train.tsv, dev.tsv and labels.txt into", path="out_dir")


@dataclass
class TrainSpec(SpecBase):
    example: ClassVar[str] = (
        "tao text_classification train -e /specs/text_classification/train.yaml -r /results/tc/train -k $KEY "
        "model.dataset.num_classes=2 training_ds.file_path=/data/sst2/train.tsv "
        "validation_ds.file_path=/data/sst2/dev.tsv trainer.max_epochs=2")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    model: ModelSpec = section(ModelSpec, "the model")
    training_ds: TrainingDataSpec = section(TrainingDataSpec, "training data")
    validation_ds: EvalDataSpec = section(EvalDataSpec, "validation data, evaluated every epoch")
    optim: OptimSpec = section(OptimSpec, "optimizer")

    def problems(self) -> List[str]:
        if self.model.dataset.num_classes is None and not self.model.class_labels.class_labels_file:
            return ["model.dataset.num_classes is required when model.class_labels.class_labels_file does not "
                    "name the classes: add model.dataset.num_classes=2 (or the labels file) to the command line"]
        return []


@dataclass
class FinetuneSpec(SpecBase):
    example: ClassVar[str] = (
        "tao text_classification finetune -e /specs/text_classification/finetune.yaml -r /results/tc/finetune "
        "-m /results/tc/train/checkpoints/trained-model.tao -k $KEY "
        "finetuning_ds.file_path=/data/domain/train.tsv validation_ds.file_path=/data/domain/dev.tsv")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    model: FinetuneModelSpec = section(FinetuneModelSpec, "the model comes from -m; only its labels are checked")
    finetuning_ds: TrainingDataSpec = section(TrainingDataSpec, "fine-tuning data, same label set as the model")
    validation_ds: EvalDataSpec = section(EvalDataSpec, "validation data, evaluated every epoch")
    optim: OptimSpec = section(OptimSpec, "optimizer")


@dataclass
class EvaluateSpec(SpecBase):
    example: ClassVar[str] = (
        "tao text_classification evaluate -r /results/tc/evaluate "
        "-m /results/tc/train/checkpoints/trained-model.tao -k $KEY test_ds.file_path=/data/sst2/dev.tsv")
    test_ds: EvalDataSpec = section(EvalDataSpec, "labelled test data")


@dataclass
class InferSpec(SpecBase):
    example: ClassVar[str] = (
        "tao text_classification infer -r /results/tc/infer -m /results/tc/train/checkpoints/trained-model.tao "
        "-k $KEY input_file=/data/sst2/test.tsv")
    input_batch: List[str] = spec_field(
        ["by the end of no such thing the audience , like beatrice , has a watchful affection for the monster .",
         "director rob marshall went out gunning to make a great one .",
         "uneasy mishmash of styles and genres ."],
        "sentences to classify (ignored when input_file is set)")
    input_file: Optional[str] = spec_field(
        None, "text file, one sentence a line (a tsv's first column is used; a 'sentence' header is skipped)", path="file")
    batch_size: int = spec_field(32, "sentences per batch", **POSITIVE)


@dataclass
class ExportSpec(ExportFields):
    example: ClassVar[str] = (
        "tao text_classification export -r /results/tc/export -m /results/tc/train/checkpoints/trained-model.tao "
        "-k $KEY export_format=ONNX")


@dataclass
class InferOnnxSpec(InferSpec):
    example: ClassVar[str] = (
        "tao text_classification infer_onnx -r /results/tc/infer_onnx -m /results/tc/export/exported-model.eonnx "
        "-k $KEY input_file=/data/sst2/test.tsv")


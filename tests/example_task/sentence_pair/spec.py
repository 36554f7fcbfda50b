"""Spec schemas of sentence_pair: what differs from other tasks is its data format and its infer inputs."""

from __future__ import annotations

from dataclasses import dataclass

from tao_launcher.nlp.spec import file_data_specs, text_infer_spec
from tao_launcher.spec.schema import (
    Examples, ExportFields, LanguageModelSpec, evaluate_spec, finetune_spec, section, subtask_spec, train_spec)

EXAMPLE = Examples("sentence_pair", "/results/pairs")
DATA_FORMAT = "one pair a line: first<TAB>second<TAB>label, label 1 (same meaning) or 0"

TrainingDataSpec, EvalDataSpec = file_data_specs("file_path", DATA_FORMAT, "pairs", "lines", (16, 32))


@dataclass
class ModelSpec:
    language_model: LanguageModelSpec = section(LanguageModelSpec, "the pretrained encoder")


TrainSpec = train_spec(EXAMPLE("train", "training_ds.file_path=/data/train.tsv validation_ds.file_path=/data/dev.tsv"),
                       ModelSpec, TrainingDataSpec, EvalDataSpec)
FinetuneSpec = finetune_spec(TrainSpec, EXAMPLE("finetune", "finetuning_ds.file_path=/data/domain.tsv "
                                                            "validation_ds.file_path=/data/dev.tsv"), None)
EvaluateSpec = evaluate_spec(EXAMPLE("evaluate", "test_ds.file_path=/data/dev.tsv"), EvalDataSpec)
InferSpec = text_infer_spec(EXAMPLE("infer", "input_file=/data/pairs.tsv"), ["a cat sat on the mat\tthe mat had a cat on it"],
                            "pairs to compare, first<TAB>second", "text file, one pair a line: first<TAB>second",
                            batch_help="pairs per batch")
ExportSpec = subtask_spec("ExportSpec", EXAMPLE("export", "export_format=ONNX"), base=ExportFields)
InferOnnxSpec = subtask_spec("InferOnnxSpec", EXAMPLE("infer_onnx", "input_file=/data/pairs.tsv"), base=InferSpec)

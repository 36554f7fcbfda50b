"""Spec schemas of question_answering (extractive, SQuAD v1.1 and v2.0), one per subtask, with TAO 3.0's names.

These dataclasses are the single source of the shipped YAML (``specs/question_answering``), of
validation and of ``--help``. Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional

from tao_launcher.spec.schema import (
    COUNT_OR_ALL, DROPOUT, LEARNING_RATE, POSITIVE, REQUIRED, SEQ_LENGTH, ExportFields, LanguageModelSpec, OptimSpec,
    SpecBase, TrainerSpec, section, spec_field)

DATA_FORMAT = "a SQuAD v1.1/v2.0 JSON file (data[].paragraphs[].context and qas[]; docs/question_answering.md)"
WORKERS = dict(min=0, max=64)
# the tokens of a window that are not the question: [CLS], [SEP], [SEP] and at least this much context
MIN_CONTEXT_TOKENS = 16


@dataclass
class TrainingData:
    file: str = spec_field(REQUIRED, "training file, " + DATA_FORMAT, path="file")
    batch_size: int = spec_field(24, "windows per batch (a long context is several windows)", **POSITIVE)
    num_samples: int = spec_field(-1, "use only the first N questions of the file (-1: all)", **COUNT_OR_ALL)
    shuffle: bool = spec_field(True, "shuffle every epoch (batches are formed from windows of similar length)")
    num_workers: int = spec_field(0, "DataLoader worker processes (0: load in the main process)", **WORKERS)


@dataclass
class EvalData:
    file: str = spec_field(REQUIRED, "labelled file, " + DATA_FORMAT, path="file")
    batch_size: int = spec_field(64, "windows per batch", **POSITIVE)
    num_samples: int = spec_field(-1, "use only the first N questions of the file (-1: all)", **COUNT_OR_ALL)
    num_workers: int = spec_field(0, "DataLoader worker processes (0: load in the main process)", **WORKERS)


@dataclass
class DatasetSpec:
    version_2_with_negative: bool = spec_field(
        True, "SQuAD v2.0: questions may have no answer in their context, and the model may answer 'no answer' "
        "(false: SQuAD v1.1, unanswerable questions are left out of training and the model always answers)")
    max_seq_length: int = spec_field(384, "sub-tokens per window: [CLS] question [SEP] context part [SEP]",
                                     **SEQ_LENGTH)
    doc_stride: int = spec_field(128, "a context longer than a window is split into windows whose starts are this "
                                      "many sub-tokens apart (NeMo's and BERT's doc_stride)", min=1, max=512)
    max_query_length: int = spec_field(64, "questions are cut to this many sub-tokens", min=1, max=509)


@dataclass
class TokenClassifierSpec:
    num_layers: int = spec_field(1, "layers of the start/end head on each token (1: a single linear layer, as "
                                    "NeMo and Hugging Face)", min=1, max=16)
    dropout: float = spec_field(0.0, "dropout before each head layer", **DROPOUT)


@dataclass
class ModelSpec:
    dataset: DatasetSpec = section(DatasetSpec, "SQuAD version and windows (saved with the model)")
    language_model: LanguageModelSpec = section(LanguageModelSpec, "the pretrained encoder")
    token_classifier: TokenClassifierSpec = section(TokenClassifierSpec, "the start/end head")


@dataclass
class DecodingSpec:
    """How logits become an answer: n-best spans over every window of a question, then the null answer."""

    n_best_size: int = spec_field(20, "start and end candidates per window, and answers kept per question",
                                  min=1, max=1000)
    max_answer_length: int = spec_field(30, "longest answer, in sub-tokens", min=1, max=512)
    null_score_diff_threshold: float = spec_field(
        0.0, "SQuAD v2.0: answer 'no answer' when the null score beats the best span's score by more than this",
        min=-1e6, max=1e6)


@dataclass
class QAOptimSpec(OptimSpec):
    """The peak rate of Hugging Face's run_qa recipe and NeMo's SQuAD configs."""

    lr: float = spec_field(3e-5, "peak learning rate", **LEARNING_RATE)


def _window_problems(dataset: DatasetSpec) -> List[str]:
    room = dataset.max_seq_length - dataset.max_query_length - 3
    if room < MIN_CONTEXT_TOKENS:
        return [f"model.dataset.max_seq_length ({dataset.max_seq_length}) leaves {room} sub-tokens of context after "
                f"a question of max_query_length ({dataset.max_query_length}) and [CLS]/[SEP]/[SEP]: raise "
                f"max_seq_length or lower max_query_length to leave at least {MIN_CONTEXT_TOKENS}"]
    return []


@dataclass
class DatasetConvertSpec(SpecBase):
    example: ClassVar[str] = ("tao question_answering dataset_convert -r /results/qa/convert "
                              "source_file=/data/squad/train-v2.0.json target_data_dir=/data/squad_split dev_ratio=0.1")
    source_file: str = spec_field(REQUIRED, "the SQuAD JSON file to check (and split)", path="file")
    target_data_dir: Optional[str] = spec_field(
        None, "folder to write train.json and dev.json into (needed when dev_ratio > 0)", path="out_dir")
    dev_ratio: float = spec_field(0.0, "share of the articles that go to dev.json, whole articles only (0: only "
                                       "check the file and report its counts)", min=0.0, max=1.0, max_exclusive=True)
    seed: int = spec_field(42, "seed of the train/dev split", min=0, max=2**32 - 1)

    def problems(self) -> List[str]:
        if self.dev_ratio > 0 and not self.target_data_dir:
            return [f"dev_ratio={self.dev_ratio} splits the file, so target_data_dir is required: add "
                    f"target_data_dir=/data/... (or dev_ratio=0 to only check the file)"]
        return []


@dataclass
class TrainSpec(SpecBase):
    example: ClassVar[str] = (
        "tao question_answering train -e /specs/question_answering/train.yaml -r /results/qa/train -k $KEY "
        "training_ds.file=/data/squad/train-v2.0.json validation_ds.file=/data/squad/dev-v2.0.json")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    model: ModelSpec = section(ModelSpec, "the model")
    training_ds: TrainingData = section(TrainingData, "training data")
    validation_ds: EvalData = section(EvalData, "validation data, scored (EM/F1) every epoch")
    decoding: DecodingSpec = section(DecodingSpec, "answers from logits (validation)")
    optim: QAOptimSpec = section(QAOptimSpec, "optimizer")

    def problems(self) -> List[str]:
        return _window_problems(self.model.dataset)


@dataclass
class FinetuneSpec(SpecBase):
    example: ClassVar[str] = (
        "tao question_answering finetune -r /results/qa/finetune -m /results/qa/train/checkpoints/trained-model.tao "
        "-k $KEY finetuning_ds.file=/data/domain/train.json validation_ds.file=/data/domain/dev.json")
    trainer: TrainerSpec = section(TrainerSpec, "training loop")
    finetuning_ds: TrainingData = section(TrainingData, "fine-tuning data (windows and SQuAD version: the model's)")
    validation_ds: EvalData = section(EvalData, "validation data, scored (EM/F1) every epoch")
    decoding: DecodingSpec = section(DecodingSpec, "answers from logits (validation)")
    optim: QAOptimSpec = section(QAOptimSpec, "optimizer")


@dataclass
class EvaluateSpec(SpecBase):
    example: ClassVar[str] = (
        "tao question_answering evaluate -r /results/qa/evaluate -m /results/qa/train/checkpoints/trained-model.tao "
        "-k $KEY test_ds.file=/data/squad/dev-v2.0.json")
    test_ds: EvalData = section(EvalData, "labelled test data, scored with the official SQuAD v2.0 rules")
    decoding: DecodingSpec = section(DecodingSpec, "answers from logits")


@dataclass
class InferSpec(SpecBase):
    example: ClassVar[str] = (
        "tao question_answering infer -r /results/qa/infer -m /results/qa/train/checkpoints/trained-model.tao "
        "-k $KEY input_file=/data/squad/dev-v2.0.json")
    input_batch: List[Dict[str, str]] = spec_field(
        [{"question": "When did the Normans settle in Normandy?",
          "context": "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
                     "a region in France."},
         {"question": "What is the capital of Australia?",
          "context": "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
                     "a region in France."}],
        "questions to answer, each {\"question\": ..., \"context\": ...} (ignored when input_file is set)")
    input_file: Optional[str] = spec_field(None, "questions to answer: " + DATA_FORMAT + "; answers, if any, are "
                                                 "ignored", path="file")
    batch_size: int = spec_field(32, "windows per batch", **POSITIVE)
    decoding: DecodingSpec = section(DecodingSpec, "answers from logits")


@dataclass
class ExportSpec(ExportFields):
    example: ClassVar[str] = (
        "tao question_answering export -r /results/qa/export -m /results/qa/train/checkpoints/trained-model.tao "
        "-k $KEY export_format=ONNX")


@dataclass
class InferOnnxSpec(InferSpec):
    example: ClassVar[str] = (
        "tao question_answering infer_onnx -r /results/qa/infer_onnx -m /results/qa/export/exported-model.eonnx "
        "-k $KEY input_file=/data/squad/dev-v2.0.json")

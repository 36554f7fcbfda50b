"""Spec schemas of question_answering (extractive, SQuAD v1.1 and v2.0), one per subtask, with TAO 3.0's names.

These dataclasses are the single source of the shipped YAML (``specs/question_answering``), of
validation and of ``--help``. Imports no torch. The shapes shared with the other tasks come from ``spec.schema``
and ``nlp.spec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional

from tao_launcher.nlp.spec import file_data_specs, text_infer_spec, token_head_spec
from tao_launcher.spec.schema import (
    LEARNING_RATE, REQUIRED, SEED, SEQ_LENGTH, SHARE, Examples, ExportFields, LanguageModelSpec, OptimSpec,
    SpecBase, evaluate_spec, finetune_spec, section, spec_field, subtask_spec, train_spec)

EXAMPLE = Examples("question_answering", "/results/qa")
DATA_FORMAT = "a SQuAD v1.1/v2.0 JSON file (data[].paragraphs[].context and qas[]; docs/question_answering.md)"
# the tokens of a window that are not the question: [CLS], [SEP], [SEP] and at least this much context
MIN_CONTEXT_TOKENS = 16

TrainingData, EvalData = file_data_specs("file", DATA_FORMAT, "windows", "questions of the file", (24, 64),
                                        eval_file="labelled",
                                        train_batch_help="windows per batch (a long context is several windows)")


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


TokenClassifierSpec = token_head_spec("TokenClassifierSpec", "layers of the start/end head on each token (1: a "
                                                             "single linear layer, as NeMo and Hugging Face)",
                                      layers="num_layers", dropout="dropout", dropout_default=0.0)


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


# the subtask schemas (the names registry.py looks up)
@dataclass
class DatasetConvertSpec(SpecBase):
    example: ClassVar[str] = EXAMPLE("dataset_convert", "source_file=/data/squad/train-v2.0.json "
                                                        "target_data_dir=/data/squad_split dev_ratio=0.1")
    source_file: str = spec_field(REQUIRED, "the SQuAD JSON file to check (and split)", path="file")
    target_data_dir: Optional[str] = spec_field(
        None, "folder to write train.json and dev.json into (needed when dev_ratio > 0)", path="out_dir")
    dev_ratio: float = spec_field(0.0, "share of the articles that go to dev.json, whole articles only (0: only "
                                       "check the file and report its counts)", **SHARE)
    seed: int = spec_field(42, "seed of the train/dev split", **SEED)

    def problems(self) -> List[str]:
        if self.dev_ratio > 0 and not self.target_data_dir:
            return [f"dev_ratio={self.dev_ratio} splits the file, so target_data_dir is required: add "
                    f"target_data_dir=/data/... (or dev_ratio=0 to only check the file)"]
        return []


TrainSpec = train_spec(
    EXAMPLE("train", "training_ds.file=/data/squad/train-v2.0.json validation_ds.file=/data/squad/dev-v2.0.json"),
    ModelSpec, TrainingData, EvalData, QAOptimSpec, validation_help="validation data, scored (EM/F1) every epoch",
    extra=[("decoding", DecodingSpec, section(DecodingSpec, "answers from logits (validation)"))],
    problems=lambda spec: _window_problems(spec.model.dataset))
FinetuneSpec = finetune_spec(
    TrainSpec, EXAMPLE("finetune", "finetuning_ds.file=/data/domain/train.json "
                                   "validation_ds.file=/data/domain/dev.json"),
    None, data="fine-tuning data (windows and SQuAD version: the model's)")
EvaluateSpec = evaluate_spec(
    EXAMPLE("evaluate", "test_ds.file=/data/squad/dev-v2.0.json"), EvalData,
    test_help="labelled test data, scored with the official SQuAD v2.0 rules",
    extra=[("decoding", DecodingSpec, section(DecodingSpec, "answers from logits"))])
InferSpec = text_infer_spec(
    EXAMPLE("infer", "input_file=/data/squad/dev-v2.0.json"),
    [{"question": question, "context": "The Normans were the people who in the 10th and 11th centuries gave their "
                                       "name to Normandy, a region in France."}
     for question in ("When did the Normans settle in Normandy?", "What is the capital of Australia?")],
    "questions to answer, each {\"question\": ..., \"context\": ...}",
    "questions to answer: " + DATA_FORMAT + "; answers, if any, are ignored", input_type=List[Dict[str, str]],
    extra=[("decoding", DecodingSpec, section(DecodingSpec, "answers from logits"))])
ExportSpec = subtask_spec("ExportSpec", EXAMPLE("export", "export_format=ONNX"), base=ExportFields)
InferOnnxSpec = subtask_spec("InferOnnxSpec", EXAMPLE("infer_onnx", "input_file=/data/squad/dev-v2.0.json"),
                             base=InferSpec)

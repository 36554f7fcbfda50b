"""Model archives of every NLP task in a second, with no training: a 1-layer, 32-wide BERT with
random (seeded) weights, the packaged tokenizer and tao's own heads, written as tao writes them.

For the tests where what matters is that two ways of running one network agree (infer, the
exports) or which modules a subtask imports, not what the network learned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

TASK_CONFIGS = {
    "text_classification": lambda labels: {
        "num_classes": len(labels), "label_names": labels, "max_seq_length": 64, "class_balancing": None,
        "num_output_layers": 2, "fc_dropout": 0.1, "pooling": "mean", "pretrained_model_name": "tiny"},
    "token_classification": lambda labels: {
        "label_names": labels, "max_seq_length": 64, "num_fc_layers": 1, "fc_dropout": 0.1,
        "pretrained_model_name": "tiny"},
    "punctuation_and_capitalization": lambda labels: {
        "punct_labels": labels[0], "capit_labels": labels[1], "max_seq_length": 64, "punct_num_fc_layers": 1,
        "punct_fc_dropout": 0.1, "capit_num_fc_layers": 2, "capit_fc_dropout": 0.1, "pretrained_model_name": "tiny"},
    "intent_slot_classification": lambda labels: {
        "intent_labels": labels[0], "slot_labels": labels[1], "max_seq_length": 64, "pooling": "mean",
        "intent_num_fc_layers": 2, "intent_fc_dropout": 0.1, "slot_num_fc_layers": 1, "slot_fc_dropout": 0.1,
        "pretrained_model_name": "tiny"},
    "question_answering": lambda labels: {   # no labels: a start and an end logit per token
        "version_2_with_negative": True, "max_seq_length": 64, "doc_stride": 32, "max_query_length": 16,
        "num_layers": 1, "dropout": 0.1, "pretrained_model_name": "tiny"},
}
DEFAULT_LABELS = {   # the tasks with labels (question_answering has none)
    "text_classification": ["negative", "positive"],
    "token_classification": ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"],
    "punctuation_and_capitalization": (["O", ",", ".", "?"], ["O", "U"]),
    "intent_slot_classification": (["flight", "airfare", "UNK"], ["O", "B-to", "I-to", "UNK"]),
}


def net_class(task: str):
    from tao_launcher.tasks.intent_slot_classification.model import IntentSlotModel
    from tao_launcher.tasks.punctuation_and_capitalization.model import PunctCapitModel
    from tao_launcher.tasks.question_answering.model import QuestionAnsweringNet
    from tao_launcher.tasks.text_classification.model import TextClassifier
    from tao_launcher.tasks.token_classification.model import TokenClassifier

    return {"text_classification": TextClassifier, "token_classification": TokenClassifier,
            "punctuation_and_capitalization": PunctCapitModel, "intent_slot_classification": IntentSlotModel,
            "question_answering": QuestionAnsweringNet}[task]


def tiny_archive(task: str, dest: Path, key: str, labels=None, seed: int = 0, **config: Dict) -> Path:
    """Write ``dest``, a ``.tao`` archive of ``task`` (``config`` overrides model_config entries)."""
    import torch
    from transformers import BertConfig

    from tao_launcher.core.encoders import resolve_encoder
    from tao_launcher.core.model import write_model_archive
    from tao_launcher.nlp.encoder import load_encoder, load_tokenizer
    from tao_launcher.nlp.model import write_payload

    tokenizer = load_tokenizer(resolve_encoder("all-minilm-l6-v2"))
    torch.manual_seed(seed)
    encoder = load_encoder(config=BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64, max_position_embeddings=128))
    model_config = {**TASK_CONFIGS[task](labels or DEFAULT_LABELS.get(task)), **config}
    net = net_class(task).from_config(model_config, encoder).eval()
    write_model_archive(dest, key, kind="tao", task=task, metrics=None,
                        write_payload=lambda folder: write_payload(folder, net, tokenizer))
    return dest


def read_labels(path: Path) -> List[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]

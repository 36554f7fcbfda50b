"""BERT for inference without transformers: the encoder's forward in plain torch, and its tokenizer
run by the ``tokenizers`` library.

Why: importing transformers' BERT and tokenizer costs 2.5-3.5 s on 2 cores (``modeling_utils`` pulls
in ``torch._dynamo`` and ``torch.distributed.tensor``) against a forward pass of milliseconds for a
few sentences; ``infer`` of two sentences is meant to take < 3 s as a whole process
(benchmarks/bench_commands.py: 4.2 s with transformers, 1.7 s with this module). So
``nlp.model.read_model(..., inference=True)`` builds these two when the archive's encoder is a
plain BERT, and transformers' otherwise. Training, finetune and
export keep transformers' ``BertModel`` and tokenizer: the archive's state dict is theirs.

``BertEncoder`` has the module tree of transformers' ``BertModel(add_pooling_layer=False)``, so the
same state dict loads into either, name for name, and computes what ``BertModel`` computes with
``attn_implementation="sdpa"`` in eval mode, step for step: (word + token type) + position
embeddings, LayerNorm; per layer SDPA self-attention over the unpadded keys, dense, residual
LayerNorm, dense, activation, dense, residual LayerNorm (tests/nlp/test_bert.py: equal within 1e-5).

``BertTokenizer`` is the tokenizer.json pipeline with the part of transformers' tokenizer API that
tao's inference calls (``__call__`` as encoder.tokenize, tokens.subtokens and the QA windows call
it; ``*_token_id``; ``len``). transformers' ``BertTokenizer`` rebuilds normalizer, pre-tokenizer and
post-processor from tokenizer_config.json, so ``BertTokenizer.load`` takes the fast path only when
tokenizer.json holds that same pipeline, and returns None (use transformers) otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}  # transformers' ACT2FN["gelu"] is the exact (erf) GELU
# transformers' BertConfig defaults: a config.json may leave out a key that has its default value
BERT_DEFAULTS = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                 "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512,
                 "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
                 "position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False}


def supports(config: Dict) -> bool:
    """Whether ``BertEncoder`` computes what transformers' BertModel does for this config.json."""
    c = {**BERT_DEFAULTS, **config}
    return (c.get("model_type") == "bert" and c["hidden_act"] in ACTIVATIONS
            and c["position_embedding_type"] == "absolute" and not c["is_decoder"] and not c["add_cross_attention"]
            and c["hidden_size"] % c["num_attention_heads"] == 0)


class _Linear(nn.Linear):
    def reset_parameters(self) -> None:
        """Left uninitialised: a BertEncoder's weights always come from a state dict (~0.1 s saved)."""


class _Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        """Left uninitialised, as ``_Linear``."""


def _node(**children: nn.Module) -> nn.Module:
    """A module that only names its children: the tree, and so the state dict keys, of BertModel."""
    node = nn.Module()
    for name, child in children.items():
        setattr(node, name, child)
    return node


class BertEncoder(nn.Module):
    """transformers' ``BertModel(add_pooling_layer=False)`` in eval mode, for inference only.

    ``config`` is the encoder's config.json as a namespace (what the heads read: ``hidden_size``,
    ``vocab_size``, ...). ``forward`` returns an object with ``last_hidden_state``, as BertModel's does.
    """

    def __init__(self, config: SimpleNamespace):
        super().__init__()
        c = self.config = config
        h, eps = c.hidden_size, c.layer_norm_eps
        self.embeddings = _node(word_embeddings=_Embedding(c.vocab_size, h, padding_idx=c.pad_token_id),
                                position_embeddings=_Embedding(c.max_position_embeddings, h),
                                token_type_embeddings=_Embedding(c.type_vocab_size, h),
                                LayerNorm=nn.LayerNorm(h, eps=eps))
        self.encoder = _node(layer=nn.ModuleList(
            _node(attention=_node(self=_node(query=_Linear(h, h), key=_Linear(h, h), value=_Linear(h, h)),
                                  output=_node(dense=_Linear(h, h), LayerNorm=nn.LayerNorm(h, eps=eps))),
                  intermediate=_node(dense=_Linear(h, c.intermediate_size)),
                  output=_node(dense=_Linear(c.intermediate_size, h), LayerNorm=nn.LayerNorm(h, eps=eps)))
            for _ in range(c.num_hidden_layers)))
        self.head_size = h // c.num_attention_heads
        self.activation = ACTIVATIONS[c.hidden_act]

    @classmethod
    def from_file(cls, config_file: Path) -> "BertEncoder":
        """The encoder of an archive's ``encoder/config.json`` (weights still to load)."""
        return cls(SimpleNamespace(**{**BERT_DEFAULTS, **json.loads(Path(config_file).read_text())}))

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None) -> SimpleNamespace:
        if self.training:
            raise RuntimeError("nlp.bert.BertEncoder is for inference only: train with transformers' BertModel")
        batch, length = input_ids.shape
        e = self.embeddings
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = e.word_embeddings(input_ids) + e.token_type_embeddings(token_type_ids)
        x = e.LayerNorm(x + e.position_embeddings(torch.arange(length, device=input_ids.device)))
        # BertModel with SDPA: no mask when nothing is padded, else a boolean (batch, 1, query, key) one
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :].expand(batch, 1, length, length)
        shape = (batch, length, -1, self.head_size)
        for layer in self.encoder.layer:
            attention = layer.attention
            q, k, v = (proj(x).view(shape).transpose(1, 2)
                       for proj in (attention.self.query, attention.self.key, attention.self.value))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.head_size ** -0.5)
            context = context.transpose(1, 2).reshape(batch, length, -1)
            x = attention.output.LayerNorm(attention.output.dense(context) + x)
            hidden = self.activation(layer.intermediate.dense(x))
            x = layer.output.LayerNorm(layer.output.dense(hidden) + x)
        return SimpleNamespace(last_hidden_state=x)


# ----------------------------------------------------------------------------- tokenizer

class Encoded(dict):
    """What tao reads of transformers' ``BatchEncoding``: the lists by name, and per row
    ``word_ids(i)`` and ``sequence_ids(i)``."""

    def __init__(self, data: Dict[str, list], encodings: list):
        super().__init__(data)
        self.encodings = encodings

    def word_ids(self, index: int = 0) -> List[Optional[int]]:
        return self.encodings[index].word_ids

    def sequence_ids(self, index: int = 0) -> List[Optional[int]]:
        return self.encodings[index].sequence_ids


def _token(value, default: str) -> str:
    """A special token of tokenizer_config.json: a string, or an AddedToken's dict."""
    if value is None:
        return default
    return value["content"] if isinstance(value, dict) else str(value)


class BertTokenizer:
    """transformers' (fast) BertTokenizer as tao's inference calls it, on the ``tokenizers`` library."""

    def __init__(self, backend, settings: Dict):
        self._backend = backend
        self.model_max_length = int(settings.get("model_max_length") or 512)
        self.truncation_side = settings.get("truncation_side", "right")
        for name, default in (("unk", "[UNK]"), ("sep", "[SEP]"), ("pad", "[PAD]"), ("cls", "[CLS]"),
                              ("mask", "[MASK]")):
            token = _token(settings.get(f"{name}_token"), default)
            setattr(self, f"{name}_token", token)
            setattr(self, f"{name}_token_id", backend.token_to_id(token))

    @classmethod
    def load(cls, folder: Path) -> Optional["BertTokenizer"]:
        """The tokenizer of ``folder`` (tokenizer.json, tokenizer_config.json), or None when transformers
        would build a pipeline other than the one tokenizer.json describes (then use transformers')."""
        from tokenizers import Tokenizer, processors

        folder = Path(folder)
        try:
            text = (folder / "tokenizer.json").read_text(encoding="utf-8")
            settings = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
            pipeline = json.loads(text)
        except (OSError, ValueError):
            return None
        if not cls._same_pipeline(pipeline, settings):
            return None
        backend = Tokenizer.from_str(text)
        tokenizer = cls(backend, settings)
        specials = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id)
        if any(i is None for i in specials):
            return None
        backend.no_padding()
        backend.no_truncation()
        cls_, sep = tokenizer.cls_token, tokenizer.sep_token
        # what transformers' BertTokenizer.__init__ sets, whatever tokenizer.json says
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls_}:0 $A:0 {sep}:0", pair=f"{cls_}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls_, tokenizer.cls_token_id), (sep, tokenizer.sep_token_id)])
        return tokenizer

    @staticmethod
    def _same_pipeline(pipeline: Dict, settings: Dict) -> bool:
        """tokenizer.json's normalizer, pre-tokenizer and model are what transformers' BertTokenizer
        (transformers 5) builds from tokenizer_config.json's settings."""
        model = pipeline.get("model") or {}
        normalizer = {"type": "BertNormalizer", "clean_text": True,
                      "handle_chinese_chars": settings.get("tokenize_chinese_chars", True),
                      "strip_accents": settings.get("strip_accents"), "lowercase": settings.get("do_lower_case", True)}
        return (settings.get("tokenizer_class") in ("BertTokenizer", "BertTokenizerFast")
                and pipeline.get("normalizer") == normalizer
                and pipeline.get("pre_tokenizer") == {"type": "BertPreTokenizer"}
                and model.get("type") == "WordPiece"
                and model.get("unk_token") == _token(settings.get("unk_token"), "[UNK]")
                and model.get("continuing_subword_prefix") == "##"
                and model.get("max_input_chars_per_word") == 100
                and settings.get("truncation_side", "right") in ("right", "left"))

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def __call__(self, text, text_pair=None, *, add_special_tokens: bool = True, truncation: bool = False,
                 max_length: Optional[int] = None, is_split_into_words: bool = False,
                 return_offsets_mapping: bool = False, verbose: bool = True) -> Encoded:
        """transformers' ``tokenizer(...)`` without padding: a list of texts (of word lists with
        ``is_split_into_words``) gives lists per row, a single one the row itself. ``verbose`` is
        accepted and ignored (transformers only warns about long inputs with it)."""
        batched = isinstance(text, (list, tuple)) and (
            not is_split_into_words or (len(text) > 0 and isinstance(text[0], (list, tuple))))
        texts = list(text) if batched else [text]
        if text_pair is not None:
            texts = list(zip(texts, list(text_pair) if batched else [text_pair]))
        if truncation:
            self._backend.enable_truncation(max_length or self.model_max_length, stride=0,
                                            strategy="longest_first", direction=self.truncation_side)
        else:
            self._backend.no_truncation()
        encodings = self._backend.encode_batch(texts, add_special_tokens=add_special_tokens,
                                               is_pretokenized=is_split_into_words)
        data = {"input_ids": [e.ids for e in encodings], "token_type_ids": [e.type_ids for e in encodings],
                "attention_mask": [e.attention_mask for e in encodings]}
        if return_offsets_mapping:
            data["offset_mapping"] = [e.offsets for e in encodings]
        if not batched:
            data = {name: rows[0] for name, rows in data.items()}
        return Encoded(data, encodings)

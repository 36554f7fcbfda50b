"""The pretrained encoder and tokenizer of an NLP model: from the spec, from an archive, to an archive."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

from torch import nn

from tao_launcher.core.encoders import resolve_encoder
from tao_launcher.errors import UsageError


def load_encoder(source: Path | None = None, config=None) -> nn.Module:
    """An encoder without its pooler (unused: heads pool the hidden states themselves), SDPA attention."""
    from transformers import AutoModel

    kwargs = {"attn_implementation": "sdpa"}
    for extra in ({"add_pooling_layer": False}, {}):
        try:
            if source is not None:
                return AutoModel.from_pretrained(str(source), **kwargs, **extra)
            return AutoModel.from_config(config, **kwargs, **extra)
        except TypeError:
            continue
    raise RuntimeError("unreachable")


def load_tokenizer(folder: Path, *, inference: bool = False):
    """transformers' tokenizer of ``folder``. ``inference=True``: the same pipeline on the ``tokenizers``
    library where tokenizer.json holds it (nlp/bert.py), without importing transformers; it only
    tokenizes (no save_pretrained), so training and export take the default."""
    if inference:
        from tao_launcher.nlp.bert import BertTokenizer

        tokenizer = BertTokenizer.load(folder)
        if tokenizer is not None:
            return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), use_fast=True)


def save_tokenizer(tokenizer, folder: Path) -> None:
    """The tokenizer files plus vocab.txt, one token a line in id order (what Riva's tokenizer reads)."""
    tokenizer.save_pretrained(str(folder))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab), encoding="utf-8")


def tokenize(tokenizer, sentences: Sequence[str], max_seq_length: int) -> List[List[int]]:
    """Sentence-level token ids with [CLS]/[SEP], truncated to ``max_seq_length``."""
    return tokenizer(list(sentences), truncation=True, max_length=max_seq_length,
                     add_special_tokens=True)["input_ids"]


def pretrained(language_model) -> Tuple[nn.Module, object]:
    """Encoder and tokenizer named by a ``LanguageModelSpec``, with its optional lm_checkpoint loaded."""
    import logging

    folder = resolve_encoder(language_model.pretrained_model_name)
    logging.getLogger("tao.nlp").info("encoder %s from %s", language_model.pretrained_model_name, folder)
    encoder = load_encoder(folder)
    if language_model.lm_checkpoint:
        load_encoder_checkpoint(encoder, Path(language_model.lm_checkpoint))
    return encoder, load_tokenizer(folder)


def load_encoder_checkpoint(encoder, path: Path) -> None:
    """Encoder weights from a safetensors file; every weight must fit (no silent partial load)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from tao_launcher.spec.load import file_problem

    if file_problem(path):
        raise UsageError(f"lm_checkpoint {path} {file_problem(path)}: check model.language_model.lm_checkpoint")
    try:
        weights = load_file(str(path))
    except SafetensorError as err:
        raise UsageError(f"lm_checkpoint {path} is not a safetensors file ({err})") from None
    # not used by us: the pooler (heads pool the hidden states themselves) and position_ids (a buffer newer transformers rebuild)
    ignored = ("pooler.",) if getattr(encoder, "pooler", None) is None else ()
    weights = {k: v for k, v in weights.items() if not k.startswith(ignored) and not k.endswith("position_ids")}
    try:
        result = encoder.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise UsageError(f"lm_checkpoint {path} does not fit the encoder: {str(err).splitlines()[-1].strip()}") from None
    if result.missing_keys or result.unexpected_keys:
        raise UsageError(f"lm_checkpoint {path} does not fit the encoder "
                         f"{encoder.config.model_type}: {len(result.missing_keys)} weights missing "
                         f"(e.g. {', '.join(result.missing_keys[:2]) or '-'}), {len(result.unexpected_keys)} unexpected "
                         f"(e.g. {', '.join(result.unexpected_keys[:2]) or '-'})")

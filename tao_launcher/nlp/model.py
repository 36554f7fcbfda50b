"""``EncoderNet``: a pretrained encoder with task heads, and the archive payload of an NLP model.

A task's network subclasses ``EncoderNet``. It keeps its settings in ``model_config`` (a
JSON-able dict, saved as ``model_config.json``), rebuilds itself with ``from_config``, names the
label files that travel with it (``artifacts``), and describes its own ONNX export, as NeMo's
``Exportable`` does: input names, output names, dynamic axes and example inputs.

This module is the NLP ``ModelFamily`` (core/model.py): ``write_payload``, ``read_model`` and
``read_processor`` lay out the payload of an NLP model archive (core/model.py adds the manifest,
docs/archive_format.md describes the encryption)::

    model_config.json    the task's model settings (labels, head, max_seq_length, ...)
    model.safetensors    all weights (never pickle)
    encoder/             the encoder's Hugging Face config.json
    tokenizer/           tokenizer files and vocab.txt
    <artifacts>          the task's label files (labels.txt, label_ids.csv, ...)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple, Type

import torch
from torch import nn

from tao_launcher.nlp import bert
from tao_launcher.nlp.encoder import load_encoder, load_tokenizer, save_tokenizer

class EncoderNet(nn.Module):
    """Base of every NLP task's network. ``forward`` takes ``input_names`` in order and returns
    one tensor per ``output_names`` (a tuple when there are several)."""

    input_names: Tuple[str, ...] = ("input_ids", "attention_mask")
    output_names: Tuple[str, ...] = ("logits",)
    # outputs are (batch, sequence, classes) rather than (batch, classes): True for all, or the names of those that are
    per_token_outputs: bool | Tuple[str, ...] = False

    def __init__(self, encoder: nn.Module, model_config: Dict):
        super().__init__()
        self.encoder = encoder
        self.model_config = model_config

    @classmethod
    def from_config(cls, model_config: Dict, encoder: nn.Module) -> "EncoderNet":
        """The network as saved: every task's net is built from its encoder and model_config alone."""
        return cls(encoder, model_config)

    def artifacts(self) -> Dict[str, str]:
        """Label files saved beside the weights, by file name (text)."""
        return {}

    def hidden_states(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return self.encoder(**kwargs).last_hidden_state

    # --- export description (NeMo's Exportable) ---------------------------------------------
    def export_axes(self) -> Dict[str, Dict[int, str]]:
        axes = {name: {0: "batch", 1: "sequence"} for name in self.input_names}
        axes.update({name: {0: "batch", 1: "sequence"} if self.is_per_token(name) else {0: "batch"}
                     for name in self.output_names})
        return axes

    def is_per_token(self, output: str) -> bool:
        per_token = self.per_token_outputs
        return output in per_token if isinstance(per_token, tuple) else bool(per_token)

    def example_inputs(self) -> Tuple[torch.Tensor, ...]:
        vocab = self.encoder.config.vocab_size
        examples = {"input_ids": torch.randint(0, vocab, (2, 8)), "attention_mask": torch.ones((2, 8), dtype=torch.long),
                    "token_type_ids": torch.zeros((2, 8), dtype=torch.long)}
        return tuple(examples[name] for name in self.input_names)

    def output_dims(self) -> Dict[str, List[int]]:
        """Shape of each output for the Riva config, -1 for dynamic axes."""
        raise NotImplementedError

    def input_dims(self) -> Dict[str, Tuple[str, List[int]]]:
        """(dtype, shape) of each input for the Riva config: token ids, -1 for the batch and sequence axes."""
        return {name: ("int64", [-1, -1]) for name in self.input_names}

    def riva_settings(self) -> Dict[str, object]:
        """What Riva's pre/post-processing needs besides the shapes: label files, tokenizer, max_seq_length (a task
        adds its own, e.g. QA's doc_stride)."""
        labels = list(self.artifacts())
        return {**({"labels_file": labels[0]} if len(labels) == 1 else {"labels_files": labels} if labels else {}),
                "tokenizer_dir": "tokenizer", "max_seq_length": self.model_config["max_seq_length"]}

    @classmethod
    def exports_hf(cls) -> bool:
        """export_format=HF needs ``heads``: a network that describes none has no Hugging Face form."""
        return cls.heads is not EncoderNet.heads

    def heads(self) -> List[Tuple[str, nn.Sequential, List[str]]]:
        """(output name, its ``mlp_head``, its label names) per output, in ``output_names`` order: what
        export_format=HF maps onto Hugging Face classes (nlp/hf_export.py). Sentence heads read the
        ``model_config["pooling"]`` vector (mean or cls)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Head:
    """One classifier head of a ``TwoHeadNet``: ``<name>_head`` on the encoder, output ``<name>_logits``, its
    settings in model_config as ``<name>_labels``, ``<name>_num_fc_layers`` and ``<name>_fc_dropout``, its labels
    saved as ``labels_file``; ``per_token``: one prediction per token, else per sentence."""

    name: str
    labels_file: str
    per_token: bool = True


class TwoHeadNet(EncoderNet):
    """An encoder with two MLP heads declared in ``two_heads`` (intent and slots, punctuation and capitals):
    the heads, their output names, label files, output shapes and HF description follow from the table;
    the subclass writes only ``forward``."""

    two_heads: Tuple[Head, Head]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.output_names = tuple(f"{h.name}_logits" for h in cls.two_heads)
        cls.per_token_outputs = tuple(f"{h.name}_logits" for h in cls.two_heads if h.per_token)

    def __init__(self, encoder: nn.Module, model_config: Dict):
        super().__init__(encoder, model_config)
        for h in self.two_heads:
            setattr(self, f"{h.name}_head", mlp_head(encoder.config.hidden_size, len(model_config[f"{h.name}_labels"]),
                                                     model_config[f"{h.name}_num_fc_layers"],
                                                     model_config[f"{h.name}_fc_dropout"]))

    def artifacts(self) -> Dict[str, str]:
        return {h.labels_file: "\n".join(self.model_config[f"{h.name}_labels"]) + "\n" for h in self.two_heads}

    def output_dims(self) -> Dict[str, List[int]]:
        return {f"{h.name}_logits": [-1, -1, len(self.model_config[f"{h.name}_labels"])] if h.per_token else
                [-1, len(self.model_config[f"{h.name}_labels"])] for h in self.two_heads}

    def heads(self) -> List[Tuple[str, nn.Sequential, List[str]]]:
        return [(f"{h.name}_logits", getattr(self, f"{h.name}_head"), self.model_config[f"{h.name}_labels"])
                for h in self.two_heads]


def sentence_vector(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """The vector a sentence-level head reads: ``mean`` of the unpadded token vectors, or ``cls`` ([CLS])."""
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return hidden[:, 0]


def mlp_head(hidden: int, num_classes: int, num_layers: int, dropout: float) -> nn.Sequential:
    """NeMo's classifier head: (num_layers - 1) x [dropout, linear, relu], then dropout and a linear layer."""
    layers: List[nn.Module] = []
    for _ in range(num_layers - 1):
        layers += [nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU()]
    layers += [nn.Dropout(dropout), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


def write_payload(folder: Path, net: EncoderNet, tokenizer, *, weights: bool = True) -> None:
    """The files of a model (layout above); ``weights=False`` for exports, which carry model.onnx instead."""
    if weights:
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()},
                  str(folder / "model.safetensors"))
        net.encoder.config.save_pretrained(str(folder / "encoder"))
    save_tokenizer(tokenizer, folder / "tokenizer")
    (folder / "model_config.json").write_text(json.dumps(net.model_config, indent=2))
    for name, text in net.artifacts().items():
        (folder / name).write_text(text, encoding="utf-8")


def read_model(folder: Path, net_cls: Type[EncoderNet], *, inference: bool = False
               ) -> Tuple[EncoderNet, object, Dict]:
    """Rebuild the network (eval mode), tokenizer and model config from an opened archive.

    ``inference=True`` (evaluate, infer): a BERT encoder and tokenizer without transformers
    (nlp/bert.py) where they compute the same: a 2-sentence infer in 1.7 s instead of 4.2 s
    (benchmarks/bench_commands.py); transformers' otherwise.
    The default, transformers' classes, is what finetune (which trains them) and export (which
    saves and traces them) need."""
    from safetensors.torch import load_file

    config = json.loads((folder / "model_config.json").read_text())
    weights = load_file(str(folder / "model.safetensors"))
    encoder_file = folder / "encoder" / "config.json"
    if inference and bert.supports(json.loads(encoder_file.read_text())):
        net = net_cls.from_config(config, bert.BertEncoder.from_file(encoder_file))
        # the file's (copy-on-write) mapping becomes the weights: no 90 MB copy, ~0.3 s
        net.load_state_dict(weights, assign=True)
    else:
        from transformers import AutoConfig

        net = net_cls.from_config(config, load_encoder(config=AutoConfig.from_pretrained(str(encoder_file.parent))))
        net.load_state_dict(weights)
    net.eval()
    return net, load_tokenizer(folder / "tokenizer", inference=inference), config


def read_processor(folder: Path, config: Dict):
    """The tokenizer of an opened export (core/model.py ``ModelFamily``)."""
    return load_tokenizer(folder / "tokenizer", inference=True)


#: export_format=HF of this family (core/export.py): the writer of a Hugging Face folder, named, not imported
HF_EXPORT = "tao_launcher.nlp.hf_export:write_hf_folder"

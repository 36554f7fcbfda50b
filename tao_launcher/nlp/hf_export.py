"""export_format=HF: a Hugging Face folder that ``AutoModelFor...from_pretrained`` loads, with tao's predictions.

Folder::

    config.json, model.safetensors     the model (id2label: the first head's labels)
    tokenizer files, vocab.txt         what AutoTokenizer.from_pretrained(folder) reads
    modeling_tao.py                    only where no stock class computes tao's network (below)
    model_config.json, label files     tao's own settings and labels, as in the archive
    manifest.json                      task, versions, files

A stock class is written where one computes exactly what tao computes: one per-token head that is
a single linear layer (token_classification with ``num_fc_layers=1``) is
``<Encoder>ForTokenClassification``, and question_answering's start/end linear layer (labels
``start``, ``end``) is ``<Encoder>ForQuestionAnswering``, both loaded with no custom code. Stock sentence classifiers do not
fit any tao head (they read BERT's pooler, a dense layer and tanh over [CLS], which tao's heads do
not have); nor do MLP heads or two heads (punctuation). Those folders carry ``modeling_tao.py``
(``nlp/hf_modeling.py``), named in config.json's ``auto_map`` and loaded with
``trust_remote_code=True``. Either way the export checks, before the folder is moved into place,
that the folder's model gives the network's outputs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import List, Tuple

import torch
from torch import nn

from tao_launcher.nlp.encoder import save_tokenizer
from tao_launcher.nlp.model import EncoderNet

CUSTOM_CODE = "modeling_tao.py"
TOLERANCE = 1e-4


def per_token(net: EncoderNet, output: str) -> bool:
    """Whether ``output`` has a value per token (``per_token_outputs``: all outputs, or those named)."""
    marks = net.per_token_outputs
    return marks is True or (isinstance(marks, (tuple, list, set, frozenset)) and output in marks)


def token_level(net: EncoderNet) -> bool:
    """The folder's Auto class follows the first output: per token (token classification) or per sentence."""
    return per_token(net, net.output_names[0])


QA_LABELS = ["start", "end"]   # a per-token head with these two outputs is a span-extraction head


def auto_class_name(net: EncoderNet) -> str:
    if token_level(net) and net.heads()[0][2] == QA_LABELS:
        return "AutoModelForQuestionAnswering"
    return "AutoModelForTokenClassification" if token_level(net) else "AutoModelForSequenceClassification"


def write_hf_folder(folder: Path, net: EncoderNet, tokenizer, task: str) -> None:
    """The folder above, checked against ``net``."""
    heads = net.heads()
    labels = heads[0][2]
    if _stock_fits(net, heads):
        model = _stock_model(net, heads, labels)
    else:
        model = _custom_model(net, heads, labels, task)
        shutil.copyfile(Path(__file__).with_name("hf_modeling.py"), folder / CUSTOM_CODE)
    model.save_pretrained(str(folder))
    umask = os.umask(0)
    os.umask(umask)
    (folder / "model.safetensors").chmod(0o666 & ~umask)  # transformers writes it 0600; the other files get 0666 - umask
    save_tokenizer(tokenizer, folder)
    (folder / "model_config.json").write_text(json.dumps(net.model_config, indent=2))
    for name, text in net.artifacts().items():
        (folder / name).write_text(text, encoding="utf-8")
    _check(folder, net, stock=not (folder / CUSTOM_CODE).exists())


def _stock_fits(net: EncoderNet, heads: List[Tuple[str, nn.Sequential, List[str]]]) -> bool:
    """One per-token head of exactly [dropout, linear]: what <Encoder>ForTokenClassification computes."""
    if len(heads) != 1 or not token_level(net):
        return False
    head = heads[0][1]
    return len(head) == 2 and isinstance(head[0], nn.Dropout) and isinstance(head[1], nn.Linear)


def _label_maps(labels: List[str]) -> dict:
    return {"id2label": dict(enumerate(labels)), "label2id": {name: i for i, name in enumerate(labels)}}


def _stock_class(net: EncoderNet):
    import transformers

    return getattr(transformers, auto_class_name(net))


def _stock_model(net: EncoderNet, heads, labels: List[str]):
    from transformers import AutoConfig

    config = AutoConfig.for_model(**{**net.encoder.config.to_dict(), **_label_maps(labels)})
    model = _stock_class(net).from_config(config)
    model.base_model.load_state_dict(net.encoder.state_dict())
    head = model.qa_outputs if labels == QA_LABELS else model.classifier
    head.load_state_dict(heads[0][1][-1].state_dict())
    return model.eval()


def _custom_model(net: EncoderNet, heads, labels: List[str], task: str):
    from tao_launcher.nlp import hf_modeling

    pooling = net.model_config.get("pooling", "cls")
    encoder = {k: v for k, v in net.encoder.config.to_dict().items()
               if not k.startswith("_") and k not in ("architectures", "transformers_version", "torch_dtype", "dtype")}
    specs = [{"name": name, "labels": names, "num_labels": len(names),
              "pooling": None if per_token(net, name) else pooling,
              "num_layers": sum(isinstance(m, nn.Linear) for m in head),
              "dropout": next(m.p for m in head if isinstance(m, nn.Dropout))} for name, head, names in heads]
    cls = getattr(hf_modeling, "TaoForTokenClassification" if token_level(net) else "TaoForSequenceClassification")
    config = hf_modeling.TaoEncoderHeadsConfig(encoder=encoder, tao_heads=specs, tao_task=task, **_label_maps(labels))
    config.auto_map = {"AutoConfig": "modeling_tao.TaoEncoderHeadsConfig",
                       ("AutoModelForTokenClassification" if token_level(net)
                        else "AutoModelForSequenceClassification"): f"modeling_tao.{cls.__name__}"}
    config.architectures = [cls.__name__]
    model = cls(config)
    model.encoder.load_state_dict(net.encoder.state_dict())
    for name, head, _ in heads:
        model.heads[name].load_state_dict(head.state_dict())
    return model.eval()


def _check(folder: Path, net: EncoderNet, stock: bool) -> None:
    """The folder, loaded as a user would (the custom classes from this package's copy of the file),
    gives the network's outputs on the export's example inputs."""
    if stock:
        cls = _stock_class(net)
    else:
        from tao_launcher.nlp import hf_modeling

        cls = getattr(hf_modeling, "TaoForTokenClassification" if token_level(net) else "TaoForSequenceClassification")
    loaded = cls.from_pretrained(str(folder)).eval()
    inputs = dict(zip(net.input_names, net.example_inputs()))
    with torch.inference_mode():
        expected = net(*inputs.values())
        out = loaded(**inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    if hasattr(out, "start_logits"):   # question answering: tao's one [..., 2] output, split in two
        got = (torch.stack([out.start_logits, out.end_logits], dim=-1),)
    else:
        got = (out.logits,) + tuple(getattr(out, "extra_logits", None) or ())
    worst = max(float((a - b).abs().max()) for a, b in zip(expected, got))
    if len(got) != len(expected) or worst > TOLERANCE:
        raise RuntimeError(f"the Hugging Face folder does not reproduce the network (largest difference {worst:g})")

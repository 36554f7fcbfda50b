"""The acoustic model of speech_to_text (features -> convolutional encoder -> CTC log-probs), and its archive.

``SpeechToTextNet`` holds the preprocessor and SpecAugment beside the encoder and decoder, as NeMo's
``EncDecCTCModel`` does, but ``forward`` starts from features: training feeds cached features
(asr/dataset.py), and the exported ONNX graph is the acoustic model alone (features and lengths in,
log-probs and their lengths out), with the preprocessor settings beside it for Riva. It rebuilds from
``model_config`` alone and describes its own export as the NLP networks do (core/onnx_export.py).

This module is the speech ``ModelFamily`` (core/model.py): ``write_payload``, ``read_model`` and
``read_processor`` lay out the payload of a speech model archive (core/model.py adds manifest.json)::

    model_config.json    sample_rate, preprocessor, spec_augment, blocks (the encoder table), activation,
                         vocabulary ("char" with labels, or "subword"), num_classes (vocabulary + blank)
    model.safetensors    all weights (no ONNX: exports carry model.onnx instead)
    tokenizer/           tokenizer.model and vocab.txt (subword vocabularies only)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple, Type

import torch
from torch import nn

from tao_launcher.asr.augment import SpecAugment
from tao_launcher.asr.blocks import total_stride
from tao_launcher.asr.encoder import ConvASRDecoder, ConvASREncoder
from tao_launcher.asr.features import MelFeatures
from tao_launcher.asr.vocabulary import TOKENIZER_DIR, TOKENIZER_MODEL, CharVocabulary, SubwordVocabulary


class SpeechToTextNet(nn.Module):
    input_names = ("audio_signal", "length")
    output_names = ("logprobs", "encoded_lengths")
    output_dtypes = {"encoded_lengths": "int64"}

    def __init__(self, model_config: Dict):
        super().__init__()
        c = self.model_config = model_config
        self.preprocessor = MelFeatures.from_config(c["preprocessor"])
        self.spec_augment = SpecAugment(**c["spec_augment"])
        self.encoder = ConvASREncoder(c["preprocessor"]["features"], c["blocks"], activation=c["activation"])
        self.decoder = ConvASRDecoder(c["blocks"][-1]["filters"], c["num_classes"] - 1)

    @classmethod
    def from_config(cls, model_config: Dict) -> "SpeechToTextNet":
        return cls(model_config)

    @property
    def blank(self) -> int:
        return self.model_config["num_classes"] - 1

    def forward(self, audio_signal: torch.Tensor, length: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features (batch, mels, frames) and their lengths -> log-probs (batch, frames / stride, classes)."""
        encoded, encoded_lengths = self.encoder(audio_signal, length)
        return self.decoder(encoded), encoded_lengths

    # --- export description (as EncoderNet's) ---------------------------------------------------
    def export_axes(self) -> Dict[str, Dict[int, str]]:
        return {"audio_signal": {0: "batch", 2: "time"}, "length": {0: "batch"},
                "logprobs": {0: "batch", 1: "time"}, "encoded_lengths": {0: "batch"}}

    def example_inputs(self) -> Tuple[torch.Tensor, ...]:
        mels = self.model_config["preprocessor"]["features"]
        return torch.randn(2, mels, 160), torch.tensor([160, 97], dtype=torch.long)

    def input_dims(self) -> Dict[str, Tuple[str, List[int]]]:
        return {"audio_signal": ("float32", [-1, self.model_config["preprocessor"]["features"], -1]),
                "length": ("int64", [-1])}

    def output_dims(self) -> Dict[str, List[int]]:
        return {"logprobs": [-1, -1, self.model_config["num_classes"]], "encoded_lengths": [-1]}

    def riva_settings(self) -> Dict[str, object]:
        """What Riva's feature extractor and CTC decoder need: the preprocessor, the vocabulary, the blank."""
        c = self.model_config
        vocabulary = ({"labels": c["labels"]} if c["vocabulary"] == "char" else
                      {"tokenizer_dir": TOKENIZER_DIR, "tokenizer_model": f"{TOKENIZER_DIR}/{TOKENIZER_MODEL}"})
        return {"sample_rate": c["sample_rate"], "preprocessor": c["preprocessor"], "decoder": "ctc_greedy",
                "blank_index": self.blank, "subsampling_factor": total_stride(c["blocks"]), **vocabulary}


def write_payload(folder: Path, net: SpeechToTextNet, vocabulary, *, weights: bool = True) -> None:
    """The files of a model (layout above); ``weights=False`` for exports, which carry model.onnx instead."""
    if weights:
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()},
                  str(folder / "model.safetensors"))
    (folder / "model_config.json").write_text(json.dumps(net.model_config, indent=2))
    if vocabulary.kind == "subword":
        vocabulary.save(folder / TOKENIZER_DIR)


def read_model(folder: Path, net_cls: Type[SpeechToTextNet], *, inference: bool = False
               ) -> Tuple[SpeechToTextNet, object, Dict]:
    """Network (eval mode), vocabulary and model config of an opened archive (the vocabulary is read into memory:
    nothing keeps a path into the decrypted folder). ``inference`` changes nothing: the network has one form."""
    from safetensors.torch import load_file

    config = json.loads((folder / "model_config.json").read_text())
    net = net_cls.from_config(config)
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    net.eval()
    return net, read_processor(folder, config), config


def read_processor(folder: Path, config: Dict):
    """The model's vocabulary: its labels, or the sentencepiece model in ``folder/tokenizer``."""
    if config["vocabulary"] == "char":
        return CharVocabulary(config["labels"])
    return SubwordVocabulary(folder / TOKENIZER_DIR / TOKENIZER_MODEL)

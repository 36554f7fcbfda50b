"""The task table: which tasks exist, their subtasks, where their code is, which image runs them.

Data, not code: the CLI, the runners and ``tao info`` all read this one table. A user file
(``~/.tao/config.json``, key ``images``; see ``images.py``) may point a task at another image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from tao_launcher import __version__

SUBTASKS = ("download_specs", "dataset_convert", "train", "finetune", "evaluate", "infer", "export", "infer_onnx")
IMAGE_REPOSITORY = "tao-launcher"
# One shared PyTorch image for every task, as TAO's "-pyt" image: torch, transformers and
# Lightning are nearly all of its size, so per-domain images would mostly duplicate them.
SHARED_IMAGE_FLAVOUR = "pyt"


@dataclass(frozen=True)
class Task:
    name: str
    domain: str                       # nlp or asr
    summary: str
    package: str                      # tao_launcher.tasks.<name>: spec.py and subtasks.py live there
    subtasks: Tuple[str, ...] = SUBTASKS
    available: bool = True            # planned tasks are listed but refuse to run
    image_flavour: str = SHARED_IMAGE_FLAVOUR

    @property
    def image(self) -> str:
        """The default image (repository:tag); ``images.image_for`` applies the user's config."""
        return f"{IMAGE_REPOSITORY}:{__version__}-{self.image_flavour}"


TASKS = {t.name: t for t in (
    Task("text_classification", "nlp", "sentence classification (sentiment, domain) on a BERT encoder",
         "tao_launcher.tasks.text_classification"),
    Task("token_classification", "nlp", "named-entity recognition (CoNLL-2003 style)",
         "tao_launcher.tasks.token_classification", available=False),
    Task("question_answering", "nlp", "extractive question answering (SQuAD v1.1/v2.0)",
         "tao_launcher.tasks.question_answering", available=False),
    Task("intent_slot_classification", "nlp", "joint intent and slot filling (ATIS, SNIPS)",
         "tao_launcher.tasks.intent_slot_classification", available=False),
    Task("punctuation_and_capitalization", "nlp", "restore punctuation and capitals in ASR output",
         "tao_launcher.tasks.punctuation_and_capitalization", available=False),
    Task("speech_to_text", "asr", "speech recognition with QuartzNet, Jasper or Citrinet",
         "tao_launcher.tasks.speech_to_text", available=False),
)}

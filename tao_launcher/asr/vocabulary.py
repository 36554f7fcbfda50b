"""The output vocabulary of a CTC model: characters (QuartzNet, Jasper) or sentencepiece subwords (Citrinet).

Both map a normalised transcript to ids and back; the CTC blank is id ``len(vocabulary)``, after them.
In an archive the vocabulary is ``model_config["labels"]`` (characters) or ``tokenizer/tokenizer.model``
plus ``tokenizer/vocab.txt`` (subwords, one piece a line, for people and Riva).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Sequence

from tao_launcher.errors import UsageError

TOKENIZER_DIR = "tokenizer"
TOKENIZER_MODEL = "tokenizer.model"


class CharVocabulary:
    """One label per character; characters outside it are left out of the targets (dataset_convert reports them)."""

    kind = "char"

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self._ids: Dict[str, int] = {c: i for i, c in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, text: str) -> List[int]:
        return [self._ids[c] for c in text if c in self._ids]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.labels[i] for i in ids).strip()

    def unknown(self, text: str) -> set:
        return {c for c in text if c not in self._ids}


class SubwordVocabulary:
    """A sentencepiece model (Citrinet's tokenizer); ``labels`` are its pieces."""

    kind = "subword"

    def __init__(self, model_file: Path):
        import sentencepiece

        self.model_bytes = Path(model_file).read_bytes()  # kept: the file may be in a temp folder about to go
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=self.model_bytes)
        self.labels = [self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())]

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, text: str) -> List[int]:
        return list(self.processor.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        return self.processor.decode([int(i) for i in ids]).strip()

    def unknown(self, text: str) -> set:
        return set()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TOKENIZER_MODEL).write_bytes(self.model_bytes)
        (folder / "vocab.txt").write_text("\n".join(self.labels) + "\n", encoding="utf-8")


def train_subwords(texts: Sequence[str], folder: Path, vocab_size: int, model_type: str) -> SubwordVocabulary:
    """Train a sentencepiece model on the training transcripts (as NeMo's process_asr_text_tokenizer.py)."""
    import sentencepiece

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "transcripts.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    try:
        sentencepiece.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=vocab_size, model_type=model_type,
            character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2)
    except RuntimeError as err:
        hint = str(err).splitlines()[-1] if str(err) else "sentencepiece failed"
        raise UsageError(f"cannot train a {vocab_size}-piece tokenizer on these transcripts ({hint}): lower "
                         f"model.tokenizer.vocab_size") from None
    finally:
        corpus.unlink(missing_ok=True)
    return SubwordVocabulary(folder / TOKENIZER_MODEL)

"""Transcripts to the model's character vocabulary, as the ASR data are written (dataset_convert).

A CTC model can only emit its labels, so a transcript must hold nothing else: lower case, numbers spelt
out in words ("21" -> "twenty one", "3.5" -> "three point five", "2nd" -> "second"), curly quotes as
the apostrophe, hyphens, underscores and slashes as spaces, accents dropped where the bare letter is in
the vocabulary, and every other character removed and counted (the caller reports them).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence, Tuple

# NeMo's QuartzNet/Jasper labels, in its order: the output index of each character
CHAR_VOCABULARY = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
             "nine": "ninth", "twelve": "twelfth"}
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:st|nd|rd|th)?\b|\d+")
_APOSTROPHES = "\u2018\u2019\u201b\u2032\u00b4`\u02bc"
_SPACES = re.compile(r"[-_/\u2010-\u2015]")


def number_words(n: int) -> str:
    """The cardinal of ``n`` >= 0 in words, without 'and': 1990 -> 'one thousand nine hundred ninety'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, name in _SCALES:
        if n >= size:
            head, rest = divmod(n, size)
            return f"{number_words(head)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError(n)  # unreachable: every n >= 100 is at least a hundred


def _spell(match: re.Match) -> str:
    token = match.group(0)
    ordinal = token[-2:].isalpha()
    digits, _, decimals = token.rstrip("stndrh").replace(",", "").partition(".")
    if len(digits) > 15:  # a code or a phone number, not a quantity: digit by digit
        words = " ".join(_ONES[int(d)] for d in digits)
    else:
        words = number_words(int(digits))
    if decimals:
        words += " point " + " ".join(_ONES[int(d)] for d in decimals)
    elif ordinal:
        head, _, last = words.rpartition(" ")
        last = _ORDINALS.get(last) or (last[:-1] + "ieth" if last.endswith("y") else last + "th")
        words = f"{head} {last}".strip()
    return f" {words} "


def normalize_transcript(text: str, vocabulary: Sequence[str] = CHAR_VOCABULARY, spell_numbers: bool = True,
                         ) -> Tuple[str, Counter]:
    """(the transcript in ``vocabulary``'s characters, Counter of the characters removed)."""
    allowed = set(vocabulary)
    text = text.lower()
    for mark in _APOSTROPHES:
        text = text.replace(mark, "'")
    if spell_numbers:
        text = _NUMBER.sub(_spell, text)
    text = _SPACES.sub(" ", text)
    removed: Counter = Counter()
    kept = []
    for char in text:
        if char in allowed or char.isspace():
            kept.append(" " if char.isspace() else char)
            continue
        bare = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        if bare and all(c in allowed for c in bare):
            kept.append(bare)  # é -> e, ﬁ -> fi
        else:
            removed[char] += 1
    return " ".join("".join(kept).split()), removed

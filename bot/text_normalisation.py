"""Normalise user text before tokenisation, without changing its length.

Applied to every message on every channel by the NLU pipeline (``bot.nlu.components.TextNormaliser``) and by
the risk engine. The output has exactly as many characters as the input, so entity offsets in training data
and in predictions stay valid. Character by character:

* full-width ASCII forms (Ａ-Ｚ, ０-９, ！ …) become half-width, and the ideographic space a space;
* traditional Chinese becomes simplified, with the OpenCC project's ``t2s`` conversion (per character where a
  phrase conversion would change the length);
* Latin letters are lower-cased (XYK → xyk);
* emoji, pictographs, variation selectors and control characters become spaces;
* a run of the same punctuation mark keeps its first mark; the repeats become spaces (！！！ → !  ).
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache

import opencc

_FULL_WIDTH_START, _FULL_WIDTH_END, _FULL_WIDTH_OFFSET = 0xFF01, 0xFF5E, 0xFEE0


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _half_width(char: str) -> str:
    code = ord(char)
    if _FULL_WIDTH_START <= code <= _FULL_WIDTH_END:
        return chr(code - _FULL_WIDTH_OFFSET)
    if code == 0x3000:
        return " "
    return char


def _is_pictograph(char: str) -> bool:
    code = ord(char)
    category = unicodedata.category(char)
    return (
        category == "So"
        or 0x1F000 <= code <= 0x1FAFF
        or 0x2600 <= code <= 0x27BF
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or code == 0x200D  # zero-width joiner inside emoji sequences
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or category == "Cs"
    )


def _is_noise(char: str) -> bool:
    category = unicodedata.category(char)
    return category in ("Cc", "Cf", "Co", "Cn") and char not in "\n\t"


def to_simplified(text: str) -> str:
    """``text`` in simplified Chinese, same length: OpenCC t2s on the whole text, else character by character."""
    converted = _t2s().convert(text)
    if len(converted) == len(text):
        return converted
    return "".join(c if len(c) == 1 else o for o, c in ((o, _t2s().convert(o)) for o in text))


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P") or char in "~^`|"


def normalise_text(text: str) -> str:
    """The normalised form of ``text`` (see the module docstring). Same length as ``text``; never raises."""
    if not text:
        return ""
    chars = []
    for char in to_simplified(text):
        char = _half_width(char)
        if _is_pictograph(char) or _is_noise(char):
            char = " "
        chars.append(char.lower() if char.isascii() else char)
    for index in range(len(chars) - 1, 0, -1):
        if _is_punctuation(chars[index]) and chars[index] == chars[index - 1]:
            chars[index] = " "
    return "".join(chars)


def compact(text: str) -> str:
    """``normalise_text`` without any whitespace: the form the risk lexicon is matched against."""
    return "".join(normalise_text(text).split())

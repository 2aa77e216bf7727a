"""The two third-party lexicons the ensemble reads, made fast without changing a score: VADER
(:class:`_Vader`, its ``polarity_scores`` minus work it does in vain) and TextBlob's English lexicon
(:func:`textblob_lexicon`, loaded once up front). Split from :mod:`processors.sentiment`, which
imports both from here; both are tested there against the libraries' own results.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    C_INCR,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
    SentiText,
)

from processors.textblob_lean import PUNCTUATION, textblob

_VADER_VERSION = importlib.metadata.version("vaderSentiment")


@dataclass(slots=True)
class _Window:
    """What ``sentiment_valence`` reads of a ``SentiText``: its words (here: a window) and caps flag."""

    is_cap_diff: bool
    words_and_emoticons: list[str] = field(default_factory=list)


#: Words that make one of ``sentiment_valence``'s rules look at the words around a lexicon word
#: when they stand in the three words before it: VADER's negations (and any word with "n't"),
#: its single-word boosters and dampeners, "no" (also as the lexicon word itself), "least", and
#: the words its "never so/this" and "without doubt" rules compare.
_RULE_WORDS = frozenset(NEGATE) | {w for w in BOOSTER_DICT if " " not in w} | {
    "no", "least", "never", "so", "this", "without", "doubt"}
#: Adjacent word pairs of VADER's multi-word idioms (``SPECIAL_CASES``) and boosters ("kind of"):
#: its idiom rule can only match where such a pair stands in the window of words it reads.
_RULE_PAIRS = frozenset(pair for key in (*SPECIAL_CASES, *BOOSTER_DICT)
                        for pair in zip(key.split(), key.split()[1:], strict=False))
_PAIR_FIRST = frozenset(first for first, _ in _RULE_PAIRS)
_F_RULE, _F_PAIR, _F_BUT, _F_LEXICON, _F_UPPER = 1, 2, 4, 8, 16  # flags of a token (see _Vader._token)
_TOKEN_CACHE_MAX = 20_000  # distinct whitespace tokens remembered (bounded: emptied when full)


class _Vader(SentimentIntensityAnalyzer):  # type: ignore[misc]
    """VADER with exactly its own scores, minus work its ``polarity_scores`` (3.3.2) does in vain.

    * It first rebuilds the text character by character to replace emojis with their
      descriptions; every emoji in its lexicon is non-ASCII, so ASCII text (nearly all feedback)
      comes out unchanged and skips that pass. Text that is not ASCII takes VADER's own path.
    * ``SentiText`` strips the punctuation around each whitespace-separated token
      (``_strip_punc_if_word``) and lower-cases it again for every lookup; here each distinct
      token's stripped form, lower case, lexicon valence (``None`` for a booster or a word outside
      the lexicon), ``isupper()`` and rule flags are computed once, by VADER's own functions, and
      kept in a bounded per-token table (a pure function of the token and the lexicons; no text
      or sentence is cached). ``is_cap_diff`` is ``allcap_differential`` from those flags.
    * It calls ``sentiment_valence`` for every word, which only appends 0 for a word outside the
      lexicon; such words get their 0 here without the call, and a sentence without any lexicon
      word gets what ``score_valence`` gives for all-zero valences (computed by it, once).
      ``_but_check`` runs only when there is a "but" (without one it changes nothing).
    * For a lexicon word, ``sentiment_valence`` is called only when one of its rules can fire:
      a word of :data:`_RULE_WORDS` among the three words before it, the word itself is "no", or
      a pair of :data:`_RULE_PAIRS` within the words it reads (``i-3 .. i+2``). Otherwise every
      rule leaves the valence as it is and the result is the lexicon valence with VADER's
      capitals emphasis (``C_INCR`` when the word is in capitals and others are not), as the
      function itself computes it.
    * ``sentiment_valence``'s rules read words ``i-3 .. i+2`` only, but several of them
      lower-case the whole sentence on every call: they are handed just that window of words
      (same scores; long sentences are much faster).

    The lexicons and the rules themselves (``sentiment_valence``, ``_but_check``,
    ``score_valence``) are VADER's code. The shortcuts are used only with the release they were
    checked against (``tests/unit/test_sentiment.py`` compares both on rule-heavy sentences);
    any other version runs VADER's ``polarity_scores`` unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self._fast = _VADER_VERSION == "3.3.2" and not any(e.isascii() for e in self.emojis)
        # score_valence of valences that are all 0 does not depend on the text or their number
        self._all_zero = self.score_valence([0], "")
        self._no_words = self.score_valence([], "")
        self._tokens: dict[str, tuple[str, str, float | None, bool, int]] = {}

    def _token(self, token: str) -> tuple[str, str, float | None, bool, int]:
        """(word, lower case, lexicon valence or None, isupper, flags) of one whitespace token."""
        word = SentiText._strip_punc_if_word(token)
        lower = word.lower()
        valence = None if lower in BOOSTER_DICT else self.lexicon.get(lower)
        upper = word.isupper()
        flags = ((_F_RULE if lower in _RULE_WORDS or "n't" in lower else 0)
                 | (_F_PAIR if lower in _PAIR_FIRST else 0) | (_F_BUT if lower == "but" else 0)
                 | (_F_LEXICON if valence is not None else 0) | (_F_UPPER if upper else 0))
        entry = (word, lower, valence, upper, flags)
        if len(self._tokens) >= _TOKEN_CACHE_MAX:
            self._tokens.clear()
        self._tokens[token] = entry
        return entry

    @staticmethod
    def _rules_may_fire(entries: list[tuple[str, str, float | None, bool, int]], i: int) -> bool:
        """False when none of ``sentiment_valence``'s rules can change the valence of word ``i``."""
        if entries[i][1] == "no":
            return True
        start = i - 3 if i > 3 else 0
        for j in range(start, i):
            if entries[j][4] & _F_RULE:
                return True
        last = len(entries) - 1
        for j in range(start, i + 2 if i + 2 < last else last):  # pairs (j, j + 1) within i-3 .. i+2
            if entries[j][4] & _F_PAIR and (entries[j][1], entries[j + 1][1]) in _RULE_PAIRS:
                return True
        return False

    def polarity_scores(self, text: str) -> dict[str, float]:
        if not self._fast or not text.isascii():
            return super().polarity_scores(text)  # type: ignore[no-any-return]
        text = text.strip()  # what SentiText holds (and score_valence reads)
        get = self._tokens.get
        entries = []
        flags = 0
        for token in text.split():  # SentiText's words_and_emoticons, by way of the token table
            entry = get(token)
            if entry is None:
                entry = self._token(token)
            entries.append(entry)
            flags |= entry[4]
        if not flags & _F_LEXICON:  # no lexicon word: VADER's own result for all-zero valences (or for no words)
            return dict(self._all_zero if entries else self._no_words)
        n = len(entries)
        # allcap_differential: some but not all words in capitals
        is_cap_diff = 0 < sum([e[3] for e in entries]) < n if flags & _F_UPPER else False
        sentiments: list[float] = [0] * n  # what VADER appends for a word outside the lexicon or a booster
        rules = flags & (_F_RULE | _F_PAIR)
        words: list[str] | None = None
        window: _Window | None = None
        for i in [i for i, e in enumerate(entries) if e[2] is not None]:
            word, lower, valence, upper, _ = entries[i]
            assert valence is not None  # (a lexicon word)
            if lower == "kind" and i < n - 1 and entries[i + 1][1] == "of":
                continue  # VADER gives "kind" of "kind of" 0 too
            if rules and self._rules_may_fire(entries, i):
                if words is None:
                    words = [e[0] for e in entries]
                    window = _Window(is_cap_diff)
                assert window is not None
                start = i - 3 if i > 3 else 0  # the rules read words i-3 .. i+2 only: hand them just those
                window.words_and_emoticons = words[start:i + 3]
                # sentiment_valence appends word i's valence to the list it is given (and reads nothing of it)
                sentiments[i] = self.sentiment_valence(0, window, word, i - start, [])[0]
            else:  # sentiment_valence with no rule firing: the valence and the capitals emphasis
                if upper and is_cap_diff:
                    valence = valence + C_INCR if valence > 0 else valence - C_INCR
                sentiments[i] = valence
        if flags & _F_BUT:  # _but_check changes nothing in a sentence without "but"
            sentiments = self._but_check(words or [e[0] for e in entries], sentiments)
        return self.score_valence(sentiments, text)  # type: ignore[no-any-return]


@cache
def _vader() -> SentimentIntensityAnalyzer:
    return _Vader()


class _TextBlobLexicon(textblob.en.Sentiment):  # type: ignore[misc]
    """TextBlob's English sentiment lexicon and its rules (``assessments``: modifiers, negation,
    "!"), loaded once up front, so lookups are plain dict lookups instead of lazydict's per-call
    loading check (which costs more than the rules themselves)."""

    __contains__ = dict.__contains__
    __getitem__ = dict.__getitem__

    def may_assess(self, words: Sequence[str]) -> bool:
        """False when ``assessments`` of these (untagged) words is sure to be empty: none is in the
        lexicon, and none passes its test for a possible emoticon or "(!)" (its only other source)."""
        for w in words:  # noqa: SIM110 (a loop: faster than any() over a generator, on a hot path)
            if w in self or (w.isalpha() is False and len(w) <= 5 and w not in PUNCTUATION):
                return True
        return False


@cache
def textblob_lexicon() -> _TextBlobLexicon:
    """The lexicon configured exactly as ``textblob.en.sentiment`` (what ``TextBlob.sentiment`` uses)."""
    lex = _TextBlobLexicon(path=os.path.join(textblob.en.MODULE, "en-sentiment.xml"), synset="wordnet_id",
                           negations=("no", "not", "n't", "never"), modifiers=("RB",),
                           modifier=lambda w: w.endswith("ly"), language="en")
    lex.load()
    return lex

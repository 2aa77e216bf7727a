"""Sentiment analyzers: ``ensemble`` (the default), ``textblob`` and ``vader``, chosen by FEEDBACK_SENTIMENT.

The ensemble combines, per sentence, TextBlob's lexicon (polarity, subjectivity), VADER's lexicon
and rules (negation, boosters, "but", capitals, punctuation), a customer-service phrase lexicon
(:mod:`processors.lexicon`) and word/bigram weights, in one multinomial logistic model whose weights
and neutral band were tuned on the tune split of the evaluation data (``docs/evaluation.md``,
``make eval``). Sentences are combined with contrast weights: when a sentence opens with "but",
"however", ... what comes before it counts half and what follows counts one and a half.

Guarantees: every analyzer scores the whole text and each sentence with the same code the
evaluation runs; scores are in [-1, 1]; labels come from the analyzer's neutral band.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import repeat
from pathlib import Path
from typing import Any

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    C_INCR,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
    SentiText,
)

from pipeline.errors import ConfigError
from pipeline.schema import Sentiment, SentimentLabel
from processors import lexicon
from processors.sentences import split_sentences, tokens
from processors.textblob_lean import PUNCTUATION, TextBlob, textblob

ANALYZERS = ("ensemble", "textblob", "vader")
CLASSES = ("negative", "neutral", "positive")
DENSE_FEATURES = ("tb_polarity", "tb_subjectivity", "vader_compound", "vader_pos", "vader_neg",
                  "cs_pos", "cs_neg")
VADER_BAND = 0.05  # VADER's documented thresholds: compound >= 0.05 positive, <= -0.05 negative
#: Bands tried when a baseline's band is tuned for comparison (make eval).
BANDS_FOR_BASELINES = tuple(round(0.025 * i, 3) for i in range(25))
_CONTRAST = re.compile(r"^\W*(but|however|though|although|yet|nevertheless|nonetheless|still,)\b", re.I)
_VADER_ALPHA = 15.0  # VADER's normalisation constant: compound = x / sqrt(x^2 + alpha)


def label_for(polarity: float, neutral_band: float) -> SentimentLabel:
    """``|polarity| <= neutral_band`` is neutral; otherwise the sign decides."""
    if polarity > neutral_band:
        return "positive"
    if polarity < -neutral_band:
        return "negative"
    return "neutral"


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


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


@dataclass(slots=True)
class SentenceSignals:
    """Everything the ensemble reads from one sentence."""

    tokens: list[str]
    tb: list[tuple[float, float]]  # TextBlob lexicon assessments: (polarity, subjectivity)
    compound: float
    pos: float
    neg: float
    cs_pos: float
    cs_neg: float
    weight: float = 1.0


def sentence_signals(sentence: str) -> SentenceSignals:
    toks = tokens(sentence)
    lex = textblob_lexicon()
    assessed = lex.assessments(zip(toks, repeat(None)), negation=True) if lex.may_assess(toks) else []
    v = _vader().polarity_scores(sentence)
    cs_pos, cs_neg = lexicon.score(toks)
    return SentenceSignals(toks, [(a[1], a[2]) for a in assessed], v["compound"], v["pos"], v["neg"],
                           cs_pos, cs_neg)


def sentence_dense_features(s: SentenceSignals) -> list[float]:
    """``dense_features([s])`` of one sentence of weight 1 (how each sentence is scored alone):
    the same operations in the same order, without the loop over sentences and the weights
    (``1.0 * x`` is ``x`` exactly; ``0.0 + x`` is kept, it turns ``-0.0`` into ``0.0`` as there)."""
    if s.weight != 1.0:
        return dense_features([s])
    tb_w = tb_p = tb_s = 0.0
    for p, subj in s.tb:
        tb_w += 1.0
        tb_p += p
        tb_s += subj
    c = s.compound
    c = -0.9999 if c < -0.9999 else c if c < 0.9999 else 0.9999  # _clip(c, -0.9999, 0.9999), inlined
    raw = 0.0 + c * math.sqrt(_VADER_ALPHA / (1 - c * c))
    n = 1.0 * max(1, len(s.tokens))
    return [tb_p / tb_w if tb_w else 0.0, tb_s / tb_w if tb_w else 0.0, raw / math.sqrt(raw * raw + _VADER_ALPHA),
            (0.0 + n * s.pos) / n, (0.0 + n * s.neg) / n, 0.0 + s.cs_pos, 0.0 + s.cs_neg]


def contrast_weights(sentences: Sequence[str]) -> list[float]:
    """1.0 each, unless a later sentence opens with a contrast: before it 0.5, from it on 1.5."""
    last = max((i for i, s in enumerate(sentences) if i > 0 and _CONTRAST.match(s)), default=0)
    if not last:
        return [1.0] * len(sentences)
    return [0.5 if i < last else 1.5 for i in range(len(sentences))]


def dense_features(sigs: Sequence[SentenceSignals]) -> list[float]:
    """The dense features of one or more sentences (weighted by their contrast weights)."""
    tb_w = tb_p = tb_s = raw = tok_w = pos = neg = cs_pos = cs_neg = 0.0
    for s in sigs:
        for p, subj in s.tb:
            tb_w += s.weight
            tb_p += s.weight * p
            tb_s += s.weight * subj
        c = _clip(s.compound, -0.9999, 0.9999)
        raw += s.weight * c * math.sqrt(_VADER_ALPHA / (1 - c * c))
        n = s.weight * max(1, len(s.tokens))
        tok_w += n
        pos += n * s.pos
        neg += n * s.neg
        cs_pos += s.weight * s.cs_pos
        cs_neg += s.weight * s.cs_neg
    compound = raw / math.sqrt(raw * raw + _VADER_ALPHA)
    return [tb_p / tb_w if tb_w else 0.0, tb_s / tb_w if tb_w else 0.0, compound,
            pos / tok_w if tok_w else 0.0, neg / tok_w if tok_w else 0.0, cs_pos, cs_neg]


def bag_of_terms(sigs: Sequence[SentenceSignals]) -> dict[str, float]:
    """Unigrams and bigrams (``"not good"``) of the sentences, counted with their contrast weights."""
    bag: dict[str, float] = {}
    for s in sigs:
        toks = s.tokens
        for i, t in enumerate(toks):
            bag[t] = bag.get(t, 0.0) + s.weight
            if i:
                b = f"{toks[i - 1]} {t}"
                bag[b] = bag.get(b, 0.0) + s.weight
    return bag


@dataclass
class EnsembleModel:
    """Weights of the ensemble: a three-class logistic model over dense features and terms."""

    intercept: list[float]
    dense: list[list[float]]  # per class, per DENSE_FEATURES
    terms: dict[str, list[float]]  # term -> per-class weight
    band: float
    cs_prior: float = 0.0  # extra weight of the customer-service lexicon (a domain prior, not tuned)
    meta: dict[str, Any] = field(default_factory=dict)
    #: Per word: its own weights and the weights of the bigrams it starts, by second word
    #: (``"not": ([...], {"good": [...], ...})``), so :meth:`term_margins` looks each token up once.
    _by_word: dict[str, tuple[list[float] | None, dict[str, list[float]] | None]] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        followers: dict[str, dict[str, list[float]]] = {}
        for term, weights in self.terms.items():
            first, sep, second = term.partition(" ")
            if sep:
                followers.setdefault(first, {})[second] = weights
        self._by_word = {w: (self.terms.get(w), followers.get(w))
                         for w in {t for t in self.terms if " " not in t} | followers.keys()}

    @classmethod
    def load(cls, path: Path | None = None) -> EnsembleModel:
        try:
            if path is None:
                text = resources.files(__package__).joinpath("sentiment_model.json").read_text()
            else:
                text = Path(path).read_text()
            data = json.loads(text)
            return cls(data["intercept"], data["dense"], data["terms"], float(data["band"]),
                       float(data.get("cs_prior", 0.0)), data.get("meta", {}))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"sentiment model {path or 'shipped'}: {exc}") from exc

    def save(self, path: Path) -> None:
        data = {"intercept": self.intercept, "dense": self.dense, "band": self.band,
                "cs_prior": self.cs_prior, "meta": self.meta, "terms": self.terms}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":"), sort_keys=False) + "\n")
        tmp.replace(path)  # atomic: a running processor never reads half a file

    def term_margins(self, toks: Sequence[str]) -> list[float]:
        """The three classes' margins from the unigrams and bigrams of one sentence's tokens."""
        m0 = m1 = m2 = 0.0
        get = self._by_word.get
        after = None  # the bigrams that start with the previous token
        for t in toks:
            entry = get(t)
            if entry is not None:
                tw = entry[0]
                if tw is not None:
                    m0 += tw[0]
                    m1 += tw[1]
                    m2 += tw[2]
            if after is not None:
                tw = after.get(t)  # the weights of f"{previous} {t}"
                if tw is not None:
                    m0 += tw[0]
                    m1 += tw[1]
                    m2 += tw[2]
            after = entry[1] if entry is not None else None
        return [m0, m1, m2]

    def probabilities(self, dense: Sequence[float], bag: dict[str, float]) -> list[float]:
        """P(negative), P(neutral), P(positive) of a bag of terms (as in training)."""
        m = [0.0, 0.0, 0.0]
        get = self.terms.get
        for t, n in bag.items():
            tw = get(t)
            if tw is not None:
                m[0] += n * tw[0]
                m[1] += n * tw[1]
                m[2] += n * tw[2]
        return self.softmax(dense, m)

    def softmax(self, dense: Sequence[float], term_margins: Sequence[float]) -> list[float]:
        """P(negative), P(neutral), P(positive): softmax of intercept + dense + term margins."""
        m0 = self.intercept[0] + term_margins[0] + self.cs_prior * dense[6]
        m1 = self.intercept[1] + term_margins[1]
        m2 = self.intercept[2] + term_margins[2] + self.cs_prior * dense[5]
        w0, w1, w2 = self.dense
        # + w[j] * x for each non-zero feature, j = 0 .. 6 in order (a loop, unrolled: it runs per sentence)
        x0, x1, x2, x3, x4, x5, x6 = dense
        if x0:
            m0, m1, m2 = m0 + w0[0] * x0, m1 + w1[0] * x0, m2 + w2[0] * x0
        if x1:
            m0, m1, m2 = m0 + w0[1] * x1, m1 + w1[1] * x1, m2 + w2[1] * x1
        if x2:
            m0, m1, m2 = m0 + w0[2] * x2, m1 + w1[2] * x2, m2 + w2[2] * x2
        if x3:
            m0, m1, m2 = m0 + w0[3] * x3, m1 + w1[3] * x3, m2 + w2[3] * x3
        if x4:
            m0, m1, m2 = m0 + w0[4] * x4, m1 + w1[4] * x4, m2 + w2[4] * x4
        if x5:
            m0, m1, m2 = m0 + w0[5] * x5, m1 + w1[5] * x5, m2 + w2[5] * x5
        if x6:
            m0, m1, m2 = m0 + w0[6] * x6, m1 + w1[6] * x6, m2 + w2[6] * x6
        top = m1 if m1 > m0 else m0  # max(m0, m1, m2), inlined: the first of the largest
        if m2 > top:
            top = m2
        e0, e1, e2 = math.exp(m0 - top), math.exp(m1 - top), math.exp(m2 - top)
        total = e0 + e1 + e2
        return [e0 / total, e1 / total, e2 / total]


#: A sentiment as a plain dict with the fields of :class:`~pipeline.schema.Sentiment` (the enricher
#: validates everything once, in the final record, which is much cheaper than an object per sentence),
#: plus, from analyzers with class probabilities, ``_p``: (P(negative), P(neutral), P(positive)).
Scores = dict[str, Any]


@cache
def shipped_model() -> EnsembleModel:
    """The ensemble weights shipped with the package (``processors/sentiment_model.json``), loaded once."""
    return EnsembleModel.load()


class Analyzer:
    """Base of the analyzers: :meth:`scores` gives plain dicts, :meth:`analyze` validated objects."""

    name = "analyzer"

    def scores(self, text: str, sentences: Sequence[str]) -> tuple[Scores, list[Scores]]:
        """The sentiment of the whole text and of each of its sentences."""
        raise NotImplementedError

    def analyze(self, text: str, sentences: Sequence[str]) -> tuple[Sentiment, list[Sentiment]]:
        overall, per = self.scores(text, sentences)
        return _validated(overall), [_validated(p) for p in per]


def _validated(scores: Scores) -> Sentiment:
    """A Sentiment of a scores dict, without its internal keys (``_p``: the class probabilities)."""
    return Sentiment(**{k: v for k, v in scores.items() if not k.startswith("_")})


class EnsembleAnalyzer(Analyzer):
    """The default analyzer (see the module docstring); one pass of signals per sentence.

    The text's margins are the contrast-weighted sum of its sentences' term margins plus its dense
    features, which equals scoring the weighted bag of all its terms (how the model was fitted).
    """

    name = "ensemble"

    def __init__(self, model: EnsembleModel | None = None, band: float | None = None) -> None:
        self.model = model or shipped_model()
        self.band = self.model.band if band is None else band

    def _result(self, dense: list[float], term_margins: Sequence[float]) -> Scores:
        pn, pu, pp = self.model.softmax(dense, term_margins)
        score = pp - pn
        score = 1.0 if score > 1.0 else -1.0 if score < -1.0 else score  # _clip, inlined (hot path)
        if score > self.band:
            label, conf = "positive", pp
        elif score < -self.band:
            label, conf = "negative", pn
        else:
            label, conf = "neutral", pu
        polarity, subjectivity = dense[0], dense[1]
        return {"polarity": round(1.0 if polarity > 1.0 else -1.0 if polarity < -1.0 else polarity, 4),
                "subjectivity": round(1.0 if subjectivity > 1.0 else 0.0 if subjectivity < 0.0 else subjectivity, 4),
                "label": label, "analyzer": self.name, "score": round(score, 4),
                "confidence": round(1.0 if conf > 1.0 else 0.0 if conf < 0.0 else conf, 4), "_p": (pn, pu, pp)}

    def scores(self, text: str, sentences: Sequence[str]) -> tuple[Scores, list[Scores]]:
        term_margins, result = self.model.term_margins, self._result
        sigs = []
        margins = []
        per = []
        for sentence in sentences:
            sig = sentence_signals(sentence)
            m = term_margins(sig.tokens)
            sigs.append(sig)
            margins.append(m)
            per.append(result(sentence_dense_features(sig), m))
        if len(sigs) == 1:
            return per[0], per
        total = [0.0, 0.0, 0.0]
        for s, m, w in zip(sigs, margins, contrast_weights(sentences), strict=True):
            s.weight = w
            total[0] += w * m[0]
            total[1] += w * m[1]
            total[2] += w * m[2]
        return self._result(dense_features(sigs), total), per


class TextBlobAnalyzer(Analyzer):
    """TextBlob alone (``TextBlob(text).sentiment``), labelled with a neutral band on its polarity."""

    name = "textblob"

    def __init__(self, band: float = 0.1) -> None:
        self.band = band

    def _one(self, text: str) -> Scores:
        polarity, subjectivity = TextBlob(text).sentiment
        polarity = _clip(float(polarity))
        return {"polarity": round(polarity, 4), "subjectivity": round(_clip(float(subjectivity), 0.0), 4),
                "label": label_for(polarity, self.band), "analyzer": self.name, "score": round(polarity, 4)}

    def scores(self, text: str, sentences: Sequence[str]) -> tuple[Scores, list[Scores]]:
        per = [self._one(s) for s in sentences]
        return (per[0] if len(per) == 1 and sentences[0] == text else self._one(text)), per


class VaderAnalyzer(Analyzer):
    """VADER alone (``polarity_scores``), labelled with its documented +-0.05 compound thresholds."""

    name = "vader"

    def __init__(self, band: float = VADER_BAND) -> None:
        self.band = band

    def _one(self, text: str) -> Scores:
        v = _vader().polarity_scores(text)
        c = _clip(v["compound"])
        label: SentimentLabel = "positive" if c >= self.band else "negative" if c <= -self.band else "neutral"
        return {"polarity": round(c, 4), "subjectivity": round(_clip(v["pos"] + v["neg"], 0.0), 4),
                "label": label, "analyzer": self.name, "score": round(c, 4)}

    def scores(self, text: str, sentences: Sequence[str]) -> tuple[Scores, list[Scores]]:
        per = [self._one(s) for s in sentences]
        return (per[0] if len(per) == 1 and sentences[0] == text else self._one(text)), per


def get_analyzer(name: str = "ensemble", neutral_band: float | None = None) -> Analyzer:
    """The analyzer called ``name``; ``neutral_band`` overrides its calibrated band."""
    if name == "ensemble":
        return EnsembleAnalyzer(band=neutral_band)
    if name == "textblob":
        return TextBlobAnalyzer(0.1 if neutral_band is None else neutral_band)
    if name == "vader":
        return VaderAnalyzer(VADER_BAND if neutral_band is None else neutral_band)
    raise ConfigError(f"FEEDBACK_SENTIMENT: unknown analyzer {name!r} (known: {', '.join(ANALYZERS)})")


def analyze(text: str, neutral_band: float = 0.1, analyzer: str = "textblob") -> Sentiment:
    """The sentiment of ``text`` alone (compatibility helper; the processor uses :class:`Analyzer`)."""
    return get_analyzer(analyzer, neutral_band).analyze(text, split_sentences(text) or [text])[0]


def not_assessed(analyzer: str) -> Scores:
    """The sentiment of a text that was deliberately not scored (unsupported language)."""
    return {"polarity": 0.0, "subjectivity": 0.0, "label": "not_assessed", "analyzer": analyzer,
            "score": None, "confidence": None}

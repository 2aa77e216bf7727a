"""Sentiment analyzers: ``ensemble`` (the default), ``textblob`` and ``vader``, chosen by FEEDBACK_SENTIMENT.

The ensemble combines, per sentence, TextBlob's lexicon (polarity, subjectivity), VADER's lexicon
and rules (negation, boosters, "but", capitals, punctuation), a customer-service phrase lexicon
(:mod:`processors.lexicon`) and word/bigram weights, in one multinomial logistic model whose weights
and neutral band were tuned on the tune split of the evaluation data (``docs/evaluation.md``,
``make eval``). Sentences are combined with contrast weights: when a sentence opens with "but",
"however", ... what comes before it counts half and what follows counts one and a half.

Guarantees: every analyzer scores the whole text and each sentence with the same code the
evaluation runs; scores are in [-1, 1]; labels come from the analyzer's neutral band. The fast
VADER and TextBlob lexicon lookups live in :mod:`processors.sentiment_lexicons`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import repeat
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.schema import Sentiment, SentimentLabel
from processors import lexicon
from processors.linear_text import round4
from processors.sentences import split_sentences, tokens
from processors.sentiment_lexicons import _Vader, _vader, textblob_lexicon  # noqa: F401 (_Vader: re-exported)
from processors.textblob_lean import TextBlob

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
        return {"polarity": round4(1.0 if polarity > 1.0 else -1.0 if polarity < -1.0 else polarity),
                "subjectivity": round4(1.0 if subjectivity > 1.0 else 0.0 if subjectivity < 0.0 else subjectivity),
                "label": label, "analyzer": self.name, "score": round4(score),
                "confidence": round4(1.0 if conf > 1.0 else 0.0 if conf < 0.0 else conf), "_p": (pn, pu, pp)}

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

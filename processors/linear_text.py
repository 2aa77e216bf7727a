"""A linear text classifier that learns any language: word unigrams and bigrams plus the character
n-grams of each word, IDF-weighted counts scaled by 1/sqrt(number of features of the text), and a
logistic model per class fitted by stochastic gradient descent (scikit-learn ``SGDClassifier``,
log loss; one-vs-rest probabilities, normalised, as its ``predict_proba``).

The scaling (instead of TF-IDF's L2 norm) keeps the score a sum over the text's words: each distinct
word's contribution (its own weight plus those of its character n-grams) is computed once per model
and remembered, so scoring a text costs a few dict lookups per word, not per character n-gram.

Guarantees: :func:`features` is the one feature extractor, used while fitting and while scoring, so
the fitted model and the stream processor see the same features; the probabilities equal
scikit-learn's ``predict_proba`` on the same features (up to float rounding, tested); scoring needs
no scikit-learn and no network, only the weights in the model file (plain lists, joblib); a file
whose SHA-256 differs from the one its card records, or that is not such a model, is refused with
:class:`~pipeline.errors.ConfigError`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

FORMAT = "feedback-linear-text-model/1"
CHAR_SIZES = (3, 4, 5)
_WORD = re.compile(r"\w+|[!?]|:\)|:\(", re.UNICODE)
_TOKEN_CACHE_MAX = 50_000  # distinct tokens whose character n-grams are remembered (emptied when full)
_grams: dict[str, list[str]] = {}


def _char_grams(token: str) -> list[str]:
    got = _grams.get(token)
    if got is None:
        padded = f" {token} "
        got = [padded[i:i + n] for n in CHAR_SIZES for i in range(len(padded) - n + 1)] if len(token) > 1 else []
        if len(_grams) >= _TOKEN_CACHE_MAX:
            _grams.clear()
        _grams[token] = got
    return got


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def features(text: str) -> list[str]:
    """Lower-cased words, adjacent word pairs (``"not good"``) and the 3-5 character n-grams of each
    word padded with blanks (``" go"``, ``"ood "``): a word holds no blank, a pair one blank inside,
    an n-gram a leading or trailing blank."""
    words = words_of(text)
    out = list(words)
    out.extend(f"{a} {b}" for a, b in pairwise(words))
    for w in words:
        out.extend(_char_grams(w))
    return out


@dataclass
class LinearTextModel:
    """Fitted weights: ``terms[term]`` = per class, idf x coefficient; probabilities one-vs-rest,
    normalised (a binary model keeps one row: P(class 1) = sigmoid, P(class 0) = 1 - that)."""

    classes: list[str]
    intercept: list[float]
    terms: dict[str, tuple[float, ...]]  # term -> (w_row0 * idf, w_row1 * idf, ...)
    meta: dict[str, Any] = field(default_factory=dict)
    _words: dict[str, tuple[int, tuple[float, ...]]] = field(default_factory=dict, init=False, repr=False,
                                                             compare=False)

    def _word(self, word: str) -> tuple[int, tuple[float, ...]]:
        """(features of the word, the sum of their weights): the word itself and its n-grams."""
        got = self._words.get(word)
        if got is None:
            grams = _char_grams(word)
            rows = len(self.intercept)
            acc = [0.0] * rows
            for f in (word, *grams):
                w = self.terms.get(f)
                if w is not None:
                    for r in range(rows):
                        acc[r] += w[r]
            got = (1 + len(grams), tuple(acc))
            if len(self._words) >= _TOKEN_CACHE_MAX:
                self._words.clear()
            self._words[word] = got
        return got

    def margins(self, text: str) -> list[float]:
        """The rows' decision values: intercept + coef . (idf x counts) / sqrt(number of features)."""
        words = words_of(text)
        rows = len(self.intercept)
        if rows == 3:
            return self._margins3(words)
        acc = [0.0] * rows
        n = max(0, len(words) - 1)  # the pairs
        get = self.terms.get
        previous = None
        for w in words:
            k, contrib = self._word(w)
            n += k
            for r in range(rows):
                acc[r] += contrib[r]
            if previous is not None:
                pw = get(f"{previous} {w}")
                if pw is not None:
                    for r in range(rows):
                        acc[r] += pw[r]
            previous = w
        scale = 1.0 / math.sqrt(n) if n else 0.0
        return [self.intercept[r] + scale * acc[r] for r in range(rows)]

    def _margins3(self, words: list[str]) -> list[float]:
        """:meth:`margins` of a three-row model, the loops unrolled (it runs per sentence)."""
        a0, a1, a2, n = self._sums3(words)
        scale = 1.0 / math.sqrt(n) if n else 0.0
        b = self.intercept
        return [b[0] + scale * a0, b[1] + scale * a1, b[2] + scale * a2]

    def _sums3(self, words: list[str]) -> tuple[float, float, float, int]:
        """The three rows' sums of weights over ``words`` and their number of features (before scaling)."""
        a0 = a1 = a2 = 0.0
        n = len(words) - 1 if words else 0
        get = self.terms.get
        cached = self._words.get
        previous = None
        for w in words:
            entry = cached(w)
            if entry is None:
                entry = self._word(w)
            n += entry[0]
            c = entry[1]
            a0 += c[0]
            a1 += c[1]
            a2 += c[2]
            if previous is not None:
                pw = get(previous + " " + w)
                if pw is not None:
                    a0 += pw[0]
                    a1 += pw[1]
                    a2 += pw[2]
            previous = w
        return a0, a1, a2, n

    def probabilities_with_parts(self, text: str, parts: Sequence[str]) -> tuple[list[float], list[list[float]]]:
        """(:meth:`probabilities` of ``text``, those of each of ``parts``), in one pass over the words when
        ``parts`` are the text's sentences: a text's sums are its sentences' sums plus the word pairs
        across their boundaries, and its feature count theirs plus one pair per boundary. The same
        numbers as calling :meth:`probabilities` on each (up to float summation order, tested);
        computed separately when the parts' words are not exactly the text's."""
        if len(self.intercept) != 3:
            return self.probabilities(text), [self.probabilities(p) for p in parts]
        split = [words_of(p) for p in parts]
        # A word never holds a blank, so the parts joined by blanks have the parts' words in order; any
        # other text is tokenised and compared.
        if text != " ".join(parts) and [w for ws in split for w in ws] != words_of(text):
            return self.probabilities(text), [self.probabilities(p) for p in parts]
        b = self.intercept
        get = self.terms.get
        t0 = t1 = t2 = 0.0
        tn = 0
        last = None
        per = []
        for ws in split:
            a0, a1, a2, n = self._sums3(ws)
            scale = 1.0 / math.sqrt(n) if n else 0.0
            per.append(self._probs3(b[0] + scale * a0, b[1] + scale * a1, b[2] + scale * a2))
            if not ws:
                continue
            t0, t1, t2, tn = t0 + a0, t1 + a1, t2 + a2, tn + n
            if last is not None:  # the pair across the boundary, and its feature
                tn += 1
                pw = get(last + " " + ws[0])
                if pw is not None:
                    t0, t1, t2 = t0 + pw[0], t1 + pw[1], t2 + pw[2]
            last = ws[-1]
        scale = 1.0 / math.sqrt(tn) if tn else 0.0
        return self._probs3(b[0] + scale * t0, b[1] + scale * t1, b[2] + scale * t2), per

    @staticmethod
    def _probs3(m0: float, m1: float, m2: float) -> list[float]:
        exp = math.exp  # _sigmoid of each, inlined (the same arithmetic)
        if m0 >= 0:
            s0 = 1.0 / (1.0 + exp(-m0))
        else:
            e = exp(m0)
            s0 = e / (1.0 + e)
        if m1 >= 0:
            s1 = 1.0 / (1.0 + exp(-m1))
        else:
            e = exp(m1)
            s1 = e / (1.0 + e)
        if m2 >= 0:
            s2 = 1.0 / (1.0 + exp(-m2))
        else:
            e = exp(m2)
            s2 = e / (1.0 + e)
        total = s0 + s1 + s2
        return [s0 / total, s1 / total, s2 / total] if total > 0 else [1.0 / 3] * 3

    def probabilities(self, text: str) -> list[float]:
        """P(class) in the order of ``classes``, as ``SGDClassifier.predict_proba`` computes them."""
        if len(self.intercept) == 3:  # :meth:`margins` and the probabilities of a three-row model, in one
            a0, a1, a2, n = self._sums3(words_of(text))
            scale = 1.0 / math.sqrt(n) if n else 0.0
            b = self.intercept
            return self._probs3(b[0] + scale * a0, b[1] + scale * a1, b[2] + scale * a2)
        m = self.margins(text)
        if len(m) == 1:
            p = _sigmoid(m[0])
            return [1.0 - p, p]
        s = [_sigmoid(x) for x in m]
        total = sum(s)
        return [x / total for x in s] if total > 0 else [1.0 / len(s)] * len(s)

    def predict(self, texts: Sequence[str]) -> list[str]:
        out = []
        for t in texts:
            p = self.probabilities(t)
            out.append(self.classes[p.index(max(p))])
        return out

    def save(self, path: Path) -> str:
        """Write the model (atomically) and return the file's SHA-256."""
        import joblib

        path.parent.mkdir(parents=True, exist_ok=True)
        names = list(self.terms)
        table = [list(self.terms[n]) for n in names]
        tmp = path.with_name(path.name + ".tmp")
        joblib.dump({"format": FORMAT, "classes": self.classes, "intercept": self.intercept, "names": names,
                     "table": table, "meta": self.meta}, tmp, compress=3)
        tmp.replace(path)
        return file_sha256(path)

    @classmethod
    def load(cls, path: Path, sha256: str | None = None) -> LinearTextModel:
        """Load a file written by :meth:`save`; ConfigError when it is missing, corrupt, altered
        (``sha256`` given and different) or not such a model."""
        import joblib

        if sha256 is not None:
            try:
                actual = file_sha256(path)
            except OSError as exc:
                raise ConfigError(f"model file {path}: {exc}") from exc
            if actual != sha256:
                raise ConfigError(f"model file {path}: SHA-256 {actual[:12]}... differs from its card's "
                                  f"{sha256[:12]}... (corrupt or replaced)")
        try:
            data = joblib.load(path)
        except FileNotFoundError as exc:
            raise ConfigError(f"model file {path}: not found") from exc
        except Exception as exc:  # a truncated or foreign file: joblib/pickle raise many kinds
            raise ConfigError(f"model file {path}: cannot be read ({type(exc).__name__}: {exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"model file {path}: not a {FORMAT} file")
        try:
            classes = [str(c) for c in data["classes"]]
            terms = {str(n): tuple(float(x) for x in row) for n, row in zip(data["names"], data["table"], strict=True)}
            intercept = [float(x) for x in data["intercept"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"model file {path}: malformed ({exc})") from exc
        rows = 1 if len(classes) == 2 else len(classes)
        if len(classes) < 2 or len(intercept) != rows or any(len(v) != rows for v in terms.values()):
            raise ConfigError(f"model file {path}: weights do not match its {len(classes)} classes")
        return cls(classes, intercept, terms, dict(data.get("meta", {})))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def round4(x: float) -> float:
    """``round(x, 4)``, bit for bit, without its decimal conversion for ``1e-4 <= |x| <= 100``.

    ``round`` gives the float nearest to K / 10^4, K the integer nearest to x * 10^4 (ties to even).
    ``p = x * 1e4`` is within half a unit in the last place (< 2e-10) of x * 10^4 in that range, so
    unless p lies within 1e-9 of a half-integer (then ``round`` decides), K is floor(p) or
    floor(p) + 1, whichever is nearer, and ``K / 1e4`` (an exact integer over an exact power of
    ten, correctly rounded) is that float. Used for the sentiment results (4 digits)."""
    p = x * 10000.0
    if not 1.0 <= abs(p) <= 1e6:  # also NaN and infinities
        return round(x, 4)
    k = math.floor(p)
    f = p - k  # exact (Sterbenz: k and p are within a factor of 2)
    if f > 0.500000001:
        k += 1
    elif f >= 0.499999999:
        return round(x, 4)
    return k / 10000.0


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def design(texts: Sequence[str], vectorizer: Any = None, min_df: int = 2,
           max_features: int = 200_000) -> tuple[Any, Any]:
    """The feature matrix of ``texts`` (idf x counts / sqrt(features of the text)) and its vectorizer
    (fitted here when none is given)."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    extracted = [features(t) for t in texts]
    if vectorizer is None:
        vectorizer = TfidfVectorizer(analyzer=_identity, norm=None, sublinear_tf=False, dtype=np.float64,
                                     min_df=min_df if len(texts) >= 1000 else 1, max_features=max_features)
        x = vectorizer.fit_transform(extracted)
    else:
        x = vectorizer.transform(extracted)
    scale = np.array([1.0 / math.sqrt(len(f)) if f else 0.0 for f in extracted])
    return sp.diags(scale) @ x, vectorizer


def _identity(x: list[str]) -> list[str]:
    return x


def fit(texts: Sequence[str], labels: Sequence[str], alpha: float = 1e-5, epochs: int = 20,
        min_df: int = 2, max_features: int = 200_000, seed: int = 0) -> LinearTextModel:
    """Fit the features of ``texts`` with ``SGDClassifier(loss="log_loss")`` (balanced class weights)
    and return the exported weights (:class:`LinearTextModel`)."""
    import warnings

    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    x, vec = design(texts, None, min_df, max_features)
    clf = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None, class_weight="balanced",
                        random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, list(labels))
    classes = [str(k) for k in clf.classes_]
    coef, idf = clf.coef_, vec.idf_
    terms: dict[str, tuple[float, ...]] = {}
    for term, j in vec.vocabulary_.items():
        terms[term] = tuple(float(idf[j] * coef[r, j]) for r in range(coef.shape[0]))
    meta = {"sklearn": sklearn.__version__, "features": len(terms), "alpha": alpha, "epochs": epochs,
            "char_sizes": list(CHAR_SIZES), "estimator": "SGDClassifier(log_loss)"}
    return LinearTextModel(classes, [float(b) for b in clf.intercept_], terms, meta)

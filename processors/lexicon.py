"""A customer-service lexicon: complaint and praise phrasing that general lexicons miss.

Valences are on VADER's scale (-4 .. +4). General-purpose lexicons score "still waiting",
"charged twice" or "on hold" as neutral, yet in feedback they are among the clearest signs of
a failing service. Guarantees: matching is on the sentence's tokens (case-insensitive, whole words, so spacing and
punctuation between words do not matter), and each phrase counts once per occurrence (longest
phrase first, no overlapping matches).
"""

from __future__ import annotations

from collections.abc import Sequence

from processors.sentences import tokens

PHRASES: dict[str, float] = {
    # waiting, silence, being passed around
    "still waiting": -2.5, "still have not": -2.0, "still haven't": -2.0, "still no": -2.0,
    "no response": -2.5, "no reply": -2.5, "no answer": -2.0, "no one answered": -2.5,
    "nobody answered": -2.5, "never answered": -2.5, "never replied": -2.5, "never heard back": -2.5,
    "never got back": -2.5, "didn't hear back": -2.0, "did not hear back": -2.0, "on hold": -1.5,
    "put on hold": -2.0, "kept waiting": -2.0, "waiting for weeks": -3.0, "waiting for days": -2.5,
    "weeks later": -1.5, "days later": -1.0, "passed around": -2.0, "transferred again": -2.0,
    "hung up": -2.0, "no follow up": -2.0, "no follow-up": -2.0, "ignored my": -2.5,
    # money
    "charged twice": -3.0, "double charged": -3.0, "overcharged": -2.5, "hidden fees": -2.5,
    "hidden fee": -2.5, "no refund": -2.5, "still no refund": -3.0, "refund denied": -3.0,
    "want my money back": -3.0, "money back": -1.0, "ripped off": -3.0, "rip off": -3.0, "rip-off": -3.0,
    "waste of money": -3.0, "not worth": -2.0,
    # delivery and orders
    "hours late": -2.0, "days late": -2.5, "weeks late": -3.0, "late again": -2.5, "way too late": -2.5,
    "never arrived": -3.0, "never received": -3.0, "not arrived": -2.5, "hasn't arrived": -2.5,
    "has not arrived": -2.5, "didn't arrive": -2.5, "did not arrive": -2.5, "arrived late": -2.0,
    "arrived damaged": -3.0, "arrived broken": -3.0, "wrong item": -2.5, "wrong order": -2.5,
    "wrong size": -1.5, "missing item": -2.5, "lost in transit": -2.5, "lost my": -2.0,
    "was cancelled": -2.0, "was canceled": -2.0, "got cancelled": -2.0, "cancelled my": -2.0,
    "canceled my": -2.0, "cancelled without": -2.5, "delayed again": -2.5,
    # product and service failures
    "stopped working": -2.5, "doesn't work": -2.5, "does not work": -2.5, "not working": -2.5,
    "won't work": -2.5, "keeps crashing": -3.0, "keeps freezing": -2.5, "fell apart": -2.5,
    "locked out": -2.0, "can't log in": -2.0, "cannot log in": -2.0, "waste of time": -3.0,
    "worst experience": -3.5, "never again": -3.0, "would not recommend": -3.0,
    "wouldn't recommend": -3.0, "do not recommend": -3.0, "don't recommend": -3.0,
    "not resolved": -2.5, "still not fixed": -3.0, "not fixed": -2.0, "unacceptable": -3.0,
    "nobody cares": -3.0, "no one cares": -3.0, "cancel my subscription": -1.5,
    # praise for service
    "quick response": 2.5, "fast response": 2.5, "quick reply": 2.5, "responded quickly": 2.5,
    "sorted it out": 2.5, "sorted out": 1.5, "problem solved": 2.5, "issue resolved": 2.5,
    "resolved quickly": 3.0, "fixed quickly": 2.5, "went above and beyond": 3.5,
    "above and beyond": 3.0, "fast delivery": 2.5, "quick delivery": 2.5, "arrived early": 2.5,
    "arrived on time": 2.0, "on time": 1.0, "well packaged": 2.0, "easy to use": 2.5,
    "works perfectly": 3.0, "works great": 3.0, "highly recommend": 3.0, "would recommend": 2.5,
    "value for money": 2.0, "no problems": 2.0, "no issues": 2.0, "no complaints": 2.0,
}

def _index() -> dict[str, list[tuple[tuple[str, ...], float]]]:
    index: dict[str, list[tuple[tuple[str, ...], float]]] = {}
    for phrase, valence in PHRASES.items():
        words = tuple(tokens(phrase))
        index.setdefault(words[0], []).append((words, valence))
    for entries in index.values():
        entries.sort(key=lambda e: -len(e[0]))  # longest first
    return index


_INDEX = _index()


def score(toks: Sequence[str]) -> tuple[float, float]:
    """(sum of positive valences, sum of negative valences as a positive number) in a sentence's
    tokens (:func:`processors.sentences.tokens`)."""
    pos = neg = 0.0
    i, n = 0, len(toks)
    get = _INDEX.get
    while i < n:
        step = 1
        for words, valence in get(toks[i], ()):
            k = len(words)
            if (k == 1 or tuple(toks[i:i + k]) == words):
                if valence > 0:
                    pos += valence
                else:
                    neg -= valence
                step = k
                break
        i += step
    return pos, neg

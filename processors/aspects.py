"""Aspects: each sentence of a text with the categories it mentions and its own sentiment.

"The parcel came a week late. The support agent was lovely though." becomes
``delivery: negative`` and ``customer_support: positive``, next to the record's overall label.

Guarantees: one aspect per (sentence, category) for the first :data:`MAX_SENTENCES` sentences, in
sentence order; a sentence that mentions no category yields one aspect with category ``other``;
every aspect carries its sentence's label (``not_assessed`` when the record was not scored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Sentences of one record turned into aspects (long e-mails: the rest still count overall).
MAX_SENTENCES = 100
MAX_ASPECT_CHARS = 2000


def build(sentences: Sequence[str], sentiments: Sequence[dict[str, Any]],
          categories: Sequence[Sequence[tuple[str, float]]]) -> list[dict[str, Any]]:
    """Aspects (dicts with the fields of :class:`~pipeline.schema.Aspect`) from parallel lists:
    sentences, their sentiment scores and their (category, confidence) pairs."""
    out: list[dict[str, Any]] = []
    for i, (sentence, sent, cats) in enumerate(zip(sentences, sentiments, categories, strict=True)):
        if i >= MAX_SENTENCES:
            break
        text = sentence[:MAX_ASPECT_CHARS]
        for name, confidence in cats:
            out.append({"sentence": i, "text": text, "category": name, "confidence": confidence,
                        "label": sent["label"], "score": sent.get("score")})
    return out


def summary(aspects: Sequence[Any]) -> dict[str, str]:
    """``{category: label}`` for a quick look: the most negative label wins per category."""
    rank = {"negative": 0, "positive": 1, "neutral": 2, "not_assessed": 3}
    out: dict[str, str] = {}
    for a in aspects:
        category, label = (a["category"], a["label"]) if isinstance(a, dict) else (a.category, a.label)
        if category not in out or rank[label] < rank[out[category]]:
            out[category] = label
    return out

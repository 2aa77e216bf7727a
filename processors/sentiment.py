"""Sentiment of a text with TextBlob's lexicon, labelled with a neutral band around zero."""

from __future__ import annotations

from textblob import TextBlob

from pipeline.schema import Sentiment, SentimentLabel


def label_for(polarity: float, neutral_band: float) -> SentimentLabel:
    """``|polarity| <= neutral_band`` is neutral; otherwise the sign decides."""
    if polarity > neutral_band:
        return "positive"
    if polarity < -neutral_band:
        return "negative"
    return "neutral"


def analyze(text: str, neutral_band: float = 0.1) -> Sentiment:
    polarity, subjectivity = TextBlob(text).sentiment
    polarity = max(-1.0, min(1.0, float(polarity)))
    subjectivity = max(0.0, min(1.0, float(subjectivity)))
    return Sentiment(
        polarity=round(polarity, 4),
        subjectivity=round(subjectivity, 4),
        label=label_for(polarity, neutral_band),
        analyzer="textblob",
    )

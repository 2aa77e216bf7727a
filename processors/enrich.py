"""The enrichment step as plain functions: raw bytes -> FeedbackRecord -> EnrichedFeedback.

Order (each step sees only what the previous one produced): normalise the text; redact PII from
text, subject and string attributes; detect the language; split sentences; score sentiment per
sentence and overall (only English is scored: other languages are ``not_assessed``, and so is a
score-only record, which has no text, no categories and no aspects); tag
categories per sentence (model, else taxonomy, else ``other``); build aspects. Unit-tested
without Kafka; the faust agent and ``feedback eval`` both call :meth:`Enricher.assess`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline import metrics
from pipeline.errors import RecordError
from pipeline.schema import COPIED_IDENTITY, EnrichedFeedback, FeedbackRecord, bounded_event_time, nps_class
from processors import aspects as aspect_builder
from processors import language
from processors.categories_model import ActiveCategoryModel, CategoryModel
from processors.redact import DEFAULT_REGIONS, Redactor
from processors.sentences import split_sentences
from processors.sentiment import Analyzer, get_analyzer, not_assessed
from processors.sentiment_trained import SwitchingAnalyzer, combine, score_class
from processors.taxonomy import FALLBACK, Taxonomy, merge_hits

# Zero-width and other format characters that render as nothing.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
# Runs of blanks that folding changes (a lone space is left alone: it would be replaced by itself).
_BLANKS = re.compile(r"[ \t\r\f\v]{2,}|[\t\r\f\v]")
_BREAKS = re.compile(r"\n{3,}")


def parse_raw(value: bytes) -> FeedbackRecord:
    """Decode and validate one raw-topic value; RecordError (for the DLQ) when it is unusable."""
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError("malformed_json", str(exc)[:500]) from exc
    if not isinstance(data, dict):
        raise RecordError("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    try:
        return bounded_event_time(FeedbackRecord.model_validate(data))  # far-future event_time: dead letter
    except ValidationError as exc:
        raise RecordError("schema_violation", _summarize(exc)) from exc


def _summarize(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<record>'}: {e['msg']}" for e in exc.errors()[:10]
    )[:2000]


def normalize_text(text: str) -> str:
    """NFC, invisible characters removed, runs of blanks folded (line breaks kept)."""
    if not text.isascii():  # ASCII holds no invisible characters and is already NFC
        text = unicodedata.normalize("NFC", _INVISIBLE.sub("", text))
    if not text.isprintable():
        text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    if "  " in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text:  # what _BLANKS can match
        text = _BLANKS.sub(" ", text)
    if "\n\n\n" in text:
        text = _BREAKS.sub("\n\n", text)
    return text.strip()


def content_hash(record: FeedbackRecord) -> str:
    """Identity of the content, ignoring when it was received (a re-post is the same content)."""
    body = record.model_dump_json(exclude={"received_at"})
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


@dataclass
class Assessment:
    """What the enrichment found in one text (already redacted); plain dicts with the fields of
    :class:`~pipeline.schema.Sentiment`, :class:`~pipeline.schema.CategoryTag` and
    :class:`~pipeline.schema.Aspect`, validated once in :meth:`Enricher.enrich`."""

    text: str
    redactions: dict[str, int]
    language: language.Detection
    sentiment: dict[str, Any]
    categories: list[dict[str, Any]]
    aspects: list[dict[str, Any]]
    subject: str | None = None
    probs: tuple[float, float, float] | None = None  # the text's class probabilities, when the analyzer has them


@dataclass
class Enricher:
    """Turns a valid record into an enriched one. Raises RecordError for content it cannot use.

    Guarantees: the enriched record's text, subject and string attributes hold no PII the
    :class:`~processors.redact.Redactor` finds; only English (or letter-less) text is scored with
    the English lexicons; categories are never empty; the result is a validated
    :class:`EnrichedFeedback`. Settings not given are read from ``FEEDBACK_*``
    (``FEEDBACK_SENTIMENT``, ``FEEDBACK_CATEGORY_MODEL``, ``FEEDBACK_PHONE_REGIONS``, ...).
    """

    taxonomy: Taxonomy
    neutral_band: float = 0.1  # the textblob analyzer's band (FEEDBACK_NEUTRAL_BAND)
    analyzer: Analyzer | str | None = None
    category_model: CategoryModel | ActiveCategoryModel | Path | None = None
    phone_regions: tuple[str, ...] | None = None
    ensemble_band: float | None = None
    model_dir: Path | None = None  # trained models (FEEDBACK_MODEL_DIR): the active one is used, hot-swapped
    score_weight: float = 0.0  # FEEDBACK_SENTIMENT_SCORE_WEIGHT: a record's own score next to its text
    model_poll_seconds: float = 10.0
    redactor: Redactor = field(init=False)

    def __post_init__(self) -> None:
        if self.analyzer is None or self.phone_regions is None:
            from pipeline.config import ProcessorSettings, load

            settings = load(ProcessorSettings)
            if self.analyzer is None:
                self.analyzer = settings.sentiment
                self.category_model = self.category_model or settings.category_model
                self.ensemble_band = settings.ensemble_neutral_band
                self.model_dir, self.score_weight = settings.models_path, settings.sentiment_score_weight
                self.model_poll_seconds = settings.model_poll_seconds
            if self.phone_regions is None:
                self.phone_regions = tuple(settings.phone_regions)
        if isinstance(self.analyzer, str):
            band = self.neutral_band if self.analyzer == "textblob" else self.ensemble_band
            self.analyzer = get_analyzer(self.analyzer, band if self.analyzer != "vader" else None)
        if isinstance(self.category_model, (str, Path)):
            self.category_model = CategoryModel.load(Path(self.category_model))
        if self.model_dir is not None:
            from processors.model_store import ModelStore

            store = ModelStore(Path(self.model_dir))
            if not isinstance(self.analyzer, SwitchingAnalyzer):
                self.analyzer = SwitchingAnalyzer(self.analyzer, store, self.model_poll_seconds)
            if self.category_model is None:
                self.category_model = ActiveCategoryModel(store, self.model_poll_seconds)
        self.redactor = Redactor(self.phone_regions or DEFAULT_REGIONS)
        self.assess("Warm up: load the lexicons and the language model now, not on the first record.")
        language.warm_up()  # that English text takes the word-list path: load the fastText model too

    @classmethod
    def from_settings(cls, settings: Any) -> Enricher:
        """An enricher configured by ProcessorSettings."""
        return cls(Taxonomy.load(settings.taxonomy_file), settings.neutral_band, settings.sentiment,
                   settings.category_model, tuple(settings.phone_regions), settings.ensemble_neutral_band,
                   settings.models_path, settings.sentiment_score_weight, settings.model_poll_seconds)

    @property
    def analyzer_name(self) -> str:
        return getattr(self.analyzer, "name", "unknown")

    @property
    def model_name(self) -> str:
        """What ``sentiment.model`` records: the active trained version, or the shipped analyzer's name."""
        return getattr(self.analyzer, "model_name", None) or self.analyzer_name

    def prepare(self, text: str) -> tuple[str, dict[str, int], language.Detection, list[str]]:
        """The first steps of :meth:`assess`: redacted text, counts, language and sentences."""
        red = self.redactor.redact(text)
        detected = language.detect(red.text)
        return red.text, dict(red.counts), detected, split_sentences(red.text) or [red.text]

    def assess(self, text: str, subject: str | None = None, declared_language: str | None = None) -> Assessment:
        """Redact, detect the language, score and tag one (normalised) text."""
        text, counts, detected, sentences = self.prepare(text)
        if subject:
            rs = self.redactor.redact(subject)
            subject = rs.text
            for k, n in rs.counts.items():
                counts[k] = counts.get(k, 0) + n
        probs = None
        if assessable(detected, declared_language) or detected.language in getattr(self.analyzer, "languages", ()):
            assert isinstance(self.analyzer, Analyzer)
            overall, per_sentence = self.analyzer.scores(text, sentences)
            overall = dict(overall)
            probs = overall.pop("_p", None)
        else:
            overall = not_assessed(self.analyzer_name)
            per_sentence = [overall] * len(sentences)
            metrics.SENTIMENT_NOT_ASSESSED.labels(detected.language).inc()
        if "model" not in overall:  # a trained model's results name it: the one that scored this text
            overall["model"] = self.model_name
        sentence_cats, categories = self._categories(sentences, subject)
        return Assessment(text, counts, detected, overall,
                          [{"name": n, "confidence": c} for n, c in categories],
                          aspect_builder.build(sentences, per_sentence, sentence_cats), subject, probs)

    def _categories(
        self, sentences: list[str], subject: str | None
    ) -> tuple[list[list[tuple[str, float]]], list[tuple[str, float]]]:
        hits = [self.taxonomy.hits(s) for s in sentences]
        per_sentence = [self.taxonomy.scored(h) for h in hits]
        if len(sentences) == 1 and not subject:
            overall = per_sentence[0]
        else:
            overall = self.taxonomy.scored(merge_hits([*hits, self.taxonomy.hits(subject) if subject else {}]))
        model = self.category_model
        if isinstance(model, ActiveCategoryModel):
            model = model.current
        if isinstance(model, CategoryModel):
            known = set(model.classes)
            joined = f"{subject or ''}\n{' '.join(sentences)}".strip()
            predicted = model.predict([joined, *sentences])
            overall, *per_sentence = [_combine(p, t, known) for p, t in zip(predicted, [overall, *per_sentence],
                                                                                strict=True)]
        return per_sentence, overall

    def enrich(self, record: FeedbackRecord) -> EnrichedFeedback:
        text = normalize_text(record.text)
        if not text:
            if record.nps_score is None and record.csat_score is None and record.stars is None:
                raise RecordError("empty_text", "the text holds no visible characters and there is no score")
            return self._score_only(record)
        a = self.assess(text, record.subject, record.language)
        if self.score_weight > 0 and a.probs is not None:
            scored = score_class(record)
            if scored is not None:
                a.sentiment = combine(a.sentiment, a.probs, scored[0], scored[1], self.score_weight)
                a.sentiment.pop("_p", None)
        data = record.__dict__.copy()  # its validated fields (extra="forbid": nothing else); validated again below
        counts = a.redactions
        self.redactor.redact_fields(data, counts)  # product, channel, thread_ref, tags (processors/redact.py)
        if record.attributes:
            attributes, attr_counts = self.redactor.redact_many(record.attributes)
            data["attributes"] = attributes
            for k, n in attr_counts.items():
                counts[k] = counts.get(k, 0) + n
        for kind, n in counts.items():
            metrics.REDACTIONS.labels(kind).inc(n)
        data.update(
            text=a.text,
            subject=a.subject,
            original_text=None,  # the raw topic keeps the original; nothing unredacted goes further
            sentiment=a.sentiment,
            categories=a.categories,
            nps_class=nps_class(record.nps_score),
            aspects=a.aspects,
            redacted=bool(counts),
            redactions=counts,
            detected_language=a.language.language,
            language_confidence=a.language.confidence,
        )
        try:
            return EnrichedFeedback.model_validate(data, context=COPIED_IDENTITY)
        except ValidationError as exc:  # e.g. a text that redaction made longer than the limit
            raise RecordError("enrichment_invalid", _summarize(exc)) from exc


    def _score_only(self, record: FeedbackRecord) -> EnrichedFeedback:
        """A score without words: no sentiment (``not_assessed``), no categories, no aspects."""
        data = record.__dict__.copy()
        if record.attributes:
            data["attributes"], counts = self.redactor.redact_many(record.attributes)
        else:
            counts = {}
        self.redactor.redact_fields(data, counts)  # product, channel, thread_ref, tags (processors/redact.py)
        subject = self.redactor.redact(record.subject) if record.subject else None
        if subject is not None:
            for k, n in subject.counts.items():
                counts[k] = counts.get(k, 0) + n
        sentiment = dict(not_assessed(self.analyzer_name), model=self.model_name)
        metrics.SENTIMENT_NOT_ASSESSED.labels("score_only").inc()
        data.update(text="", subject=subject.text if subject else None, original_text=None, sentiment=sentiment,
                    categories=[], aspects=[], nps_class=nps_class(record.nps_score), redacted=bool(counts),
                    redactions=counts, detected_language=None, language_confidence=None)
        try:
            return EnrichedFeedback.model_validate(data, context=COPIED_IDENTITY)
        except ValidationError as exc:
            raise RecordError("enrichment_invalid", _summarize(exc)) from exc


def _combine(model: list[Any], taxonomy: list[tuple[str, float]], known: set[str]) -> list[tuple[str, float]]:
    """The model's categories, plus the taxonomy's for categories the model was not trained on."""
    out = [(t.name, t.confidence) for t in model]
    out += [(n, c) for n, c in taxonomy if n not in known and n != FALLBACK]
    out.sort(key=lambda x: (-x[1], x[0]))
    return out or [(FALLBACK, 1.0)]


def assessable(detected: language.Detection, declared: str | None) -> bool:
    """English text is scored; so is text without letters (emoji); others are not assessed."""
    if detected.is_english or not detected.has_letters:
        return True
    if detected.confidence < language.MIN_CONFIDENCE and declared:
        return declared.lower().split("-")[0] == "en"
    return False


class RecentSet:
    """Bounded memory of recently seen keys (LRU), for dropping exact re-deliveries.

    Each key lives on one partition and so on one worker; after a restart the memory is empty and
    the warehouse's idempotent upsert absorbs what this no longer catches.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        """True if ``key`` was seen recently; remembers it either way."""
        if self.capacity <= 0:
            return False
        if key in self._items:
            self._items.move_to_end(key)
            return True
        self._items[key] = None
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return False

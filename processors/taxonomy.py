"""Category tagging from a YAML taxonomy: keywords, phrases, regexes and exclusions per category.

The taxonomy is compiled once into an index of terms by their first word, so tagging a sentence
costs one pass over its words however many categories there are. Terms match whole words,
case-insensitively, with any spacing or punctuation between their words ("log in" = "log-in").
Exclusions apply to the sentence they occur in ("not great" vetoes praise in that sentence, not
in the next one).

Guarantees: multi-label, deterministic, and never empty (no match gives ``other``); a category's
confidence is its configured base plus 0.1 per further distinct term, capped at 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError
from pipeline.schema import CategoryTag

FALLBACK = "other"
_WORD = re.compile(r"\w+")

#: Distinct terms found per category index: ``{category index: {term id, ...}}``.
Hits = dict[int, set[int]]


@dataclass
class Category:
    """One category: its terms (keywords and phrases), regexes, exclusions and base confidence."""

    name: str
    terms: list[str]
    regexes: list[re.Pattern[str]] = field(default_factory=list)
    exclusions: list[str] = field(default_factory=list)
    confidence: float = 0.7


def _add(index: dict[str, list[tuple[tuple[str, ...], int, int]]], term: str, ci: int, ti: int) -> None:
    words = tuple(_WORD.findall(term.lower()))
    if words and not any(t == words and c == ci for t, c, _ in index.get(words[0], ())):
        index.setdefault(words[0], []).append((words, ci, ti))


def _scan(index: dict[str, list[tuple[tuple[str, ...], int, int]]], words: list[str]) -> list[tuple[int, int]]:
    """(category, term id) of every term whose words occur consecutively in ``words``."""
    out = []
    for i, entries in enumerate(map(index.get, words)):
        if entries:
            for term, ci, ti in entries:
                if len(term) == 1 or tuple(words[i:i + len(term)]) == term:
                    out.append((ci, ti))
    return out


class Taxonomy:
    """A loaded, compiled taxonomy; :meth:`tag` returns the categories of a text, best first."""

    def __init__(self, categories: list[Category]) -> None:
        if not categories:
            raise ConfigError("the taxonomy defines no categories")
        self.categories = categories
        # term -> its (category, term id) pairs, indexed by the term's first word
        self._index: dict[str, list[tuple[tuple[str, ...], int, int]]] = {}
        self._regexes: list[tuple[int, int, re.Pattern[str]]] = []
        self._exclusions: dict[str, list[tuple[tuple[str, ...], int, int]]] = {}
        self._confidences: dict[tuple[int, int], tuple[str, float]] = {}
        for ci, cat in enumerate(categories):
            for ti, term in enumerate(cat.terms):
                _add(self._index, term, ci, ti)
            for ri, rx in enumerate(cat.regexes):
                self._regexes.append((ci, len(cat.terms) + ri, rx))
            for term in cat.exclusions:
                _add(self._exclusions, term, ci, -1)
        self._exclusion_words = frozenset(self._exclusions)  # the first words of the exclusions
        self._first_words = frozenset(self._index)  # the first words of the terms

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    @classmethod
    def from_mapping(cls, data: Any, origin: str = "taxonomy") -> Taxonomy:
        if not isinstance(data, dict) or not isinstance(data.get("categories"), dict):
            raise ConfigError(f"{origin}: expected a mapping with a 'categories' mapping")
        cats = []
        for name, spec in data["categories"].items():
            spec = spec or {}
            if not isinstance(spec, dict):
                raise ConfigError(f"{origin}: category {name!r}: expected a mapping")
            try:
                terms = [str(t) for t in [*spec.get("keywords", []), *spec.get("phrases", [])] if str(t).strip()]
                regexes = [re.compile(str(r), re.IGNORECASE) for r in spec.get("regexes", [])]
                exclusions = [str(t) for t in spec.get("exclusions", []) if str(t).strip()]
                confidence = float(spec.get("confidence", 0.7))
            except (re.error, TypeError, ValueError) as exc:
                raise ConfigError(f"{origin}: category {name!r}: {exc}") from exc
            if not terms and not regexes:
                raise ConfigError(f"{origin}: category {name!r} has no keywords, phrases or regexes")
            if not 0 < confidence <= 1:
                raise ConfigError(f"{origin}: category {name!r}: confidence must be in (0, 1]")
            if not 0 < len(str(name)) <= 100:
                raise ConfigError(f"{origin}: category name {name!r} must have 1 to 100 characters")
            if str(name) == FALLBACK:
                raise ConfigError(f"{origin}: {FALLBACK!r} is reserved for text no category matches")
            cats.append(Category(str(name), terms, regexes, exclusions, confidence))
        return cls(cats)

    @classmethod
    def load(cls, path: Path | None = None) -> Taxonomy:
        """The taxonomy at ``path`` (FEEDBACK_TAXONOMY_FILE), else the one shipped with the package."""
        if path is None:
            text = resources.files(__package__).joinpath("taxonomy.yaml").read_text()
            origin = "shipped taxonomy"
        else:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise ConfigError(f"FEEDBACK_TAXONOMY_FILE: cannot read {path}: {exc}") from exc
            origin = str(path)
        try:
            return cls.from_mapping(yaml.safe_load(text), origin)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{origin}: invalid YAML: {exc}") from exc

    def hits(self, text: str) -> Hits:
        """The distinct terms of each category found in ``text``, after its exclusions."""
        words = _WORD.findall(text.lower())
        found: Hits = {}
        joined = None  # " w1 w2 ... ": a term of several words occurs when " t1 t2 " is in it (words hold no blank)
        for first in self._first_words.intersection(words):  # the words that start a term (most start none)
            for term, ci, ti in self._index[first]:
                if len(term) > 1:
                    if joined is None:
                        joined = f" {' '.join(words)} "
                    if f" {' '.join(term)} " not in joined:
                        continue
                terms = found.get(ci)
                if terms is None:
                    found[ci] = {ti}
                else:
                    terms.add(ti)
        for ci, ti, rx in self._regexes:
            if rx.search(text):
                found.setdefault(ci, set()).add(ti)
        if found and not self._exclusion_words.isdisjoint(words):  # a word that starts an exclusion
            for ci, _ in _scan(self._exclusions, words):
                found.pop(ci, None)
        return found

    def scored(self, hits: Hits) -> list[tuple[str, float]]:
        """(name, confidence) from hits, best first (confidence, then name); ``other`` if none."""
        scored = [self._confidence(ci, len(terms)) for ci, terms in hits.items() if terms]
        if len(scored) > 1:
            scored.sort(key=lambda x: (-x[1], x[0]))
        return scored or [(FALLBACK, 1.0)]

    def _confidence(self, ci: int, n: int) -> tuple[str, float]:
        """(name, confidence) of category ``ci`` with ``n`` distinct terms found (memoised)."""
        key = (ci, n)
        found = self._confidences.get(key)
        if found is None:
            cat = self.categories[ci]
            found = self._confidences[key] = (cat.name, round(min(1.0, cat.confidence + 0.1 * (n - 1)), 3))
        return found

    def tags(self, hits: Hits) -> list[CategoryTag]:
        """:meth:`scored` as validated tags."""
        return [CategoryTag(name=n, confidence=c) for n, c in self.scored(hits)]

    def tag(self, text: str) -> list[CategoryTag]:
        return self.tags(self.hits(text))


def merge_hits(parts: Iterable[Hits]) -> Hits:
    """The union of several texts' hits (a record's sentences and subject)."""
    out: Hits = {}
    for hits in parts:
        for ci, terms in hits.items():
            out.setdefault(ci, set()).update(terms)
    return out

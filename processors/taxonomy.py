"""Category tagging from a YAML taxonomy: keywords, phrases, regexes and exclusions per category.

Guarantees: multi-label, deterministic, and never empty (no match gives ``other``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError
from pipeline.schema import CategoryTag

FALLBACK = "other"


@dataclass
class Category:
    name: str
    patterns: list[re.Pattern[str]]
    exclusions: list[re.Pattern[str]] = field(default_factory=list)
    confidence: float = 0.7

    def score(self, text: str) -> float:
        """0 when the category does not apply; else a confidence that grows with distinct hits."""
        if any(p.search(text) for p in self.exclusions):
            return 0.0
        hits = sum(1 for p in self.patterns if p.search(text))
        if hits == 0:
            return 0.0
        return round(min(1.0, self.confidence + 0.1 * (hits - 1)), 3)


def _term(term: str) -> re.Pattern[str]:
    """A keyword or phrase, matched case-insensitively on word boundaries, whitespace-tolerant."""
    words = [re.escape(w) for w in term.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


class Taxonomy:
    """A loaded taxonomy; :meth:`tag` returns the categories of a text, best first."""

    def __init__(self, categories: list[Category]) -> None:
        if not categories:
            raise ConfigError("the taxonomy defines no categories")
        self.categories = categories

    @classmethod
    def from_mapping(cls, data: Any, origin: str = "taxonomy") -> Taxonomy:
        if not isinstance(data, dict) or not isinstance(data.get("categories"), dict):
            raise ConfigError(f"{origin}: expected a mapping with a 'categories' mapping")
        cats = []
        for name, spec in data["categories"].items():
            spec = spec or {}
            try:
                terms = [*spec.get("keywords", []), *spec.get("phrases", [])]
                patterns = [_term(str(t)) for t in terms]
                patterns += [re.compile(str(r), re.IGNORECASE) for r in spec.get("regexes", [])]
                exclusions = [_term(str(t)) for t in spec.get("exclusions", [])]
                confidence = float(spec.get("confidence", 0.7))
            except (re.error, TypeError, ValueError) as exc:
                raise ConfigError(f"{origin}: category {name!r}: {exc}") from exc
            if not patterns:
                raise ConfigError(f"{origin}: category {name!r} has no keywords, phrases or regexes")
            if not 0 < confidence <= 1:
                raise ConfigError(f"{origin}: category {name!r}: confidence must be in (0, 1]")
            cats.append(Category(str(name), patterns, exclusions, confidence))
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

    def tag(self, text: str) -> list[CategoryTag]:
        scored = [(c.score(text), c.name) for c in self.categories]
        tags = [CategoryTag(name=n, confidence=s) for s, n in sorted(scored, key=lambda x: (-x[0], x[1])) if s > 0]
        return tags or [CategoryTag(name=FALLBACK, confidence=1.0)]

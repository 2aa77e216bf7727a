"""The webhook-source contract: ``verify(headers, body)`` + ``map(payload)``, registered by entry point.

A webhook source says only what is particular to the system that calls it: whether it is configured,
how a delivery proves where it comes from (:meth:`WebhookSource.verify` on the raw body), and how a
payload becomes records (:meth:`WebhookSource.map`). The HTTP service owns the rest: the route
``POST /webhooks/<name>``, body limits, media type, JSON parsing, publishing with the broker's acks,
the answer and the counters.

A component registers a factory (``settings -> WebhookSource``) under the entry-point group
``feedback.webhooks`` in ``pyproject.toml``; the HTTP service mounts every registered name, so a new
webhook needs no edit outside its own package. A registered webhook whose secret is not set answers
404 ``webhook_not_configured`` (naming the setting to set).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from pipeline.config import HttpSettings
from pipeline.errors import ConfigError
from pipeline.schema import FeedbackRecord

GROUP = "feedback.webhooks"


class WebhookRejected(Exception):
    """A delivery refused before mapping (bad signature, missing token, stale timestamp): answered with
    ``status`` (401 unless said otherwise) and the machine-readable ``error``."""

    def __init__(self, error: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.error, self.message, self.status = error, message, status


@dataclass
class Mapped:
    """What one delivery yields: records to publish and the reasons of the items skipped (each counted)."""

    records: list[FeedbackRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def extend(self, other: Mapped) -> None:
        self.records.extend(other.records)
        self.skipped.extend(other.skipped)


class WebhookSource(Protocol):
    """A webhook source. Guarantees asked of an implementation: :meth:`verify` raises
    :class:`WebhookRejected` unless the body is authentic, compares secrets in constant time and
    accepts any of several configured secrets; :meth:`map` is pure (same payload, same records with
    the same deterministic ids) and raises :class:`~pipeline.errors.RecordError` or a pydantic
    ``ValidationError`` for a payload it cannot use, never anything else."""

    name: str  # the route's last segment and the metrics' source (``<name>_webhook``)
    setting: str  # the variable that configures it (named in the 404 when unset)

    def configured(self) -> bool: ...

    def verify(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> None: ...

    def map(self, payload: Any) -> Mapped: ...


WebhookFactory = Callable[[HttpSettings], WebhookSource]


def registered_names() -> list[str]:
    """The names of the registered webhook sources (sorted; one per name)."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def webhook_sources(settings: HttpSettings) -> dict[str, WebhookSource]:
    """Every registered webhook source built for ``settings``, by name; a broken registration is a
    ConfigError naming it."""
    found: dict[str, WebhookSource] = {}
    for ep in sorted({ep.name: ep for ep in entry_points(group=GROUP)}.values(), key=lambda e: e.name):
        try:
            factory = ep.load()
            source = factory(settings)
        except Exception as exc:  # a broken plugin must be named, not silently missing
            raise ConfigError(f"webhook source {ep.name!r} ({ep.value}) cannot be loaded: {exc}") from exc
        if source.name != ep.name:
            raise ConfigError(f"webhook source {ep.value} is registered as {ep.name!r} but names itself "
                              f"{source.name!r}")
        found[ep.name] = source
    return found


def secrets_of(value: Any) -> list[bytes]:
    """The comma-separated secrets of a ``SecretStr`` setting (several: one per sender, or a rotation)."""
    text = value.get_secret_value() if value is not None else ""
    return [part.strip().encode() for part in text.split(",") if part.strip()]

"""Versioned models in a directory: ``<version>.joblib`` + its JSON model card ``<version>.json``, and
one pointer per kind, ``active-<kind>.json``, naming the active version (and the ones before it).

Guarantees: files are written atomically (a reader never sees half a file); a model becomes active
only by rewriting its kind's pointer, so the processor (:class:`ActiveModel`) picks it up by
watching one small file; ``rollback`` re-activates the version that was active before; a card
records the model file's SHA-256, and a file that no longer matches is refused at load. The
warehouse's ``models`` table mirrors the cards for SQL (:mod:`processors.learning.catalog`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import ConfigError
from pipeline.logging import get_logger

log = get_logger(__name__)
Kind = Literal["sentiment", "category"]
KINDS: tuple[Kind, ...] = ("sentiment", "category")
HISTORY = 20  # earlier active versions a pointer remembers (for rollback)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def new_version(kind: Kind, sha256: str, now: datetime | None = None) -> str:
    """``sentiment-20261207T163000123456Z-ab12cd34``: kind, creation time (UTC, to the microsecond) and
    the file's hash prefix (two trainings on the same data give the same file: the time tells them apart)."""
    now = now or datetime.now(UTC)
    return f"{kind}-{now.strftime('%Y%m%dT%H%M%S%fZ')}-{sha256[:8]}"


@dataclass
class ModelStore:
    """The model directory: cards, files and the active pointers."""

    root: Path

    def file(self, version: str) -> Path:
        return self.root / f"{version}.joblib"

    def card_path(self, version: str) -> Path:
        return self.root / f"{version}.json"

    def pointer(self, kind: Kind) -> Path:
        return self.root / f"active-{kind}.json"

    def write_card(self, card: dict[str, Any]) -> Path:
        path = self.card_path(card["version"])
        _write_json(path, card)
        return path

    def card(self, version: str) -> dict[str, Any]:
        """The card of ``version`` (ConfigError when there is none or it is not JSON)."""
        path = self.card_path(version)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"no model {version!r} in {self.root} (see `feedback models list`)") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"model card {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != version:
            raise ConfigError(f"model card {path}: not the card of {version}")
        return data

    def cards(self, kind: Kind | None = None) -> list[dict[str, Any]]:
        """Every readable card, oldest first (unreadable ones are logged and skipped)."""
        out = []
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            if path.name.startswith("active-"):
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("unreadable model card skipped", path=str(path), error=str(exc))
                continue
            if isinstance(data, dict) and "version" in data and (kind is None or data.get("kind") == kind):
                out.append(data)
        return sorted(out, key=lambda c: (str(c.get("created_at")), c["version"]))

    def active(self, kind: Kind) -> dict[str, Any] | None:
        """The pointer of ``kind`` (``{"version", "file", "sha256", "activated_at", "history"}``) or None."""
        path = self.pointer(kind)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"active-model pointer {path}: {exc}") from exc
        return data if isinstance(data, dict) and data.get("version") else None

    def activate(self, version: str, history: list[str] | None = None) -> dict[str, Any]:
        """Make ``version`` its kind's active model (the file must exist and match its card)."""
        card = self.card(version)
        kind: Kind = card["kind"]
        path = self.file(version)
        from processors.linear_text import file_sha256

        if not path.is_file() or file_sha256(path) != card["sha256"]:
            raise ConfigError(f"model file {path} is missing or does not match its card: not activated")
        current = self.active(kind)
        if history is None:
            history = ([current["version"], *current.get("history", [])] if current else [])
        history = [v for v in history if v != version][:HISTORY]
        pointer = {"version": version, "kind": kind, "file": path.name, "sha256": card["sha256"],
                   "activated_at": datetime.now(UTC).isoformat(), "history": history}
        _write_json(self.pointer(kind), pointer)
        return pointer

    def rollback(self, kind: Kind) -> dict[str, Any] | None:
        """Re-activate the previously active version; with none before, deactivate (the shipped default
        takes over). Returns the new pointer, or None when the default is active now."""
        current = self.active(kind)
        if current is None:
            raise ConfigError(f"no trained {kind} model is active: nothing to roll back")
        history = list(current.get("history", []))
        while history:
            previous = history.pop(0)
            try:
                return self.activate(previous, history)
            except ConfigError as exc:
                log.warning("cannot roll back to this version; trying the one before", version=previous,
                            error=str(exc))
        self.pointer(kind).unlink()
        return None


class ActiveModel:
    """The processor's view of one kind's active model: re-reads the pointer at most every
    ``poll_seconds`` and loads a newly activated model; a model that cannot be loaded (missing, corrupt,
    altered) is refused with an error log line and the model in use stays in use.

    ``loader(path, sha256)`` loads a file; ``current`` is ``(version, model)`` or None (the default).
    """

    def __init__(self, store: ModelStore, kind: Kind, loader: Callable[[Path, str], Any],
                 poll_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.kind, self.loader, self.poll_seconds, self.clock = store, kind, loader, poll_seconds, clock
        self.current: tuple[str, Any] | None = None
        self._seen: tuple[float, int] | None = None  # the pointer's (mtime, size) last read
        self._next = 0.0
        self.refresh(force=True)

    def maybe_refresh(self) -> None:
        """Cheap: one clock read unless ``poll_seconds`` have passed."""
        if self.clock() >= self._next:
            self.refresh()

    def refresh(self, force: bool = False) -> None:
        self._next = self.clock() + self.poll_seconds
        path = self.store.pointer(self.kind)
        try:
            st = path.stat()
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._seen and not force:
            return
        self._seen = stamp
        if stamp is None:
            if self.current is not None:
                log.warning("no active trained model any more: using the shipped default", kind=self.kind,
                            previous=self.current[0])
            self.current = None
            return
        try:
            pointer = self.store.active(self.kind)
            if pointer is None:
                self.current = None
                return
            if self.current is not None and pointer["version"] == self.current[0]:
                return
            model = self.loader(self.store.root / pointer["file"], pointer["sha256"])
        except (ConfigError, KeyError, TypeError) as exc:
            log.error("refused the newly activated model; keeping the one in use", kind=self.kind,
                      pointer=str(path), error=str(exc),
                      in_use=self.current[0] if self.current else "shipped default")
            return
        log.info("activated model loaded", kind=self.kind, version=pointer["version"])
        self.current = (pointer["version"], model)

"""Typed errors: how a failure must be handled is decided by its type, not by its message."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of the project's errors."""


class ConfigError(PipelineError):
    """The configuration is wrong: never retried; the process says why and exits non-zero."""


class TransientError(PipelineError):
    """A dependency is unavailable for now: back off (at least ``retry_after`` seconds) and retry."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RecordError(PipelineError):
    """One record cannot be used: it goes to the dead-letter topic with ``reason``; the rest goes on."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

"""Retry policy as data, shared by the source and sink runners (and any client that must wait)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``first``, ``first * multiplier``, ... capped at ``maximum`` seconds, each
    delay scaled by a random factor in ``[1 - jitter, 1]``. A ``Retry-After`` from the other side is a
    lower bound: :meth:`Backoff.next` never returns less than it."""

    first: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.0

    def backoff(self) -> Backoff:
        return Backoff(self)


class Backoff:
    """The running state of one :class:`RetryPolicy`; :meth:`reset` after a success."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.current = policy.first
        self.failures = 0

    def next(self, retry_after: float | None = None) -> float:
        """The next delay (and advance); at least ``retry_after`` when the other side asked for it."""
        p = self.policy
        delay = min(self.current, p.maximum)
        if p.jitter:
            delay *= random.uniform(1.0 - p.jitter, 1.0)
        self.current = min(self.current * p.multiplier, p.maximum)
        self.failures += 1
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def reset(self) -> None:
        self.current = self.policy.first
        self.failures = 0

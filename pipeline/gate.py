"""The broker gate: how ``feedback up`` tells the children it keeps running that the broker restarted.

The supervisor owns one small file (``FEEDBACK_BROKER_GATE``, set only for its children) holding
``open N`` or ``closed N``: ``N`` counts the broker's starts. It writes ``closed N`` the moment it sees
the broker die, and ``open N+1`` once the broker is back *and* the topics are provisioned. A
publisher reads the gate before a send and again after the broker's acks, and reports the records
published only when both reads are the same open state. That is the whole rule, and it is exact: a
restarted embedded broker comes back empty and acknowledges records for topics it no longer lists
(they vanish when the topics are provisioned), and such an ack can only come after the broker died,
that is after the gate closed, so its request sees a different state after the acks and is refused
(``503`` with ``Retry-After``; the client sends again, and deterministic ids make that harmless).

Cost: two reads of a file of a few bytes per publish (a few microseconds each). Without the
setting (a broker the pipeline does not run, e.g. Apache Kafka) the gate is always open.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GateState:
    open: bool
    epoch: int

    def __str__(self) -> str:
        return f"{'open' if self.open else 'closed'} {self.epoch}"


ALWAYS_OPEN = GateState(open=True, epoch=0)
#: A gate file that is missing or unreadable: closed (the supervisor writes it before it starts a child).
UNKNOWN = GateState(open=False, epoch=-1)


class BrokerGate:
    """Reads (children) and writes (the supervisor) the gate file; ``path=None`` is always open."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def read(self) -> GateState:
        if self.path is None:
            return ALWAYS_OPEN
        try:
            word, _, epoch = self.path.read_text(encoding="ascii").partition(" ")
            return GateState(open=word == "open", epoch=int(epoch))
        except (OSError, ValueError):
            return UNKNOWN

    def write(self, state: GateState) -> None:
        """Replace the file atomically (a reader sees the old state or the new one, never half)."""
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(str(state), encoding="ascii")
        os.replace(tmp, self.path)

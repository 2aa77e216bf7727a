"""``feedback import-mbox PATH``: backfill an mbox file or a folder of ``.eml`` files.

Same parsing and publishing path as the IMAP connector (:class:`~connectors.email.ingest.Ingestor`);
messages whose feedback_id the warehouse already holds, or that appeared earlier in the same
import, count as duplicates and are not published again, so an import can simply be re-run.
"""

from __future__ import annotations

import mailbox
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from connectors.email.checkpoint import CheckpointStore
from connectors.email.ingest import Ingestor, RawMail, Summary
from connectors.email.parse import ParseOptions
from connectors.email.settings import EmailSettings
from pipeline.errors import ConfigError, TransientError
from pipeline.logging import get_logger

log = get_logger(__name__)

BATCH = 200
_FROM_DATE = re.compile(rb"^From \S+\s+(.+?)\s*$")


def from_line_date(raw: bytes) -> datetime | None:
    """The date of an mbox ``From sender Sat Jan  3 01:05:34 1996`` line, when there is one."""
    if not raw.startswith(b"From "):
        return None
    line = raw.split(b"\n", 1)[0].rstrip(b"\r")
    match = _FROM_DATE.match(line)
    if not match:
        return None
    text = " ".join(match.group(1).decode("ascii", "replace").split())
    for fmt in ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M %Y"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def count_messages(path: Path) -> int:
    if path.is_dir():
        return sum(1 for _ in path.rglob("*.eml"))
    if path.suffix.lower() == ".eml":
        return 1
    return len(mailbox.mbox(str(path), create=False))


def iter_messages(path: Path) -> Iterator[RawMail]:
    """The archive's messages in order: an mbox file, one ``.eml`` file, or a folder of them."""
    if not path.exists():
        raise ConfigError(f"no such file or folder: {path}")
    if path.is_dir() or path.suffix.lower() == ".eml":
        files = sorted(path.rglob("*.eml")) if path.is_dir() else [path]
        for file in files:
            raw = file.read_bytes()
            name = str(file.relative_to(path)) if path.is_dir() else file.name
            yield RawMail(raw=raw, internaldate=from_line_date(raw), attributes={"archive": name},
                          location=f"file {file}")
        return
    box = mailbox.mbox(str(path), create=False)
    try:
        for n, key in enumerate(box.iterkeys()):
            raw = box.get_bytes(key, from_=True)
            yield RawMail(raw=raw, internaldate=from_line_date(raw), attributes={"archive": path.name},
                          location=f"{path.name} message {n + 1}")
    finally:
        box.close()


def import_archive(path: Path, settings: EmailSettings, ingestor: Ingestor,
                   advance: Callable[[int], None] | None = None, retries: int = 5) -> Summary:
    """Import every message of ``path``; returns the summary (it adds up to ``read``)."""
    total = Summary()
    batch: list[RawMail] = []

    def flush() -> None:
        for attempt in range(1, retries + 1):
            try:
                total.add(ingestor.ingest(batch))
                break
            except TransientError as exc:
                if attempt == retries:
                    raise
                delay = max(exc.retry_after or 0, 2.0 ** attempt)
                log.warning("broker or warehouse unavailable; retrying batch", error=str(exc)[:300],
                            retry_in=delay)
                time.sleep(delay)
        if advance:
            advance(len(batch))
        batch.clear()

    for mail in iter_messages(path):
        batch.append(mail)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return total


def make_ingestor(settings: EmailSettings) -> tuple[Ingestor, object]:
    """An ingestor publishing through a fresh Publisher; returns it and the publisher (to close)."""
    from pipeline.publisher import Publisher
    from pipeline.state import engine_for
    from pipeline.topics import ensure_topics

    ensure_topics(settings)
    publisher = Publisher(settings, client_id="feedback-import-mbox")
    store = CheckpointStore(engine_for(settings.database_url))
    return Ingestor(ParseOptions.from_settings(settings), publisher, known=store), publisher

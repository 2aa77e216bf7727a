"""The IMAP connector (``feedback connector email``): mailbox folders -> ``feedback.raw``.

:class:`ImapConnector` is a :class:`~pipeline.sources.PollingSource` run by the kernel's
:class:`~pipeline.sources.SourceRunner`. A batch is a run of messages of one folder above the folder's
checkpoint (UIDVALIDITY + last UID), read in UID order; the shared
:class:`~connectors.email.ingest.Ingestor` turns it into records and dead letters; the runner publishes
them and waits for the broker's acks, the connector then applies the after-processing action, and only
then does the runner save the batch's last UID in the state store. When every folder is read the
connector waits in IMAP IDLE (when the server has it) or sleeps.
"""

from __future__ import annotations

import contextlib
import imaplib
import signal
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from imapclient import SEEN, IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from connectors.email.checkpoint import CheckpointStore, cursor, namespace
from connectors.email.ingest import Ingestor, Prepared, RawMail, Summary
from connectors.email.parse import ParseOptions
from connectors.email.settings import EmailSettings
from pipeline import metrics
from pipeline.errors import ConfigError, TransientError
from pipeline.logging import get_logger
from pipeline.publisher import Publisher
from pipeline.retry import RetryPolicy
from pipeline.sources import Batch, PollingSource, SourceRunner, StateView
from pipeline.state import StateStore, engine_for
from pipeline.topics import ensure_topics

log = get_logger(__name__)

BATCH_BYTES = 32 * 1024 * 1024
_IMAP_ERRORS = (IMAPClientError, imaplib.IMAP4.error, OSError, EOFError)


@dataclass
class FolderBatch:
    """What the connector needs back once a batch was acknowledged."""

    client: IMAPClient
    folder: str
    uids: list[int]
    prepared: Prepared | None = None


class ImapConnector(PollingSource):
    """Polls one IMAP account's folders and publishes every message once.

    Guarantees: a folder's checkpoint moves past a UID only after the broker acknowledged the
    records and dead letters of every message up to it, and after the after-processing action;
    a new UIDVALIDITY re-reads the folder, and messages whose feedback_id the warehouse already
    holds are not published again (ids are deterministic, so a re-publish is harmless anyway);
    connection, broker and database failures are retried with backoff from the last checkpoint;
    one bad message never stops the connector (it becomes a dead letter).
    """

    name = "email"
    retry_on = _IMAP_ERRORS

    def __init__(self, settings: EmailSettings, publisher: Publisher | None = None,
                 store: CheckpointStore | None = None) -> None:
        settings.require_imap()
        self.settings = settings
        self.publisher = publisher
        self.store = store
        self.ingestor: Ingestor | None = None
        self.account = settings.account
        self.namespace = namespace(self.account)
        self.poll_interval = settings.imap_poll_seconds
        self.client: IMAPClient | None = None
        self._plan: Iterator[Batch] | None = None
        self.runner = SourceRunner(self, self._publisher, self._state,
                                   retry=RetryPolicy(first=1.0, maximum=settings.imap_backoff_max_seconds, jitter=0.2))
        if settings.imap_security == "none" and settings.imap_host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("IMAP without TLS to a remote host: the password travels in clear text",
                        host=settings.imap_host)

    def stop(self) -> None:
        self.runner.stop()

    def run(self) -> None:
        """Run until :meth:`stop`; ConfigError propagates, everything else is retried (by the runner)."""
        self.runner.run()

    # -- dependencies, made by the runner inside its retry loop ---------------------------------
    def _state(self) -> StateStore:
        if self.store is None:
            store = CheckpointStore(engine_for(self.settings.database_url))
            store.state.setup()
            self.store = store
        return self.store.state

    def _publisher(self) -> Publisher:
        if self.publisher is None:
            ensure_topics(self.settings)
            self.publisher = Publisher(self.settings, client_id="feedback-email")
        return self.publisher

    def _dependencies(self) -> None:
        self._state()
        self._publisher()
        if self.ingestor is None:
            user = self.settings.imap_user or ""
            self.ingestor = Ingestor(ParseOptions.from_settings(self.settings), self._publisher(), known=self.store,
                                     channel=user.lower() if "@" in user else self.account)

    # -- the PollingSource hooks --------------------------------------------------------------
    def open(self, state: StateView) -> None:
        super().open(state)
        self._dependencies()
        self.client = self.connect()
        self._check_folders(self.client)
        self._plan = None

    def next_batch(self) -> Batch:
        """The next batch of the current cycle over the folders; an idle batch ends the cycle."""
        assert self.client is not None
        if self._plan is None:
            client = self.client
            self._plan = (b for folder in self.settings.imap_folders for b in self.folder_batches(client, folder))
        batch = next(self._plan, None)
        if batch is None:
            self._plan = None
            return Batch(idle=True)
        return batch

    def acknowledged(self, batch: Batch) -> None:
        part: FolderBatch | None = batch.context
        if part is not None and part.uids:
            self._after_processing(part.client, part.uids)

    def saved(self, batch: Batch) -> None:
        part: FolderBatch | None = batch.context
        if part is None or not part.uids:
            return
        metrics.EMAIL_CHECKPOINT_UID.labels(part.folder).set(part.uids[-1])
        if part.prepared is not None and self.ingestor is not None:
            self.ingestor.finish(part.prepared)
            log.info("batch published", folder=part.folder, uids=f"{part.uids[0]}-{part.uids[-1]}",
                     **{k: v for k, v in part.prepared.summary.as_dict().items() if v})

    def interrupted(self, exc: Exception) -> None:
        metrics.EMAIL_CONNECTION_ERRORS.labels("broker_or_store" if isinstance(exc, TransientError) else "imap").inc()

    def wait(self, stop: threading.Event) -> None:
        if self.client is not None:
            self._wait(self.client, stop)

    def close(self) -> None:
        client, self.client, self._plan = self.client, None, None
        if client is not None:
            with contextlib.suppress(Exception):  # the connection may already be gone
                client.logout()

    # -- connection --------------------------------------------------------------------------
    def connect(self) -> IMAPClient:
        s = self.settings
        ctx = ssl.create_default_context(cafile=str(s.imap_ca_file) if s.imap_ca_file else None)
        host, port = str(s.imap_host), s.port
        try:
            if s.imap_security == "ssl":
                client = IMAPClient(host, port=port, ssl=True, ssl_context=ctx, timeout=s.imap_timeout_seconds)
            else:
                client = IMAPClient(host, port=port, ssl=False, timeout=s.imap_timeout_seconds)
                if s.imap_security == "starttls":
                    if not client.has_capability("STARTTLS"):
                        raise ConfigError(f"FEEDBACK_IMAP_SECURITY=starttls but {host}:{port} offers no STARTTLS")
                    client.starttls(ctx)
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(
                f"TLS certificate of {host} not trusted ({exc}); "
                "set FEEDBACK_IMAP_CA_FILE to the CA that issued it") from exc
        client.normalise_times = False  # INTERNALDATE as timezone-aware datetimes
        token = s.oauth2_token()
        try:
            if token:
                client.oauth2_login(s.imap_user, token)
            else:
                assert s.imap_password is not None
                client.login(s.imap_user, s.imap_password.get_secret_value())
        except LoginError as exc:
            if "UNAVAILABLE" in str(exc).upper():
                raise TransientError(f"IMAP server not ready for login: {exc}", retry_after=2) from exc
            raise ConfigError(f"IMAP login as {s.imap_user} at {host}:{port} failed: {exc}") from exc
        log.info("connected", host=host, port=port, security=s.imap_security, folders=s.imap_folders,
                 idle=s.imap_idle and client.has_capability("IDLE"))
        return client

    def _check_folders(self, client: IMAPClient) -> None:
        for folder in self.settings.imap_folders:
            if not client.folder_exists(folder):
                raise ConfigError(f"FEEDBACK_IMAP_FOLDERS: no folder {folder!r} on {self.settings.imap_host}")
        target = self.settings.imap_move_to
        if self.settings.imap_after_processing == "move" and target and not client.folder_exists(target):
            client.create_folder(target)
            log.info("created folder for processed mail", folder=target)

    # -- one folder --------------------------------------------------------------------------
    def sync_folder(self, client: IMAPClient, folder: str) -> Summary:
        """Read and deliver everything above the folder's checkpoint; returns what became of it."""
        self._dependencies()
        total = Summary()
        for batch in self.folder_batches(client, folder):
            self.runner.deliver(batch)
            if batch.context is not None and batch.context.prepared is not None:
                total.add(batch.context.prepared.summary)
        return total

    def folder_batches(self, client: IMAPClient, folder: str) -> Iterator[Batch]:
        """The batches above the folder's checkpoint, each with the cursor it advances to."""
        assert self.store is not None and self.ingestor is not None
        info = client.select_folder(folder, readonly=self.settings.imap_after_processing == "none")
        uidvalidity = int(info[b"UIDVALIDITY"])
        checkpoint = self.store.get(self.account, folder)
        last = 0
        if checkpoint is not None and checkpoint.uidvalidity == uidvalidity:
            last = checkpoint.last_uid
        elif checkpoint is not None:
            metrics.EMAIL_UIDVALIDITY_RESETS.labels(folder).inc()
            log.warning("UIDVALIDITY changed: re-reading the folder; known messages are not published again",
                        folder=folder, old=checkpoint.uidvalidity, new=uidvalidity)
        uids = [] if int(info.get(b"EXISTS", 0)) == 0 else sorted(
            u for u in client.search(["UID", f"{last + 1}:*"]) if u > last)
        if not uids:
            if checkpoint is None or checkpoint.uidvalidity != uidvalidity:
                yield Batch(cursors={folder: cursor(uidvalidity, last)})
            return
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 1000):
            for uid, data in client.fetch(uids[start:start + 1000], ["RFC822.SIZE"]).items():
                sizes[uid] = int(data.get(b"RFC822.SIZE", 0))
        for part in self._batches(uids, sizes):
            prepared = self.ingestor.prepare(self._fetch(client, folder, uidvalidity, part, sizes))
            yield Batch(records=prepared.records, dead_letters=prepared.letters,
                        skipped=prepared.summary.skipped_by_reason.copy(),
                        cursors={folder: cursor(uidvalidity, part[-1])},
                        context=FolderBatch(client, folder, part, prepared))

    def _batches(self, uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
        batch: list[int] = []
        size = 0
        for uid in uids:
            item = min(sizes.get(uid, 0), self.settings.imap_max_message_bytes)
            if batch and (len(batch) >= self.settings.imap_batch_size or size + item > BATCH_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(uid)
            size += item
        if batch:
            yield batch

    def _fetch(self, client: IMAPClient, folder: str, uidvalidity: int, batch: list[int],
               sizes: dict[int, int]) -> list[RawMail]:
        limit = self.settings.imap_max_message_bytes
        big = {u for u in batch if sizes.get(u, 0) > limit}
        normal = [u for u in batch if u not in big]
        data: dict[int, Any] = dict(client.fetch(normal, ["BODY.PEEK[]", "INTERNALDATE"])) if normal else {}
        for uid in sorted(big):  # only the beginning: the text comes first, attachments are not stored
            data.update(client.fetch([uid], [f"BODY.PEEK[]<0.{limit}>", "INTERNALDATE"]))
        mails = []
        for uid in batch:
            item = data.get(uid)
            if item is None:  # expunged since the search
                continue
            raw = item.get(b"BODY[]") or item.get(b"BODY[]<0>") or b""
            mails.append(RawMail(
                raw=bytes(raw), internaldate=item.get(b"INTERNALDATE"),
                attributes={"imap_folder": folder, "imap_uid": uid, "imap_uidvalidity": uidvalidity},
                location=f"{self.account}/{folder} uid {uid} uidvalidity {uidvalidity}",
                partial=uid in big, full_size=sizes.get(uid),
            ))
        return mails

    def _after_processing(self, client: IMAPClient, uids: list[int]) -> None:
        mode = self.settings.imap_after_processing
        if mode == "seen":
            client.add_flags(uids, [SEEN], silent=True)
        elif mode == "move":
            target = str(self.settings.imap_move_to)
            if client.has_capability("MOVE"):
                client.move(uids, target)
            else:
                client.copy(uids, target)
                client.delete_messages(uids, silent=True)
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(uids)
                else:
                    client.expunge()

    def _wait(self, client: IMAPClient, stop: threading.Event) -> None:
        """Until new mail (IDLE), the poll interval, or stop."""
        seconds = self.settings.imap_poll_seconds
        if not (self.settings.imap_idle and client.has_capability("IDLE")):
            stop.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        client.idle()
        try:
            while not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                responses = client.idle_check(timeout=min(1.0, remaining))
                if any(isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    break
        finally:
            client.idle_done()


def run(settings: EmailSettings) -> None:
    """``feedback connector email``: run until SIGINT/SIGTERM (the current batch is finished first)."""
    settings.require_imap()
    if settings.imap_metrics_port:
        metrics.serve(settings.imap_metrics_port)
    connector = ImapConnector(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: connector.stop())
    try:
        connector.run()
    finally:
        if connector.publisher is not None:
            connector.publisher.close()
        log.info("e-mail connector stopped")

"""The follow-up sink: for unhappy customers who agreed to be contacted, one ticket (Zendesk, Freshdesk)
or webhook call per feedback item, with a trail in ``followups``.

Rules: a record that carries a sealed contact (its ``contact`` field, set by the form with consent;
the warehouse sink keeps it in ``contacts``) gets a follow-up on ``FEEDBACK_FOLLOWUP_TARGET`` if its
NPS is at most ``FEEDBACK_FOLLOWUP_NPS_MAX`` (6: a detractor) or its CSAT at most
``FEEDBACK_FOLLOWUP_CSAT_MAX`` (2); and, with ``FEEDBACK_FOLLOWUP_INCIDENTS`` (see
:mod:`sinks.followups.incidents`), the consenting customers among an open incident's examples get one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

from cryptography.fernet import Fernet, InvalidToken
from prometheus_client import Counter
from pydantic import Field, SecretStr, model_validator
from sqlalchemy import Engine, insert, select, update

from pipeline.config import SinkSettings, metrics_port_field
from pipeline.errors import ConfigError, TransientError
from pipeline.logging import get_logger
from pipeline.schema import EnrichedFeedback
from pipeline.sink_runner import Rejected, Sink
from sinks.followups import incidents
from sinks.followups.models import FollowUp
from sinks.followups.targets import FollowUpRequest, Freshdesk, PermanentFailure, Target, Webhook, Zendesk

log = get_logger(__name__)
FOLLOWUPS = Counter("feedback_followups_total", "Follow-ups by target and outcome.", ["target", "outcome"])


class FollowupSettings(SinkSettings):
    """The follow-up sink. Validated at start-up: a target needs its URL, credentials and the contact key."""

    contact_key: SecretStr | None = Field(default=None, description="Fernet key the HTTP service seals with.")
    followup_target: Literal["none", "zendesk", "freshdesk", "webhook"] = "none"
    followup_url: str | None = Field(default=None, description="https://<you>.zendesk.com, "
                                     "https://<you>.freshdesk.com or the webhook's URL.")
    followup_user: str | None = Field(default=None, description="Zendesk: the agent e-mail of the API token.")
    followup_token: SecretStr | None = Field(default=None, description="Zendesk API token or Freshdesk API key.")
    followup_nps_max: int = Field(default=6, ge=-1, le=10, description="NPS at or below: follow up (-1: never).")
    followup_csat_max: int = Field(default=2, ge=0, le=5, description="CSAT at or below: follow up (0: never).")
    followup_tags: str = "feedback-followup"
    followup_incidents: bool = Field(default=False, description="Also follow up the consenting customers "
                                     "among an open incident's example comments.")
    followup_incident_max: int = Field(default=10, ge=1, le=1000, description="Follow-ups per incident at most.")
    followup_poll_seconds: float = Field(default=60.0, ge=0, description="How often the warehouse is asked for "
                                         "incidents and pending follow-ups.")
    metrics_port: int = metrics_port_field(9106, "FEEDBACK_FOLLOWUP_METRICS_PORT")  # 9105: the Zendesk poller

    @model_validator(mode="after")
    def _complete(self) -> FollowupSettings:
        if self.followup_target == "none":
            return self
        missing = [name for name, value in (("FEEDBACK_FOLLOWUP_URL", self.followup_url),
                                            ("FEEDBACK_CONTACT_KEY", self.contact_key)) if not value]
        if self.followup_target in ("zendesk", "freshdesk") and self.followup_token is None:
            missing.append("FEEDBACK_FOLLOWUP_TOKEN")
        if self.followup_target == "zendesk" and not self.followup_user:
            missing.append("FEEDBACK_FOLLOWUP_USER")
        if missing:
            raise ValueError(f"FEEDBACK_FOLLOWUP_TARGET={self.followup_target} needs {', '.join(missing)}")
        return self

    def target(self) -> Target | None:
        token = self.followup_token.get_secret_value() if self.followup_token else ""
        url = self.followup_url or ""
        if self.followup_target == "zendesk":
            return Zendesk(url, (f"{self.followup_user}/token", token))
        if self.followup_target == "freshdesk":
            return Freshdesk(url, (token, "X"))
        if self.followup_target == "webhook":
            return Webhook(url, None)
        return None


def follow_up_reason(item: EnrichedFeedback, nps_max: int, csat_max: int) -> str | None:
    """Why this item calls for a follow-up (``detractor`` / ``dissatisfied``), or None."""
    if item.nps_score is not None and item.nps_score <= nps_max:
        return "detractor"
    if item.csat_score is not None and item.csat_score <= csat_max:
        return "dissatisfied"
    return None


class FeedbackFacts(Protocol):
    """What a ticket says about a feedback item: an enriched record or a warehouse ``feedback`` row."""

    feedback_id: uuid.UUID | None
    nps_score: int | None
    csat_score: int | None
    text: str
    channel: str | None
    event_time: datetime

    @property
    def source(self) -> str: ...


class FollowupSink(Sink[EnrichedFeedback]):
    """Creates the follow-ups of consenting customers.

    Guarantees: the address is opened only to make the request (the token comes from the record or
    from ``contacts``); a feedback item gets at most one follow-up row and at most one ticket: the
    row is claimed (``pending`` -> ``sending``, one UPDATE) before the request and a row left
    ``sending`` by a crash becomes ``unknown`` at start-up instead of being sent again; a 429 or 5xx
    leaves the row ``pending`` and raises TransientError with the target's Retry-After, so the
    runner writes the batch again no sooner; a refusal is ``failed`` with the error. Writing a batch
    again changes nothing done. :meth:`tick` (every ``FEEDBACK_FOLLOWUP_POLL_SECONDS``) adds the
    incident rule's rows and sends every pending row from the warehouse, so nothing stays pending.
    """

    name = "followups"
    label = "follow-ups"
    model = EnrichedFeedback

    def __init__(self, settings: FollowupSettings, engine: Engine | None = None, target: Target | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.target = target if target is not None else settings.target()
        self._next_poll = 0.0
        key = settings.contact_key.get_secret_value().encode() if settings.contact_key else None
        try:
            self.fernet = Fernet(key) if key else None
        except ValueError as exc:
            raise ConfigError("FEEDBACK_CONTACT_KEY must be a Fernet key (32 bytes, url-safe base64)") from exc

    def setup(self) -> None:
        from sinks.warehouse.db import make_engine, migrate

        if self.engine is None:
            self.engine = make_engine(self.settings.database_url)
        migrate(self.engine)
        with self.engine.begin() as conn:
            interrupted = conn.execute(update(FollowUp).where(FollowUp.status == "sending").values(
                status="unknown", error="interrupted after the request was sent: check the target, not resent",
                updated_at=datetime.now(UTC))).rowcount
        if interrupted:
            log.warning("follow-ups interrupted while sending", count=interrupted)

    def write(self, items: Sequence[EnrichedFeedback]) -> Sequence[Rejected]:
        assert self.engine is not None, "setup() first"
        consenting = [i for i in items if i.contact and not i.is_ticket_state]
        if not consenting or self.target is None:
            return []
        now = datetime.now(UTC)
        ids = [i.feedback_id for i in consenting]
        with self.engine.begin() as conn:
            started = set(conn.execute(select(FollowUp.feedback_id).where(FollowUp.feedback_id.in_(ids))).scalars())
            new = [(i, r) for i in consenting if i.feedback_id not in started
                   and (r := follow_up_reason(i, self.settings.followup_nps_max, self.settings.followup_csat_max))]
            if new:
                conn.execute(insert(FollowUp), [
                    {"feedback_id": i.feedback_id, "customer_ref": i.customer_ref, "target": self.target.name,
                     "reason": reason, "status": "pending", "attempts": 0, "created_at": now,
                     "updated_at": now} for i, reason in new])
        self._deliver({i.feedback_id: i for i in consenting})
        return []

    def tick(self) -> None:
        """Every ``followup_poll_seconds``: the incident rule's new rows, then every pending row the
        warehouse can describe (item and contact stored). Never raises: a failure waits for the next turn."""
        if self.engine is None or self.target is None or time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + self.settings.followup_poll_seconds
        try:
            if self.settings.followup_incidents:
                added = incidents.add_incident_followups(self.engine, self.target.name,
                                                         self.settings.followup_incident_max)
                if added:
                    log.info("incident follow-ups added", count=added)
            for facts, token, reason in incidents.pending(self.engine):
                self._send_one(facts, token, reason)
        except TransientError as exc:
            self._next_poll = time.monotonic() + max(self.settings.followup_poll_seconds, exc.retry_after or 0.0)
            log.warning("follow-ups postponed", error=str(exc))
        except Exception as exc:  # a database outage or a bug: logged, tried again next turn
            log.warning("follow-up round failed", error=f"{type(exc).__name__}: {exc}"[:500])

    def _deliver(self, items: dict[uuid.UUID | None, EnrichedFeedback]) -> None:
        assert self.engine is not None and self.target is not None
        with self.engine.connect() as conn:
            pending = list(conn.execute(select(FollowUp.feedback_id, FollowUp.reason).where(
                FollowUp.feedback_id.in_([k for k in items if k is not None]), FollowUp.status == "pending")))
        position = {key: n for n, key in enumerate(items)}
        for feedback_id, reason in sorted(pending, key=lambda row: position[row[0]]):  # in the batch's order
            item = items[feedback_id]
            self._send_one(item, item.contact or "", reason)

    def _set(self, feedback_id: uuid.UUID | None, **values: object) -> int:
        assert self.engine is not None
        with self.engine.begin() as conn:
            return conn.execute(update(FollowUp).where(FollowUp.feedback_id == feedback_id)
                                .values(updated_at=datetime.now(UTC), **values)).rowcount

    def _send_one(self, item: FeedbackFacts, token: str, reason: str) -> None:
        assert self.target is not None and self.engine is not None
        try:
            email = self._open(token)
        except InvalidToken:
            self._set(item.feedback_id, status="failed", error="the contact cannot be opened with FEEDBACK_CONTACT_KEY")
            FOLLOWUPS.labels(self.target.name, "failed").inc()
            return
        with self.engine.begin() as conn:  # the claim: only one sender moves a row out of pending
            claimed = conn.execute(update(FollowUp).where(FollowUp.feedback_id == item.feedback_id,
                                                          FollowUp.status == "pending").values(
                status="sending", attempts=FollowUp.attempts + 1, updated_at=datetime.now(UTC))).rowcount
        if not claimed:
            return
        try:
            ticket = self.target.create(request_for(item, email, reason, self.settings.followup_tags))
        except TransientError as exc:
            self._set(item.feedback_id, status="pending", error=str(exc)[:2000])
            FOLLOWUPS.labels(self.target.name, "retry").inc()
            raise
        except PermanentFailure as exc:
            self._set(item.feedback_id, status="failed", error=str(exc)[:2000])
            FOLLOWUPS.labels(self.target.name, "failed").inc()
            return
        self._set(item.feedback_id, status="created", ticket_id=str(ticket)[:100], error=None)  # the column's width
        FOLLOWUPS.labels(self.target.name, "created").inc()

    def _open(self, token: str) -> str:
        if self.fernet is None:
            raise InvalidToken
        return self.fernet.decrypt(token.encode()).decode()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def request_for(item: FeedbackFacts, email: str, reason: str, tags: str) -> FollowUpRequest:
    """The ticket of one item: its scores and its (redacted) words, nothing else about the customer."""
    scores = ", ".join(f"{name} {value}" for name, value in (("NPS", item.nps_score), ("CSAT", item.csat_score))
                       if value is not None) or "no score"
    words = item.text or "(a score without a comment)"
    body = (f"A customer who agreed to be contacted gave feedback ({scores}) through "
            f"{item.channel or item.source} on {item.event_time:%Y-%m-%d %H:%M} UTC:\n\n{words}\n\n"
            f"Feedback id: {item.feedback_id}")
    what = "feedback in an incident" if reason.startswith(incidents.REASON) else f"{reason} feedback"
    return FollowUpRequest(str(item.feedback_id), email, f"Follow up: {what} ({scores})", body,
                           tuple(t.strip() for t in tags.split(",") if t.strip()))

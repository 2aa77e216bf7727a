"""Where a follow-up goes: a Zendesk or Freshdesk ticket through their documented create-ticket APIs,
or a JSON webhook.

- Zendesk: ``POST {base}/api/v2/tickets`` with ``{"ticket": {subject, comment: {body}, requester:
  {email}, external_id, tags}}``, basic auth ``{agent e-mail}/token:{API token}``; ``201`` answers
  ``{"ticket": {"id": ...}}``. An ``Idempotency-Key`` header (the feedback id) lets Zendesk drop a repeat.
- Freshdesk: ``POST {base}/api/v2/tickets`` with ``{email, subject, description, status: 2,
  priority, tags}``, basic auth ``{API key}:X``; ``201`` answers ``{"id": ...}``.
- Webhook: ``POST {url}`` with the follow-up as JSON; any 2xx; an ``id`` in a JSON answer is kept.

Both SaaS answer ``429`` with ``Retry-After`` (seconds) when rate limited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from pipeline.errors import TransientError


@dataclass(frozen=True)
class FollowUpRequest:
    """What a ticket is made of: no text the customer did not write, the address opened only here."""

    feedback_id: str
    email: str
    subject: str
    body: str
    tags: tuple[str, ...]


class PermanentFailure(Exception):
    """The target refused the request for good (4xx other than 408/429): recorded, never retried."""


def _retry_after(resp: httpx.Response) -> float:
    value = resp.headers.get("retry-after", "")
    try:
        return max(1.0, float(value))
    except ValueError:
        return 5.0


def _answer(resp: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON body of a 2xx; TransientError (with Retry-After) for 429/408/5xx; PermanentFailure else."""
    if resp.status_code == 429:
        raise TransientError(f"{what} rate limited (429, Retry-After {resp.headers.get('retry-after')})",
                             retry_after=_retry_after(resp))
    if resp.status_code == 408 or resp.status_code >= 500:
        raise TransientError(f"{what} answered {resp.status_code}", retry_after=_retry_after(resp))
    if not 200 <= resp.status_code < 300:
        raise PermanentFailure(f"{what} answered {resp.status_code}: {resp.text[:500]}")
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Target:
    """A follow-up target. Guarantees: :meth:`create` returns the ticket id (or None for a webhook
    without one), raises TransientError for what may pass (with Retry-After) and PermanentFailure
    for a refusal."""

    name = "target"

    def __init__(self, base_url: str, auth: tuple[str, str] | None, timeout: float = 15.0) -> None:
        self.base_url, self.auth, self.timeout = base_url.rstrip("/"), auth, timeout

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            return httpx.post(f"{self.base_url}{path}", json=body, auth=self.auth, headers=headers,
                              timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise TransientError(f"{self.name} unreachable: {exc}") from exc

    def create(self, req: FollowUpRequest) -> str | None:
        raise NotImplementedError


class Zendesk(Target):
    name = "zendesk"

    def create(self, req: FollowUpRequest) -> str | None:
        body = {"ticket": {"subject": req.subject, "comment": {"body": req.body, "public": False},
                           "requester": {"email": req.email}, "external_id": req.feedback_id,
                           "tags": list(req.tags)}}
        data = _answer(self.post("/api/v2/tickets", body, {"Idempotency-Key": req.feedback_id}), "Zendesk")
        ticket = data.get("ticket")
        if not isinstance(ticket, dict) or ticket.get("id") is None:
            raise PermanentFailure("Zendesk answered without a ticket id")
        return str(ticket["id"])


class Freshdesk(Target):
    name = "freshdesk"

    def create(self, req: FollowUpRequest) -> str | None:
        body = {"email": req.email, "subject": req.subject, "description": req.body.replace("\n", "<br>"),
                "status": 2, "priority": 2, "tags": list(req.tags)}
        data = _answer(self.post("/api/v2/tickets", body), "Freshdesk")
        if data.get("id") is None:
            raise PermanentFailure("Freshdesk answered without a ticket id")
        return str(data["id"])


class Webhook(Target):
    name = "webhook"

    def create(self, req: FollowUpRequest) -> str | None:
        body = {"feedback_id": req.feedback_id, "email": req.email, "subject": req.subject, "body": req.body,
                "tags": list(req.tags)}
        data = _answer(self.post("", body, {"Idempotency-Key": req.feedback_id}), "webhook")
        return str(data["id"]) if data.get("id") is not None else None

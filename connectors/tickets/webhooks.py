"""The ticket systems' webhook sources: Zendesk, Freshdesk, Jira and the generic signed format.

Each is a :class:`~pipeline.webhooks.WebhookSource` (``verify`` + ``map``), registered under the
``feedback.webhooks`` entry points and mounted by the HTTP service at ``POST /webhooks/<name>``
(see :mod:`connectors.http.webhooks` for the answers and counters). Authenticity: see
:mod:`connectors.tickets.auth`; mapping: the modules of each system.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connectors.tickets import auth, freshdesk, generic, jira, zendesk
from connectors.tickets.model import Mapped, RecordFactory
from pipeline.config import HttpSettings
from pipeline.webhooks import secrets_of

Mapper = Callable[[Any, RecordFactory], Mapped]


class TicketWebhook:
    """A ticket system's webhook. Guarantees: as :class:`~pipeline.webhooks.WebhookSource`; records carry
    deterministic ids (a re-delivery maps to the same ids); internal notes and agent replies are skipped
    with their reason."""

    ticket_system = True

    def __init__(self, settings: HttpSettings, name: str, setting: str, secret: Any, mapper: Mapper) -> None:
        self.name, self.setting = name, setting
        self.keys = secrets_of(secret)
        self.tolerance = settings.webhook_tolerance_seconds
        self.customer_key = settings.customer_key()
        self.mapper = mapper

    def configured(self) -> bool:
        return bool(self.keys)

    def verify(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> None:
        raise NotImplementedError

    def map(self, payload: Any) -> Mapped:
        return self.mapper(payload, RecordFactory(self.customer_key))


class ZendeskWebhook(TicketWebhook):
    """Zendesk webhook (event subscriptions for tickets; trigger body for satisfaction ratings)."""

    def verify(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> None:
        auth.check_zendesk(headers, body, self.keys, self.tolerance)


class GenericWebhook(TicketWebhook):
    """Any other ticket system, in the documented generic format, HMAC-signed."""

    def verify(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> None:
        auth.check_generic(headers, body, self.keys, self.tolerance)


class FreshdeskWebhook(TicketWebhook):
    """Freshdesk automation-rule webhook (simple or advanced JSON)."""

    def verify(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> None:
        auth.check_token(headers, query, body, self.keys)


class JiraWebhook(TicketWebhook):
    """Jira Service Management / Jira Cloud webhook."""

    def verify(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> None:
        auth.check_token(headers, query, body, self.keys, hub=True)


# -- the factories registered in pyproject.toml ([project.entry-points."feedback.webhooks"]) -------------
def zendesk_webhook(settings: HttpSettings) -> ZendeskWebhook:
    return ZendeskWebhook(settings, "zendesk", "FEEDBACK_ZENDESK_WEBHOOK_SECRET", settings.zendesk_webhook_secret,
                          zendesk.map_webhook)


def freshdesk_webhook(settings: HttpSettings) -> FreshdeskWebhook:
    return FreshdeskWebhook(settings, "freshdesk", "FEEDBACK_FRESHDESK_WEBHOOK_TOKEN",
                            settings.freshdesk_webhook_token, freshdesk.map_webhook)


def jira_webhook(settings: HttpSettings) -> JiraWebhook:
    return JiraWebhook(settings, "jira", "FEEDBACK_JIRA_WEBHOOK_TOKEN", settings.jira_webhook_token,
                       jira.map_webhook)


def generic_webhook(settings: HttpSettings) -> GenericWebhook:
    return GenericWebhook(settings, "generic", "FEEDBACK_GENERIC_WEBHOOK_SECRET", settings.generic_webhook_secret,
                          generic.map_webhook)

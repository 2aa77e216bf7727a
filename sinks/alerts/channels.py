"""Alert channels: the alerts topic, a Slack-compatible incoming webhook, a generic JSON webhook, e-mail.

Each channel delivers one alert event (an :class:`pipeline.signal_schema.Alert` with ``event`` and
``event_id``) or raises :class:`DeliveryError`. Retries, backoff and ordering are the dispatcher's
job (:mod:`sinks.alerts.dispatch`); every delivery carries the event id so receivers can drop a
repeat: the ``Idempotency-Key`` header (webhooks), ``event_id`` in the body, and the e-mail's
``Message-ID``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import httpx

from pipeline.signal_config import AlertSettings
from pipeline.signal_schema import Alert, Incident
from pipeline.topics import Topics

USER_AGENT = "feedback-pipeline-alerts/1"
#: HTTP answers that will not change on a retry (the event itself is refused); anything else retries.
PERMANENT_HTTP = {400, 413, 415, 422}
_ICON = {"opened": ":rotating_light:", "escalated": ":red_circle:", "updated": ":warning:",
         "acknowledged": ":eyes:", "resolved": ":white_check_mark:", "note": ":memo:"}


class DeliveryError(Exception):
    """A failed delivery: ``permanent`` ones are not retried; ``retry_after`` is the receiver's wish."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    def deliver(self, alert: Alert) -> None: ...

    def deliver_incident(self, incident: Incident) -> None: ...

    def close(self) -> None: ...


def incident_title(inc: Incident) -> str:
    where = f"{inc.driver_scope_type}={inc.driver_scope_value}"
    kind = "emerging theme" if inc.kind == "emerging_theme" else "incident"
    return f"[{inc.event or inc.status}] {inc.severity.upper()} {kind} {where}"


#: The signed acknowledge/resolve links of an incident (:func:`sinks.alerts.actions.link`), if configured.
Links = Callable[[Incident], dict[str, str]]


def action_links(settings: AlertSettings) -> Links | None:
    """Signed-link maker of the settings, or None when no action URL is configured."""
    if not settings.alert_action_url or settings.alert_action_secret is None:
        return None
    from sinks.alerts.actions import link

    base, secret = settings.alert_action_url, settings.alert_action_secret.get_secret_value().encode()
    ttl = settings.alert_action_ttl_seconds
    return lambda inc: {a: link(base, secret, a, inc.incident_id, ttl) for a in ("ack", "resolve")}


def incident_lines(inc: Incident, links: dict[str, str] | None = None) -> list[str]:
    """The incident in words, for people: summary, what is involved, examples, and how to act."""
    lines = [inc.summary, "",
             f"incident: {inc.incident_id} ({inc.status}, {inc.severity})",
             f"driver:   {inc.driver_scope_type} {inc.driver_scope_value}"
             + (f" ({inc.explained_share:.0%} of the rise overall)" if inc.explained_share is not None else ""),
             f"signals:  {', '.join(inc.signals) or '-'}; {len(inc.alerts)} alert(s)",
             f"started:  {inc.started_at:%Y-%m-%d %H:%M} UTC (event time)"]
    if inc.actor and inc.actor != "detector":
        lines.append(f"by:       {inc.actor}")
    if inc.note:
        lines.append(f"note:     {inc.note}")
    if inc.examples:
        lines += ["", "What customers said:"] + [f"  - {e}" for e in inc.examples]
    lines += ["", "Acknowledge:  feedback alerts ack " + str(inc.incident_id) + " --by NAME --note TEXT",
              "Resolve:      feedback alerts resolve " + str(inc.incident_id) + " --note TEXT"]
    if links and inc.status != "resolved":
        lines += [f"              or open {links['ack']}", f"              or open {links['resolve']} (resolve)"]
    return lines


def title(alert: Alert) -> str:
    return (f"[{alert.event or alert.status}] {alert.severity.upper()} {alert.signal} "
            f"{alert.scope_type}={alert.scope_value}")


def body_text(alert: Alert, link: str | None = None) -> str:
    lines = [alert.summary, "",
             f"alert:    {alert.alert_id} ({alert.status}, {alert.severity})",
             f"signal:   {alert.signal} - {alert.scope_type} {alert.scope_value}",
             f"window:   {alert.window_start:%Y-%m-%d %H:%M} - {alert.window_end:%Y-%m-%d %H:%M} UTC",
             f"observed: {alert.observed:.4g}   expected: {alert.expected:.4g}"
             + (f"   z: {alert.z_score:.2f}" if alert.z_score is not None else "")]
    if alert.actor and alert.actor != "detector":
        lines.append(f"by:       {alert.actor}")
    if alert.note:
        lines.append(f"note:     {alert.note}")
    lines += ["", "Acknowledge:  feedback alerts ack " + str(alert.alert_id) + " --by NAME --note TEXT",
              "Resolve:      feedback alerts resolve " + str(alert.alert_id) + " --note TEXT"]
    if link:
        lines.append(f"Dashboard:    {link}")
    return "\n".join(lines)


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _post(client: httpx.Client, url: str, content: bytes, headers: dict[str, str]) -> None:
    try:
        resp = client.post(url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if resp.is_success:
        return
    raise DeliveryError(f"HTTP {resp.status_code}: {resp.text[:200]}", permanent=resp.status_code in PERMANENT_HTTP,
                        retry_after=_retry_after(resp))


class KafkaChannel:
    """The ``feedback.alerts`` topic, keyed by alert id (every event, also updates)."""

    name = "kafka"

    def __init__(self, settings: AlertSettings, publisher: Any | None = None) -> None:
        from pipeline.publisher import Publisher

        self.topic = Topics.from_settings(settings).alerts
        self.publisher = publisher or Publisher(settings, client_id="feedback-alert-sink")

    def deliver(self, alert: Alert) -> None:
        try:
            self.publisher.publish_bytes(self.topic, [(str(alert.alert_id).encode(),
                                                       alert.model_dump_json().encode())])
        except Exception as exc:  # the broker is away: retried
            raise DeliveryError(f"broker: {exc}") from exc

    def deliver_incident(self, incident: Incident) -> None:
        try:
            self.publisher.publish_bytes(self.topic, [(str(incident.incident_id).encode(),
                                                       incident.model_dump_json().encode())])
        except Exception as exc:  # the broker is away: retried
            raise DeliveryError(f"broker: {exc}") from exc

    def close(self) -> None:
        self.publisher.close()


class SlackChannel:
    """A Slack incoming webhook (or a compatible one: Mattermost, Rocket.Chat): ``text`` plus blocks."""

    name = "slack"

    def __init__(self, url: str, timeout: float, link: str | None = None, actions: Links | None = None) -> None:
        self.url = url
        self.link = link
        self.actions = actions
        self.client = httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT})

    @staticmethod
    def _escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def payload(self, alert: Alert) -> dict[str, Any]:
        icon = _ICON.get(alert.event or "", ":bell:")
        head = f"{icon} *{self._escape(title(alert))}*"
        detail = (f"alert `{alert.alert_id}` · observed {alert.observed:.4g} · expected {alert.expected:.4g}"
                  + (f" · by {self._escape(alert.actor)}" if alert.actor and alert.actor != "detector" else "")
                  + (f" · note: {self._escape(alert.note)}" if alert.note else ""))
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{head}\n{self._escape(alert.summary)}"[:2900]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": detail[:2900]}]},
        ]
        if self.link:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{self.link}|dashboard>"}]})
        return {"text": f"{title(alert)}: {alert.summary}"[:3000], "blocks": blocks}

    def deliver(self, alert: Alert) -> None:
        _post(self.client, self.url, json.dumps(self.payload(alert)).encode(),
              {"Content-Type": "application/json", "Idempotency-Key": str(alert.event_id)})

    def incident_payload(self, inc: Incident) -> dict[str, Any]:
        icon = _ICON.get(inc.event or "", ":bell:")
        head = f"{icon} *{self._escape(incident_title(inc))}*\n{self._escape(inc.summary)}"
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": head[:2900]}}]
        if inc.examples:
            quoted = "\n".join("> " + self._escape(e[:300]) for e in inc.examples)
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": f"*What customers said*\n{quoted}"[:2900]}})
        detail = (f"incident `{inc.incident_id}` · signals {', '.join(inc.signals)} · {len(inc.alerts)} alert(s)"
                  f" · started {inc.started_at:%a %d %b %H:%M} UTC"
                  + (f" · by {self._escape(inc.actor)}" if inc.actor and inc.actor != "detector" else "")
                  + (f" · note: {self._escape(inc.note)}" if inc.note else ""))
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": detail[:2900]}]})
        commands = (f"`feedback alerts ack {inc.incident_id}` · `feedback alerts resolve {inc.incident_id}`")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": commands}]})
        if self.actions is not None and inc.status != "resolved" and inc.event != "test":
            links = self.actions(inc)
            blocks.append({"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"}, "url": links["ack"],
                 "action_id": "ack"},
                {"type": "button", "text": {"type": "plain_text", "text": "Resolve"}, "url": links["resolve"],
                 "style": "danger", "action_id": "resolve"}]})
        if self.link:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{self.link}|dashboard>"}]})
        return {"text": f"{incident_title(inc)}: {inc.summary}"[:3000], "blocks": blocks}

    def deliver_incident(self, incident: Incident) -> None:
        _post(self.client, self.url, json.dumps(self.incident_payload(incident)).encode(),
              {"Content-Type": "application/json", "Idempotency-Key": str(incident.event_id)})

    def close(self) -> None:
        self.client.close()


class WebhookChannel:
    """A generic JSON webhook: ``{"event", "event_id", "alert": {...}}``, HMAC-signed when a secret is set.

    Headers: ``Idempotency-Key`` and ``X-Feedback-Event-Id`` (the event id), ``X-Feedback-Event``,
    and ``X-Feedback-Signature: sha256=<hex HMAC of the body>``.
    """

    name = "webhook"

    def __init__(self, url: str, timeout: float, secret: bytes | None = None) -> None:
        self.url = url
        self.secret = secret
        self.client = httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT})

    def deliver(self, alert: Alert) -> None:
        body = json.dumps({"event": alert.event, "event_id": str(alert.event_id),
                           "alert": json.loads(alert.model_dump_json())}, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(alert.event_id),
                   "X-Feedback-Event-Id": str(alert.event_id), "X-Feedback-Event": alert.event or ""}
        if self.secret:
            headers["X-Feedback-Signature"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        _post(self.client, self.url, body, headers)

    def deliver_incident(self, incident: Incident) -> None:
        """``{"event", "event_id", "incident": {...}}``, with the same headers as an alert event."""
        body = json.dumps({"event": incident.event, "event_id": str(incident.event_id),
                           "incident": json.loads(incident.model_dump_json())}, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(incident.event_id),
                   "X-Feedback-Event-Id": str(incident.event_id), "X-Feedback-Event": incident.event or ""}
        if self.secret:
            headers["X-Feedback-Signature"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        _post(self.client, self.url, body, headers)

    def close(self) -> None:
        self.client.close()


class EmailChannel:
    """E-mail over SMTP: STARTTLS (default), implicit TLS or plain; login when a user is set."""

    name = "email"

    def __init__(self, settings: AlertSettings) -> None:
        assert settings.alert_smtp_host
        self.s = settings
        self.actions = action_links(settings)
        self.context = ssl.create_default_context(
            cafile=str(settings.alert_smtp_cafile) if settings.alert_smtp_cafile else None)

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[feedback] {title(alert)}"
        msg["From"] = self.s.alert_smtp_from
        msg["To"] = ", ".join(self.s.alert_smtp_to)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = f"<{alert.event_id}@feedback-pipeline>"
        msg["X-Feedback-Alert-Id"] = str(alert.alert_id)
        msg.set_content(body_text(alert, self.s.alert_link_url))
        return msg

    def incident_message(self, inc: Incident) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[feedback] {incident_title(inc)}"
        msg["From"] = self.s.alert_smtp_from
        msg["To"] = ", ".join(self.s.alert_smtp_to)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = f"<{inc.event_id}@feedback-pipeline>"
        msg["X-Feedback-Incident-Id"] = str(inc.incident_id)
        links = self.actions(inc) if self.actions is not None and inc.event != "test" else None
        lines = incident_lines(inc, links) + ([f"Dashboard:    {self.s.alert_link_url}"] if self.s.alert_link_url
                                              else [])
        msg.set_content("\n".join(lines))
        return msg

    def deliver(self, alert: Alert) -> None:
        self._send(self.message(alert))

    def deliver_incident(self, incident: Incident) -> None:
        self._send(self.incident_message(incident))

    def _send(self, message: EmailMessage) -> None:
        s = self.s
        host, port, timeout = s.alert_smtp_host or "", s.alert_smtp_port, s.alert_smtp_timeout_seconds
        try:
            if s.alert_smtp_security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=self.context)
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            with smtp:
                smtp.ehlo()
                if s.alert_smtp_security == "starttls":
                    smtp.starttls(context=self.context)
                    smtp.ehlo()
                if s.alert_smtp_username:
                    password = s.alert_smtp_password.get_secret_value() if s.alert_smtp_password else ""
                    smtp.login(s.alert_smtp_username, password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:  # a setting to fix: keep the mail and retry
            raise DeliveryError(f"SMTP login refused: {exc.smtp_code}") from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300],
                                permanent=500 <= exc.smtp_code < 600 and exc.smtp_code != 530) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP recipients refused: {list(exc.recipients)}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        pass


def channels_from(settings: AlertSettings, with_kafka: bool = True) -> list[Channel]:
    """The channels the settings configure (the alerts topic always, the others when set)."""
    out: list[Channel] = []
    if with_kafka:
        out.append(KafkaChannel(settings))
    if settings.alert_slack_webhook_url is not None:
        out.append(SlackChannel(settings.alert_slack_webhook_url.get_secret_value(),
                                settings.alert_http_timeout_seconds, settings.alert_link_url, action_links(settings)))
    if settings.alert_webhook_url is not None:
        secret = settings.alert_webhook_secret.get_secret_value().encode() if settings.alert_webhook_secret else None
        out.append(WebhookChannel(settings.alert_webhook_url.get_secret_value(), settings.alert_http_timeout_seconds,
                                  secret))
    if settings.alert_smtp_host:
        out.append(EmailChannel(settings))
    return out

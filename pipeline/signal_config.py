"""Settings of the degrading signals and alerts (processors/signals, sinks/alerts), backfill and replay
(connectors/backfill) and the report (sinks/report): environment variables with the ``FEEDBACK_`` prefix,
read and validated like every other setting (:func:`pipeline.config.load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from pipeline.config import CommonSettings, SinkSettings, metrics_port_field

# -- degrading signals and alerts (processors/signals, sinks/alerts) -------------------------------
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SIGNAL_NAMES = ("negative_share", "mean_sentiment", "nps", "csat", "volume")
SIGNAL_SCOPE_TYPES = ("overall", "source", "channel", "category", "product")
SENSITIVITY_LEVELS = ("off", "low", "normal", "high")


def parse_duration(value: Any) -> int:
    """``"1h"``, ``"15m"``, ``"1d"``, ``"90s"``, ``"2w"`` or a number of seconds -> whole seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower()
    if text.isdigit():
        return int(text)
    if len(text) >= 2 and text[-1] in _DURATION_UNITS and text[:-1].strip().isdigit():
        return int(text[:-1]) * _DURATION_UNITS[text[-1]]
    raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 1h, 1d)")


class SignalSettings(CommonSettings):
    """Event-time signal windows and the detector's defaults (processors/signals, sinks/alerts)."""

    signal_window: int = Field(default=3600, description="Window of overall/source/channel/category (1h).")
    signal_slow_window: int = Field(default=86400, description="Window of the slow scopes (1d).")
    signal_slow_scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["product"], description="Scope types on the slow window (comma-separated).")
    signal_allowed_lateness: int = Field(default=900, ge=0, description="Event-time lateness accepted (15m).")
    signal_idle_close: int = Field(default=300, ge=1, description="Idle time after which a live stream's "
                                   "windows close by the wall clock (5m).")
    signal_checkpoint_seconds: float = Field(default=30.0, gt=0)
    signal_min_sample: int = Field(default=30, ge=1, description="Fewest responses a window needs to be judged.")
    signal_cold_start: int = Field(default=14, ge=2, description="Judged windows needed before any alert.")
    signal_baseline_windows: int = Field(default=14, ge=2)
    signal_resolve_after: int = Field(default=3, ge=1, description="In-control windows that resolve an alert.")
    signal_sensitivity: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="Per signal: off|low|normal|high, e.g. 'nps=high,volume=off'.")

    @field_validator("signal_window", "signal_slow_window", "signal_allowed_lateness", "signal_idle_close",
                     mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @field_validator("signal_window", "signal_slow_window")
    @classmethod
    def _aligned(cls, value: int) -> int:
        if value < 60 or (86400 % value and (value % 86400 or 604800 % value)):
            raise ValueError("a window must be >= 1m and divide a day (15m, 1h, 6h, 1d) or a week (1w)")
        return value

    @field_validator("signal_slow_scopes", mode="before")
    @classmethod
    def _scopes(cls, value: Any) -> Any:
        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        bad = [s for s in items or [] if s not in SIGNAL_SCOPE_TYPES]
        if bad:
            raise ValueError(f"unknown scope type(s) {bad}; known: {', '.join(SIGNAL_SCOPE_TYPES)}")
        return items

    @field_validator("signal_sensitivity", mode="before")
    @classmethod
    def _sensitivity(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("use signal=level pairs, e.g. 'nps=high,volume=off'")
            value = {k.strip(): v.strip().lower() for k, v in pairs}
        for key, level in dict(value).items():
            if key not in SIGNAL_NAMES:
                raise ValueError(f"unknown signal {key!r}; known: {', '.join(SIGNAL_NAMES)}")
            if level not in SENSITIVITY_LEVELS:
                raise ValueError(f"{key}: sensitivity must be one of {', '.join(SENSITIVITY_LEVELS)}")
        return value


class AlertSettings(SignalSettings, SinkSettings):
    """The alert sink (``feedback sink alerts``): detector, lifecycle, warehouse and channels."""

    metrics_port: int = metrics_port_field(9103, "FEEDBACK_ALERT_METRICS_PORT")
    alert_slack_webhook_url: SecretStr | None = Field(default=None, description="Slack incoming-webhook URL.")
    alert_webhook_url: SecretStr | None = Field(default=None, description="Generic JSON webhook URL.")
    alert_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key; signs the body in X-Feedback-Signature.")
    alert_smtp_host: str | None = None
    alert_smtp_port: int = Field(default=587, ge=1, le=65535)
    alert_smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    alert_smtp_username: str | None = None
    alert_smtp_password: SecretStr | None = None
    alert_smtp_cafile: Path | None = Field(default=None, description="CA bundle for a private SMTP server.")
    alert_smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    alert_smtp_from: str = "feedback-alerts@localhost"
    alert_smtp_to: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Comma-separated.")
    alert_http_timeout_seconds: float = Field(default=10.0, gt=0)
    alert_retry_initial_seconds: float = Field(default=2.0, gt=0)
    alert_retry_max_seconds: float = Field(default=300.0, gt=0)
    alert_notify_updates: bool = Field(default=False, description="Also notify every 'updated' event.")
    alert_notify_member_alerts: bool = Field(
        default=False, description="Also send each member alert's events to people (not only incidents).")
    alert_theme_watch_seconds: float = Field(
        default=3600.0, ge=0, description="How often the alert sink looks for emerging complaint themes (0: never).")
    alert_action_url: str | None = Field(
        default=None, description="Base URL of the alert sink's action server as operators reach it: signed "
        "acknowledge/resolve links in Slack and e-mail (needs FEEDBACK_ALERT_ACTION_SECRET).")
    alert_action_secret: SecretStr | None = Field(default=None, description="HMAC key of the action links.")
    alert_action_port: int = Field(default=9104, ge=1, le=65535, description="Port of the action server.")
    alert_action_ttl_seconds: float = Field(default=7 * 86400.0, gt=0, description="How long an action link works.")
    alert_link_url: str | None = Field(default=None, description="Dashboard link put in notifications.")

    @property
    def alert_metrics_port(self) -> int:
        """Deprecated name of :attr:`metrics_port`."""
        return self.metrics_port

    @field_validator("alert_action_secret")
    @classmethod
    def _action_secret(cls, value: Any, info: Any) -> Any:
        if info.data.get("alert_action_url") and (value is None or len(value.get_secret_value()) < 16):
            raise ValueError("FEEDBACK_ALERT_ACTION_URL is set: FEEDBACK_ALERT_ACTION_SECRET needs 16+ characters")
        return value

    @field_validator("alert_smtp_to", mode="before")
    @classmethod
    def _recipients(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            value = [a.strip() for a in value.split(",") if a.strip()]
        if info.data.get("alert_smtp_host") and not value:
            raise ValueError("FEEDBACK_ALERT_SMTP_HOST is set: name at least one recipient")
        if info.data.get("alert_smtp_password") and not info.data.get("alert_smtp_username"):
            raise ValueError("FEEDBACK_ALERT_SMTP_PASSWORD needs FEEDBACK_ALERT_SMTP_USERNAME")
        return value


# -- backfill, replay, report, retention (connectors/backfill, sinks/report, sinks/warehouse) --------
class BackfillSettings(SinkSettings):
    """``feedback import`` / ``feedback replay``: the broker to publish to and the warehouse to ask
    which feedback ids are already written (duplicates)."""

    import_chunk_size: int = Field(default=500, ge=1, le=10_000, description="Records per broker round trip.")


class ReportSettings(SinkSettings):
    """``feedback report``, ``feedback purge``, ``feedback erase``: they only need the warehouse."""

    report_title: str = Field(default="Customer satisfaction review", max_length=200)
    report_top_aspects: int = Field(default=8, ge=1, le=50)

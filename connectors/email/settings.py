"""Settings of the e-mail connector and of ``feedback import-mbox`` (``FEEDBACK_IMAP_*``).

The connector keeps its checkpoints in the warehouse database (``FEEDBACK_WAREHOUSE_URL``), so the
class extends :class:`~pipeline.config.SinkSettings` for that URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from pipeline.config import SinkSettings, load, metrics_port_field
from pipeline.errors import ConfigError

Security = Literal["ssl", "starttls", "none"]
AfterProcessing = Literal["none", "seen", "move"]
MIB = 1024 * 1024


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class EmailSettings(SinkSettings):
    """IMAP connection, polling and parsing limits; validated at start-up.

    Guarantees: when ``FEEDBACK_IMAP_HOST`` is set, :meth:`require_imap` names every missing or
    contradictory setting before the connector touches the network.
    """

    imap_host: str | None = Field(default=None, description="IMAP server; unset: no e-mail connector.")
    imap_port: int | None = Field(default=None, ge=1, le=65535, description="Default 993 (ssl), else 143.")
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_oauth2_token: SecretStr | None = Field(default=None, description="XOAUTH2 access token.")
    imap_oauth2_token_file: Path | None = Field(
        default=None, description="File holding the XOAUTH2 token, re-read at every login (for refreshers)."
    )
    imap_folders: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["INBOX"])
    imap_security: Security = "ssl"
    imap_ca_file: Path | None = Field(default=None, description="CA bundle to verify the server with.")
    imap_poll_seconds: float = Field(default=30.0, gt=0, le=1740)
    imap_idle: bool = Field(default=True, description="Use IDLE between polls when the server has it.")
    imap_after_processing: AfterProcessing = "none"
    imap_move_to: str | None = Field(default=None, description="Target folder of after-processing 'move'.")
    imap_batch_size: int = Field(default=100, ge=1, le=10_000)
    imap_max_text_bytes: int = Field(default=MIB, ge=1024, description="Body text read per message.")
    imap_max_message_bytes: int = Field(
        default=25 * MIB, ge=64 * 1024, description="Larger messages are fetched only up to this size."
    )
    imap_skip_mailing_lists: bool = Field(
        default=True, description="Treat Precedence: list / List-Id / List-Unsubscribe as bulk."
    )
    imap_reply_languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["en", "de", "fr", "es", "it", "nl"],
        description="Languages of the 'On ... wrote:' headers recognised when cutting quoted replies.",
    )
    imap_timeout_seconds: float = Field(default=60.0, gt=0)
    imap_backoff_max_seconds: float = Field(default=60.0, gt=0)
    metrics_port: int = metrics_port_field(9104, "FEEDBACK_IMAP_METRICS_PORT", allow_zero=True)

    @property
    def imap_metrics_port(self) -> int:
        """Deprecated name of :attr:`metrics_port`."""
        return self.metrics_port

    _split_folders = field_validator("imap_folders", "imap_reply_languages", mode="before")(
        classmethod(lambda cls, v: _split(v))
    )

    @model_validator(mode="after")
    def _consistent(self) -> EmailSettings:
        if not self.imap_folders:
            raise ValueError("FEEDBACK_IMAP_FOLDERS must name at least one folder")
        if self.imap_after_processing == "move" and not self.imap_move_to:
            raise ValueError("FEEDBACK_IMAP_AFTER_PROCESSING=move needs FEEDBACK_IMAP_MOVE_TO")
        if self.imap_move_to and self.imap_move_to in self.imap_folders and self.imap_after_processing == "move":
            raise ValueError("FEEDBACK_IMAP_MOVE_TO must not be one of FEEDBACK_IMAP_FOLDERS")
        return self

    @property
    def port(self) -> int:
        if self.imap_port:
            return self.imap_port
        return 993 if self.imap_security == "ssl" else 143

    @property
    def account(self) -> str:
        """The checkpoint key of the mailbox: ``user@host``."""
        return f"{self.imap_user}@{self.imap_host}"

    def require_imap(self) -> None:
        """Raise ConfigError unless the IMAP connection is fully configured."""
        missing = []
        if not self.imap_host:
            missing.append("FEEDBACK_IMAP_HOST")
        if not self.imap_user:
            missing.append("FEEDBACK_IMAP_USER")
        if not (self.imap_password or self.imap_oauth2_token or self.imap_oauth2_token_file):
            missing.append("FEEDBACK_IMAP_PASSWORD (or FEEDBACK_IMAP_OAUTH2_TOKEN / _TOKEN_FILE)")
        if missing:
            raise ConfigError("the e-mail connector needs " + ", ".join(missing))
        if self.imap_ca_file and not self.imap_ca_file.is_file():
            raise ConfigError(f"FEEDBACK_IMAP_CA_FILE: no such file: {self.imap_ca_file}")
        if self.imap_oauth2_token_file and not self.imap_oauth2_token_file.is_file():
            raise ConfigError(f"FEEDBACK_IMAP_OAUTH2_TOKEN_FILE: no such file: {self.imap_oauth2_token_file}")

    def oauth2_token(self) -> str | None:
        """The current XOAUTH2 token (the file wins: it is re-read at every login)."""
        if self.imap_oauth2_token_file:
            return self.imap_oauth2_token_file.read_text().strip() or None
        return self.imap_oauth2_token.get_secret_value() if self.imap_oauth2_token else None


def imap_configured() -> bool:
    """True when ``FEEDBACK_IMAP_HOST`` is set (``feedback up`` then runs the connector too)."""
    return bool(load(EmailSettings).imap_host)

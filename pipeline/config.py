"""Settings: one pydantic-settings class per component, all read from ``FEEDBACK_*`` and ``.env``.

Every class validates at start-up; :func:`load` turns a validation failure into a
:class:`~pipeline.errors.ConfigError` with one readable line per bad setting.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.errors import ConfigError

EMBEDDED_BROKER_PORT = 19092


class CommonSettings(BaseSettings):
    """Settings every component shares: where the broker, the topics and the data live."""

    model_config = SettingsConfigDict(
        env_prefix="FEEDBACK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(default=Path("./data"), description="Where embedded state lives.")
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset: the embedded broker."
    )
    embedded_broker_port: int = Field(default=EMBEDDED_BROKER_PORT, ge=1, le=65535)
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    topic_replication: int = Field(default=1, ge=1, le=10)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    customer_hash_key: SecretStr | None = Field(
        default=None,
        description="Key of the customer_ref HMAC; unset: a random key kept in data_dir.",
    )

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers every client uses (the embedded broker's when none is set)."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.embedded_broker_port}"

    @property
    def uses_embedded_broker(self) -> bool:
        return not self.kafka_bootstrap

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options passed through to every kafka-python client."""
        opts: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism
            opts["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                opts["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            opts["ssl_cafile"] = str(self.kafka_ssl_cafile)
        return opts

    def customer_key(self) -> bytes:
        """The HMAC key for customer references; generated once and kept in ``data_dir``."""
        if self.customer_hash_key is not None:
            return self.customer_hash_key.get_secret_value().encode()
        path = self.data_dir / "customer_hash.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip().encode()


class HttpSettings(CommonSettings):
    """The HTTP ingestion service: forms, ``/v1/events`` and webhooks."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Bearer tokens for /v1/events (comma-separated); empty: open."
    )
    max_record_bytes: int = Field(default=64 * 1024, ge=1024)
    max_records_per_request: int = Field(default=500, ge=1, le=10_000)
    publish_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @property
    def max_body_bytes(self) -> int:
        return self.max_record_bytes * self.max_records_per_request


class ProcessorSettings(CommonSettings):
    """The faust stream processor (enrichment)."""

    taxonomy_file: Path | None = Field(default=None, description="YAML taxonomy; unset: the shipped one.")
    neutral_band: float = Field(default=0.1, ge=0.0, lt=1.0)
    dedupe_window: int = Field(default=100_000, ge=0, description="Recent items remembered for dedupe.")
    processor_batch: int = Field(default=500, ge=1)
    processor_metrics_port: int = Field(default=9101, ge=1, le=65535)


class SinkSettings(CommonSettings):
    """The warehouse sink."""

    warehouse_url: str | None = Field(default=None, description="SQLAlchemy URL; unset: SQLite in data_dir.")
    sink_batch_size: int = Field(default=1000, ge=1, le=100_000)
    sink_batch_ms: int = Field(default=200, ge=1)
    sink_metrics_port: int = Field(default=9102, ge=1, le=65535)

    @property
    def database_url(self) -> str:
        if self.warehouse_url:
            return self.warehouse_url
        return f"sqlite:///{(self.data_dir / 'warehouse.db').resolve()}"


class UpSettings(HttpSettings, ProcessorSettings, SinkSettings):
    """Everything ``feedback up`` needs to supervise the whole pipeline on one machine."""


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S], **overrides: Any) -> S:
    """Read and validate settings, or raise ConfigError naming each bad ``FEEDBACK_*`` variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "FEEDBACK_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None

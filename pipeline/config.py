"""Settings: one pydantic-settings class per component, all read from ``FEEDBACK_*`` and ``.env``.

Every class validates at start-up; :func:`load` turns a validation failure into a
:class:`~pipeline.errors.ConfigError` with one readable line per bad setting.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.data_location import find_data_dir
from pipeline.errors import ConfigError

EMBEDDED_BROKER_PORT = 19092


def metrics_port_field(default: int, former: str, allow_zero: bool = False) -> Any:
    """A component's ``metrics_port`` (``/metrics``, ``/healthz``, ``/readyz``): ``FEEDBACK_METRICS_PORT``.

    ``former`` is the component's earlier variable (e.g. ``FEEDBACK_SINK_METRICS_PORT``): deprecated,
    still read, and it wins over ``FEEDBACK_METRICS_PORT``, so one environment can still hold the ports
    of several components (``feedback up``).
    """
    return Field(default=default, ge=0 if allow_zero else 1, le=65535,
                 validation_alias=AliasChoices(former, "FEEDBACK_METRICS_PORT"),
                 description=f"FEEDBACK_METRICS_PORT ({former} deprecated){'; 0: no /metrics' if allow_zero else ''}.")

class CommonSettings(BaseSettings):
    """Settings every component shares: where the broker, the topics and the data live."""

    model_config = SettingsConfigDict(
        env_prefix="FEEDBACK_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        populate_by_name=True,  # a field read from aliased variables (metrics_port) is also set by its name
    )

    data_dir: Path = Field(default=Path("./data"), description="Where embedded state lives.")
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset: the embedded broker."
    )
    embedded_broker_port: int = Field(default=EMBEDDED_BROKER_PORT, ge=1, le=65535)
    embedded_broker: Literal["tansu", "kafka"] = Field(
        default="tansu",
        description="The broker `feedback up` runs when FEEDBACK_KAFKA_BOOTSTRAP is unset: tansu (in memory, "
        "needs nothing but Python) or kafka (Apache Kafka in KRaft mode, needs Java 17 and, once, Maven; its "
        "data is kept under data_dir/kafka across restarts: a durable single-machine deployment).",
    )
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    topic_replication: int = Field(default=1, ge=1, le=10)
    topic_retention_hours: float = Field(
        default=168.0, gt=0, le=87_600, description="Retention of the raw, enriched and dead-letter topics, set "
        "when they are created: the erasure horizon (an erased customer's records leave Kafka within it).")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    broker_gate: Path | None = Field(
        default=None,
        description="Set by `feedback up` for its children, not by hand: the file through which the supervisor "
        "says the broker it runs is restarting (pipeline/gate.py); a publish is accepted only when the gate was "
        "open, with the same broker start, before the send and after the acks.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Interface of the /metrics, /healthz, /readyz server of the non-HTTP components "
        "(0.0.0.0 in containers).",
    )
    customer_hash_key: SecretStr | None = Field(
        default=None,
        description="Key of the customer_ref HMAC (at least 32 bytes, not a placeholder); unset: the key "
        "`feedback up` generated once into data_dir/customer_hash.key.",
    )
    customer_hash_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Former customer-hash keys (comma-separated): never used for new "
        "references, only to find old ones (`feedback erase` checks every key).")

    @field_validator("customer_hash_key")
    @classmethod
    def _strong_customer_key(cls, value: SecretStr | None) -> SecretStr | None:
        from pipeline.keys import check_key

        if value is not None:
            check_key(value.get_secret_value().encode(), "FEEDBACK_CUSTOMER_HASH_KEY")
        return value

    metric_label_values: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Product and channel values that may appear as they are in metric "
        "labels (comma-separated); any other is exported as a hash (pipeline.metrics.scope_label).")

    @field_validator("customer_hash_keys", "metric_label_values", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return [k.strip() for k in value.split(",") if k.strip()] if isinstance(value, str) else value

    #: Whether an unset data_dir may come from the user location file (not for `feedback up`, which writes it).
    reads_user_location: ClassVar[bool] = True
    _data_dir_origin: str = PrivateAttr(default="FEEDBACK_DATA_DIR")

    @model_validator(mode="after")
    def _locate_data(self) -> Self:
        """Resolve the data directory once, to an absolute path, never relative to a later folder."""
        if "data_dir" in self.model_fields_set:
            self.data_dir = self.data_dir.expanduser().resolve()
        else:
            self.data_dir, self._data_dir_origin = find_data_dir(self.reads_user_location)
        return self

    @property
    def data_location(self) -> str:
        """The data directory and where it was found, for messages."""
        return f"{self.data_dir} (from {self._data_dir_origin})"

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers every client uses (the embedded broker's when none is set)."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.embedded_broker_port}"

    @property
    def uses_embedded_broker(self) -> bool:
        return not self.kafka_bootstrap

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options passed through to every kafka-python client (see :mod:`pipeline.kafka_security`)."""
        from pipeline.kafka_security import client_options

        return client_options(self, "kafka-python")

    def customer_key(self, create: bool = False) -> bytes:
        """The HMAC key for customer references: FEEDBACK_CUSTOMER_HASH_KEY, else the key kept in
        ``data_dir``, which only ``feedback up`` creates (``create=True``, once); a missing or weak key
        is a ConfigError, never a random per-process key."""
        from pipeline.keys import check_key

        if self.customer_hash_key is not None:
            return self.customer_hash_key.get_secret_value().encode()
        path = self.data_dir / "customer_hash.key"
        if not path.exists() and not create:
            raise ConfigError(f"no customer-hash key in the data directory {self.data_location}: set "
                              "FEEDBACK_CUSTOMER_HASH_KEY (at least 32 bytes), or run where `feedback up` ran "
                              "(it keeps one in its data directory), or set FEEDBACK_DATA_DIR to that directory")
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        try:
            return check_key(path.read_text().strip().encode(), str(path))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def customer_keys(self) -> list[bytes]:
        """Every customer-hash key that may have made a stored reference: the current one, then the former."""
        return [self.customer_key(), *(k.get_secret_value().encode() for k in self.customer_hash_keys)]


class HttpSettings(CommonSettings):
    """The HTTP ingestion service: forms, ``/v1/events`` and webhooks."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Bearer tokens for /v1/events (comma-separated); empty: open."
    )
    allow_anonymous_events: bool = Field(
        default=False, description="Serve /v1/events without tokens on a non-loopback address (else refused).")
    max_record_bytes: int = Field(default=64 * 1024, ge=1024)
    max_records_per_request: int = Field(default=500, ge=1, le=10_000)
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024,
                                   description="Largest /v1/events body (the ingress's limit should match).")
    publish_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0, description="Whole body must arrive within this.")
    max_header_count: int = Field(default=100, ge=10)
    form_rate_limit: str = Field(
        default="30/minute", description="Per-client limit on form posts (limits syntax); empty: none."
    )
    trust_proxy: bool = Field(default=False, description="Take the client address from X-Forwarded-For.")
    forms_file: Path | None = Field(
        default=None, description="YAML file of the feedback forms' texts and languages; unset: the shipped "
        "one (English, German, French, Spanish).")
    contact_key: SecretStr | None = Field(
        default=None, description="Fernet key sealing the address of a customer who agrees to be contacted "
        "(the follow-up sink needs the same key); unset: the form offers no contact.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (comma-separated)."
    )
    http_internal_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port of /metrics, /docs and /openapi.json (and "
        "/healthz, /readyz) on FEEDBACK_METRICS_HOST (loopback unless set); the public port then serves none "
        "of the first four. Unset: everything on FEEDBACK_HTTP_PORT, as before.")
    http_docs: bool = Field(default=True, description="Serve /docs (Swagger UI, its assets from the "
                            "openapi-ui-bundles package: no CDN); false: no /docs.")

    @field_validator("api_tokens", "cors_origins", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @property
    def max_body_bytes(self) -> int:
        return min(self.max_record_bytes * self.max_records_per_request, self.max_request_bytes)

    # -- support-ticket webhooks (connectors/tickets); a route whose secret is unset answers 503
    zendesk_webhook_secret: SecretStr | None = Field(default=None, description="Zendesk webhook signing secret.")
    freshdesk_webhook_token: SecretStr | None = Field(default=None, description="Token Freshdesk sends.")
    jira_webhook_token: SecretStr | None = Field(default=None, description="Jira webhook secret / token.")
    generic_webhook_secret: SecretStr | None = Field(default=None, description="HMAC key of /webhooks/generic.")
    typeform_webhook_secret: SecretStr | None = Field(
        default=None, description="Typeform webhook secret(s) of /webhooks/typeform (comma-separated: one per form).")
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=86_400,
                                           description="Largest accepted age of a signed timestamp.")
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest webhook body.")


class ProcessorSettings(CommonSettings):
    """The faust stream processor (enrichment)."""

    taxonomy_file: Path | None = Field(default=None, description="YAML taxonomy; unset: the shipped one.")
    neutral_band: float = Field(default=0.1, ge=0.0, lt=1.0)
    dedupe_window: int = Field(default=100_000, ge=0, description="Recent items remembered for dedupe.")
    processor_batch: int = Field(default=500, ge=1)
    processor_linger_ms: int = Field(
        default=5, ge=0, le=1000, description="How long the processor's producer waits to fill a produce request.")
    processor_produce_batch_bytes: int = Field(
        default=1_048_576, ge=16_384, description="Largest batch of one partition in a produce request (bytes).")
    processor_worker: int = Field(
        default=0, ge=0, description="Index of this worker among several on one machine (feedback up sets it); "
        "each keeps its faust state in its own folder.")
    metrics_port: int = metrics_port_field(9101, "FEEDBACK_PROCESSOR_METRICS_PORT")

    @property
    def processor_metrics_port(self) -> int:
        """Deprecated name of :attr:`metrics_port`."""
        return self.metrics_port

    # -- enrichment (processors/enrich.py) -----------------------------------------------------
    sentiment: Literal["ensemble", "textblob", "vader"] = Field(
        default="ensemble", description="Sentiment analyzer; 'ensemble' is the measured default.")
    ensemble_neutral_band: float | None = Field(
        default=None, ge=0.0, lt=1.0,
        description="Neutral band of the ensemble's score; unset: the band tuned with its weights. "
        "(FEEDBACK_NEUTRAL_BAND is the textblob analyzer's band.)")
    category_model: Path | None = Field(
        default=None, description="joblib file from 'feedback train-categories'; unset: taxonomy only.")
    # -- trained models (processors/learning) ------------------------------------------------
    model_dir: Path | None = Field(
        default=None, description="Versioned trained models and the active-model pointers; unset: data_dir/models.")
    model_poll_seconds: float = Field(
        default=10.0, gt=0, le=60, description="How often the processor looks for a newly activated model.")
    sentiment_score_weight: float = Field(
        default=1.0, ge=0.0, le=5.0,
        description="Weight of a record's own NPS/CSAT/stars in its sentiment label when it has both a score "
        "and a text (0: the text alone; 1 measured +4.7 to +7.6 macro-F1 points over the text alone, "
        "docs/evaluation.md).")

    @property
    def models_path(self) -> Path:
        return self.model_dir or self.data_dir / "models"
    phone_regions: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["US", "GB", "DE", "FR"],
        description="Regions whose national phone formats are redacted (comma-separated ISO codes).")

    @field_validator("phone_regions", mode="before")
    @classmethod
    def _split_regions(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [r.strip().upper() for r in value.split(",") if r.strip()]
        return value


class SinkSettings(CommonSettings):
    """The warehouse sink."""

    warehouse_url: str | None = Field(default=None, description="SQLAlchemy URL; unset: SQLite in data_dir.")
    sink_batch_size: int = Field(default=1000, ge=1, le=100_000)
    sink_batch_ms: int = Field(default=200, ge=1)
    metrics_port: int = metrics_port_field(9102, "FEEDBACK_SINK_METRICS_PORT")
    sink_max_backoff_seconds: float = Field(default=30.0, gt=0, description="Longest wait between write retries.")

    @property
    def sink_metrics_port(self) -> int:
        """Deprecated name of :attr:`metrics_port`."""
        return self.metrics_port

    @property
    def database_url(self) -> str:
        if self.warehouse_url:
            return self.warehouse_url
        return f"sqlite:///{(self.data_dir / 'warehouse.db').resolve()}"

    def existing_database_url(self) -> str:
        """The warehouse URL for a command that reads: a SQLite file that is not there is a ConfigError
        (exit 2), never created empty."""
        url = self.database_url
        path = Path(url.removeprefix("sqlite:///"))
        if url.startswith("sqlite:///") and not path.is_file():
            where = "FEEDBACK_WAREHOUSE_URL" if self.warehouse_url else f"the data directory {self.data_location}"
            raise ConfigError(f"no warehouse at {path} ({where}): run this where `feedback up` ran, "
                              "or set FEEDBACK_DATA_DIR / FEEDBACK_WAREHOUSE_URL")
        return url


class ZendeskSettings(SinkSettings):
    """The Zendesk polling connector (``feedback connector zendesk``); its cursor lives in the state store
    (table ``source_state`` of the warehouse database, ``FEEDBACK_WAREHOUSE_URL``)."""

    zendesk_subdomain: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    zendesk_base_url: str | None = Field(
        default=None, description="API base URL; unset: https://<subdomain>.zendesk.com (set for proxies/tests)."
    )
    zendesk_email: str | None = Field(default=None, description="Agent e-mail of the API token.")
    zendesk_api_token: SecretStr | None = None
    zendesk_start_time: int = Field(default=0, ge=0, description="Unix time the first export starts at.")
    zendesk_poll_interval_seconds: float = Field(default=60.0, gt=0)
    zendesk_checkpoint_file: Path | None = Field(
        default=None, description="Deprecated: the former cursor file, imported into the state store once; unset: "
        "data_dir/connectors/zendesk-<host>.json."
    )
    zendesk_max_backoff_seconds: float = Field(default=60.0, gt=0)
    zendesk_request_timeout_seconds: float = Field(default=30.0, gt=0)
    metrics_port: int = metrics_port_field(9105, "FEEDBACK_ZENDESK_METRICS_PORT", allow_zero=True)

    @property
    def zendesk_metrics_port(self) -> int:
        """Deprecated name of :attr:`metrics_port`."""
        return self.metrics_port


class LearningSettings(ProcessorSettings, SinkSettings):
    """``feedback train-sentiment``, ``train-categories``, ``label`` and ``models``: where the models and
    the warehouse are, and the training gate."""

    train_min_per_class: int = Field(default=200, ge=2, description="Fewest training rows per class.")
    train_holdout_fraction: float = Field(default=0.2, gt=0.05, lt=0.5, description="Stratified held-out share.")


class UpSettings(HttpSettings, ProcessorSettings, SinkSettings):
    """Everything ``feedback up`` needs to supervise the whole pipeline on one machine. Its data directory
    is FEEDBACK_DATA_DIR, else the nearest project file, else ./data: never the user file, which it writes."""

    reads_user_location: ClassVar[bool] = False
    processor_workers: int = Field(
        default=0, ge=0, le=64,
        description="Processor workers `feedback up` runs in one consumer group; 0: one per CPU core. Worker n "
        "(n >= 1) serves its metrics on the processor metrics port + 100 n (9201, 9301, ...).")

    @property
    def processor_worker_count(self) -> int:
        return self.processor_workers or max(1, os.cpu_count() or 1)


S = TypeVar("S", bound=BaseSettings)


#: Variables that no longer do anything: read by nobody, a warning at start-up (they never fail it).
REMOVED_VARIABLES = {
    "FEEDBACK_TOPIC_WATCH_SECONDS": "topics are no longer watched: `feedback up` restarts the pipeline around "
    "its embedded broker (docs/kafka.md)",
    "FEEDBACK_CONFIRM_TOPIC_IDS": "topic ids are no longer confirmed: `feedback up` gates publishing while its "
    "embedded broker restarts (docs/kafka.md)",
}


def load(cls: type[S], **overrides: Any) -> S:
    """Read and validate settings, or raise ConfigError naming each bad ``FEEDBACK_*`` variable."""
    import warnings

    for name, why in REMOVED_VARIABLES.items():
        if name in os.environ:
            warnings.warn(f"{name} is deprecated and ignored: {why}", FutureWarning, stacklevel=2)
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper()
            name = name if name.startswith("FEEDBACK_") else "FEEDBACK_" + name  # an alias is the full name
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None

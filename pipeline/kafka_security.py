"""The one translation of the ``FEEDBACK_KAFKA_*`` security settings into each Kafka client's terms.

Every client of the pipeline connects through :func:`client_options`: kafka-python (publisher, sinks,
admin, replay), aiokafka (the HTTP service's publisher, the signal agent) and faust (the processor,
aiokafka underneath). The three differ only in spelling:

* kafka-python takes the CA as a file (``ssl_cafile``) and has no SASL password unless one is set;
* aiokafka takes an ``ssl.SSLContext`` and a SASL password string (empty when none is set);
* faust takes one credentials object (``broker_credentials``) built from the aiokafka options.

The broker is always verified against ``FEEDBACK_KAFKA_SSL_CAFILE`` when it is set, otherwise against
the system's trust store; a SASL protocol without ``FEEDBACK_KAFKA_SASL_MECHANISM`` means PLAIN;
PLAINTEXT gives only ``security_protocol`` (faust: no credentials).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import SecretStr

Client = Literal["kafka-python", "aiokafka", "faust"]


class KafkaSecuritySettings(Protocol):
    """The settings read here (every :class:`pipeline.config.CommonSettings` has them)."""

    @property
    def kafka_security_protocol(self) -> str: ...
    @property
    def kafka_sasl_mechanism(self) -> str | None: ...
    @property
    def kafka_sasl_username(self) -> str | None: ...
    @property
    def kafka_sasl_password(self) -> SecretStr | None: ...
    @property
    def kafka_ssl_cafile(self) -> Path | None: ...


def server_context(cafile: str | None) -> ssl.SSLContext:
    """A client-side TLS context verifying the broker against ``cafile`` (or the system store)."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)


def client_options(settings: KafkaSecuritySettings, client: Client = "kafka-python") -> dict[str, Any]:
    """The security keyword arguments of ``client`` for the settings' ``FEEDBACK_KAFKA_*`` values."""
    protocol = settings.kafka_security_protocol
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    opts: dict[str, Any] = {"security_protocol": protocol}
    if settings.kafka_sasl_mechanism or protocol.startswith("SASL"):
        opts["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        opts["sasl_plain_username"] = settings.kafka_sasl_username
        if password is not None or client != "kafka-python":
            opts["sasl_plain_password"] = password or ""
    if client == "kafka-python":
        if cafile:
            opts["ssl_cafile"] = cafile
        return opts
    if protocol.endswith("SSL"):
        opts["ssl_context"] = server_context(cafile)
    if client == "aiokafka":
        return opts
    return {"broker_credentials": _faust_credentials(opts)}


def _faust_credentials(opts: dict[str, Any]) -> Any:
    """faust's credentials object for the aiokafka options (``None`` for PLAINTEXT)."""
    protocol: str = opts["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    import faust  # only the processor pays for importing faust

    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=opts.get("sasl_plain_username"),
            password=opts.get("sasl_plain_password", ""),
            mechanism=opts["sasl_mechanism"],
            ssl_context=opts.get("ssl_context"),
        )
    return faust.SSLCredentials(opts["ssl_context"])

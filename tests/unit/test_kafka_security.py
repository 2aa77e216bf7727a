"""Kafka security settings reach every client: kafka-python (publisher, sink, admin) and faust."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
import trustme

from pipeline.config import ProcessorSettings, load
from processors.app import faust_credentials


@pytest.fixture
def cafile(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def test_plaintext_has_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", raising=False)
    assert faust_credentials(load(ProcessorSettings)) is None
    assert load(ProcessorSettings).kafka_client_options() == {"security_protocol": "PLAINTEXT"}



def sasl_ssl_env(monkeypatch: pytest.MonkeyPatch, mechanism: str, cafile: Path) -> None:
    """SASL/SCRAM over SSL, as an operator sets it in the environment."""
    monkeypatch.setenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_MECHANISM", mechanism)
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_USERNAME", "pipeline")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("FEEDBACK_KAFKA_SSL_CAFILE", str(cafile))


def test_sasl_scram_over_ssl_reaches_faust_and_kafka_python(monkeypatch: pytest.MonkeyPatch, cafile: Path) -> None:
    sasl_ssl_env(monkeypatch, "SCRAM-SHA-256", cafile)
    settings = load(ProcessorSettings)
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "pipeline" and creds.password == "s3cret"
    assert creds.mechanism.value == "SCRAM-SHA-256"
    assert isinstance(creds.ssl_context, ssl.SSLContext)
    assert creds.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert len(creds.ssl_context.get_ca_certs()) == 1  # our CA file, not the system store
    opts = settings.kafka_client_options()
    assert opts["security_protocol"] == "SASL_SSL" and opts["sasl_mechanism"] == "SCRAM-SHA-256"
    assert opts["sasl_plain_username"] == "pipeline" and opts["sasl_plain_password"] == "s3cret"
    assert opts["ssl_cafile"] == str(cafile)


def test_ssl_only(monkeypatch: pytest.MonkeyPatch, cafile: Path) -> None:
    monkeypatch.setenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("FEEDBACK_KAFKA_SSL_CAFILE", str(cafile))
    creds = faust_credentials(load(ProcessorSettings))
    assert isinstance(creds, faust.SSLCredentials)
    assert creds.context.verify_mode == ssl.CERT_REQUIRED


def test_publisher_and_sink_clients_get_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kafka-python clients are built with **kafka_client_options(); prove the constructors accept
    them (an unknown option would raise) without a broker: kafka-python validates config eagerly."""
    from kafka import KafkaConsumer, KafkaProducer

    monkeypatch.setenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_PASSWORD", "p")
    opts = load(ProcessorSettings).kafka_client_options()
    for cls in (KafkaProducer, KafkaConsumer):
        assert set(opts) <= set(cls.DEFAULT_CONFIG)


def test_sasl_scram_over_ssl_reaches_the_http_services_aiokafka_producer(
        monkeypatch: pytest.MonkeyPatch, cafile: Path) -> None:
    """The HTTP service publishes with aiokafka (pipeline/async_publisher.py): same settings, aiokafka's terms."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from pipeline.async_publisher import AsyncPublisher, aiokafka_client_options
    from pipeline.config import HttpSettings

    sasl_ssl_env(monkeypatch, "SCRAM-SHA-512", cafile)
    settings = load(HttpSettings)
    opts = aiokafka_client_options(settings)
    assert opts["security_protocol"] == "SASL_SSL" and opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "pipeline" and opts["sasl_plain_password"] == "s3cret"
    context = opts["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1  # our CA file, not the system store

    async def build() -> AIOKafkaProducer:  # aiokafka validates its options when constructed (no broker)
        return AIOKafkaProducer(**AsyncPublisher(settings)._options)

    client = asyncio.run(build()).client
    assert client._security_protocol == "SASL_SSL" and client._sasl_mechanism == "SCRAM-SHA-512"
    assert client._sasl_plain_username == "pipeline" and client._sasl_plain_password == "s3cret"
    assert client._ssl_context.verify_mode == ssl.CERT_REQUIRED and len(client._ssl_context.get_ca_certs()) == 1


def test_plaintext_and_ssl_only_for_aiokafka(monkeypatch: pytest.MonkeyPatch, cafile: Path) -> None:
    from pipeline.async_publisher import aiokafka_client_options
    from pipeline.config import HttpSettings

    monkeypatch.delenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", raising=False)
    assert aiokafka_client_options(load(HttpSettings)) == {"security_protocol": "PLAINTEXT"}
    monkeypatch.setenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("FEEDBACK_KAFKA_SSL_CAFILE", str(cafile))
    opts = aiokafka_client_options(load(HttpSettings))
    assert set(opts) == {"security_protocol", "ssl_context"} and opts["security_protocol"] == "SSL"
    assert opts["ssl_context"].verify_mode == ssl.CERT_REQUIRED and len(opts["ssl_context"].get_ca_certs()) == 1

"""The one translation of FEEDBACK_KAFKA_* (pipeline/kafka_security.py): every client gets the same settings."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
import trustme

from pipeline.config import CommonSettings, load
from pipeline.kafka_security import client_options


@pytest.fixture
def cafile(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def test_the_three_clients_agree_on_sasl_ssl(monkeypatch: pytest.MonkeyPatch, cafile: Path) -> None:
    monkeypatch.setenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_USERNAME", "pipeline")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("FEEDBACK_KAFKA_SSL_CAFILE", str(cafile))
    settings = load(CommonSettings)
    kp, ak = client_options(settings, "kafka-python"), client_options(settings, "aiokafka")
    creds = client_options(settings, "faust")["broker_credentials"]
    shared = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
    assert [kp[k] for k in shared] == [ak[k] for k in shared] == ["SASL_SSL", "SCRAM-SHA-512", "pipeline", "s3cret"]
    assert kp["ssl_cafile"] == str(cafile) and "ssl_context" not in kp
    assert "ssl_cafile" not in ak and len(ak["ssl_context"].get_ca_certs()) == 1
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("pipeline", "s3cret", "SCRAM-SHA-512")
    assert creds.ssl_context is not None and creds.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert len(creds.ssl_context.get_ca_certs()) == 1


def test_a_sasl_protocol_without_mechanism_means_plain_for_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.delenv("FEEDBACK_KAFKA_SASL_MECHANISM", raising=False)
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_USERNAME", "u")
    monkeypatch.delenv("FEEDBACK_KAFKA_SASL_PASSWORD", raising=False)
    settings = load(CommonSettings)
    assert client_options(settings, "kafka-python") == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u"}
    assert client_options(settings, "aiokafka") == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
        "sasl_plain_password": ""}
    creds = client_options(settings, "faust")["broker_credentials"]
    assert (creds.username, creds.password, creds.mechanism.value, creds.ssl_context) == ("u", "", "PLAIN", None)


def test_plaintext_gives_faust_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", raising=False)
    monkeypatch.delenv("FEEDBACK_KAFKA_SASL_MECHANISM", raising=False)
    assert client_options(load(CommonSettings), "faust") == {"broker_credentials": None}

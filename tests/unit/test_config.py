from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import CommonSettings, HttpSettings, SinkSettings, UpSettings, load
from pipeline.errors import ConfigError


def test_defaults_use_embedded_broker_and_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEEDBACK_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("FEEDBACK_WAREHOUSE_URL", raising=False)
    s = load(UpSettings)
    assert s.uses_embedded_broker and s.bootstrap == "127.0.0.1:19092"
    assert s.database_url == f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}"
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)


def test_public_variable_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEEDBACK_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("FEEDBACK_WAREHOUSE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("FEEDBACK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FEEDBACK_HTTP_PORT", "9999")
    monkeypatch.setenv("FEEDBACK_API_TOKENS", "alpha, beta ,")
    monkeypatch.setenv("FEEDBACK_TAXONOMY_FILE", "/etc/tax.yaml")
    s = load(UpSettings)
    assert s.bootstrap == "k1:9092,k2:9092" and not s.uses_embedded_broker
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.data_dir == tmp_path and s.http_port == 9999
    assert [t.get_secret_value() for t in s.api_tokens] == ["alpha", "beta"]
    assert "alpha" not in repr(s)  # secrets never printed
    assert s.taxonomy_file == Path("/etc/tax.yaml")


def test_dotenv_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEEDBACK_HTTP_PORT", raising=False)
    (tmp_path / ".env").write_text("FEEDBACK_HTTP_PORT=8181\n")
    assert load(HttpSettings).http_port == 8181


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_HTTP_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="FEEDBACK_HTTP_PORT"):
        load(HttpSettings)
    monkeypatch.setenv("FEEDBACK_SINK_BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match="FEEDBACK_SINK_BATCH_SIZE"):
        load(SinkSettings)


def test_kafka_security_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("FEEDBACK_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("FEEDBACK_KAFKA_SSL_CAFILE", "/etc/ca.pem")
    opts = load(CommonSettings).kafka_client_options()
    assert opts == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": "svc", "sasl_plain_password": "s3cret", "ssl_cafile": "/etc/ca.pem"}


def test_customer_key_is_generated_once_and_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FEEDBACK_CUSTOMER_HASH_KEY", raising=False)
    s = CommonSettings(data_dir=tmp_path)
    with pytest.raises(ConfigError, match="no customer-hash key"):
        s.customer_key()  # only `feedback up` creates it: no random per-process key
    key = s.customer_key(create=True)
    assert len(key) == 64 and CommonSettings(data_dir=tmp_path).customer_key() == key
    assert (tmp_path / "customer_hash.key").stat().st_mode & 0o077 == 0
    fixed = "f1x3d-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
    monkeypatch.setenv("FEEDBACK_CUSTOMER_HASH_KEY", fixed)
    assert CommonSettings(data_dir=tmp_path).customer_key() == fixed.encode()

"""The customer-hash key: strength at start-up, no per-process fallback, key ids and rotation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config import CommonSettings, HttpSettings, load
from pipeline.errors import ConfigError
from pipeline.keys import key_weakness
from pipeline.schema import FeedbackRecord, customer_key_id, customer_ref, customer_refs
from tests.conftest import TEST_CUSTOMER_KEY

WEAK = ["", "test-key", "k" * 32, "change-me-change-me-change-me-change-me", "CHANGEME0123456789abcdef0123456789",
        "secretsecretsecretsecretsecretsecret", "my-secret-key-0123456789abcdef0123", "ab" * 20,
        "0123456789abcdef" * 3, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "your-key-here-0f3b7a1d5e8c4b2a96d0"]


@pytest.mark.parametrize("value", WEAK)
def test_weak_or_placeholder_keys_are_refused_by_the_settings(value: str) -> None:
    assert key_weakness(value.encode()) is not None
    with pytest.raises(ValidationError, match="customer-hash key"):
        CommonSettings(customer_hash_key=value)


def test_a_weak_key_stops_load_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_CUSTOMER_HASH_KEY", "change-me")
    with pytest.raises(ConfigError, match="at least 32"):
        load(HttpSettings)


def test_random_keys_are_accepted() -> None:
    import secrets

    for key in (secrets.token_hex(32), secrets.token_urlsafe(32), TEST_CUSTOMER_KEY):
        assert key_weakness(key.encode()) is None
        assert CommonSettings(customer_hash_key=key).customer_key() == key.encode()


def test_no_key_outside_up_is_a_configuration_error(tmp_path: Path) -> None:
    """A component started without a key exits with status 2 and a message: never a key of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env.update(FEEDBACK_DATA_DIR=str(tmp_path), FEEDBACK_KAFKA_BOOTSTRAP="127.0.0.1:1",
               FEEDBACK_HTTP_PORT="1", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    done = subprocess.run([sys.executable, "-m", "pipeline", "serve-http"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "no customer-hash key" in done.stderr and "FEEDBACK_CUSTOMER_HASH_KEY" in done.stderr
    assert not (tmp_path / "customer_hash.key").exists()
    env["FEEDBACK_CUSTOMER_HASH_KEY"] = "test-key"
    done = subprocess.run([sys.executable, "-m", "pipeline", "serve-http"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "at least 32" in done.stderr, done.stderr


def test_a_weak_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "customer_hash.key").write_text("short\n")
    with pytest.raises(ConfigError, match=r"customer_hash\.key"):
        CommonSettings(data_dir=tmp_path).customer_key()


def test_references_carry_the_key_id_and_rotation_finds_every_form() -> None:
    old, new = b"0f3b7a1d5e8c4b2a96d0" * 2, TEST_CUSTOMER_KEY.encode()
    ref = customer_ref("Ann@Example.org ", new)
    assert ref.startswith(f"c_{customer_key_id(new)}_") and len(ref) == 2 + 8 + 1 + 32
    assert customer_key_id(old) != customer_key_id(new)
    everything = customer_refs("ann@example.org", [new, old])
    assert ref in everything and customer_ref("ann@example.org", old) in everything
    assert "c_" + customer_ref("ann@example.org", old).split("_")[2] in everything  # the form without key id
    settings = CommonSettings(customer_hash_key=TEST_CUSTOMER_KEY, customer_hash_keys=f"{old.decode()}, legacy-k")
    assert settings.customer_keys() == [new, old, b"legacy-k"]  # former keys only find, never make


@pytest.mark.parametrize("value", ["ann@example.org", "+44 20 7946 0958", "c_odd", "C_" + "a" * 32,
                                   "c_" + "a" * 31, "c_xyz_" + "a" * 32, "c_" + "a" * 32 + "\n0"])
def test_customer_ref_accepts_only_the_keyed_hash_form(value: str) -> None:
    with pytest.raises(ValidationError, match="customer_ref"):
        FeedbackRecord(source_ref="r", text="t", customer_ref=value)


def test_customer_ref_keyed_forms_are_accepted() -> None:
    for ref in (customer_ref("a@b.c", TEST_CUSTOMER_KEY.encode()), "c_" + "0123456789abcdef" * 2):
        assert FeedbackRecord(source_ref="r", text="t", customer_ref=ref).customer_ref == ref

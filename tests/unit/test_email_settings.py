"""E-mail settings: names, defaults, validation, and the supervisor starting the connector."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.email.settings import EmailSettings
from pipeline.config import UpSettings, load
from pipeline.errors import ConfigError


def test_environment_names_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_IMAP_HOST", "imap.example.com")
    monkeypatch.setenv("FEEDBACK_IMAP_USER", "feedback@example.com")
    monkeypatch.setenv("FEEDBACK_IMAP_PASSWORD", "pw")
    monkeypatch.setenv("FEEDBACK_IMAP_FOLDERS", "INBOX, Feedback ,")
    s = load(EmailSettings)
    s.require_imap()
    assert s.imap_folders == ["INBOX", "Feedback"]
    assert (s.imap_security, s.port, s.imap_poll_seconds, s.imap_after_processing) == ("ssl", 993, 30.0, "none")
    assert s.account == "feedback@example.com@imap.example.com"
    monkeypatch.setenv("FEEDBACK_IMAP_SECURITY", "starttls")
    assert load(EmailSettings).port == 143


def test_missing_credentials_and_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("FEEDBACK_IMAP_HOST", "imap.example.com")
    with pytest.raises(ConfigError, match=r"FEEDBACK_IMAP_USER.*FEEDBACK_IMAP_PASSWORD"):
        load(EmailSettings).require_imap()
    monkeypatch.setenv("FEEDBACK_IMAP_SECURITY", "tls")
    with pytest.raises(ConfigError, match="FEEDBACK_IMAP_SECURITY"):
        load(EmailSettings)
    monkeypatch.delenv("FEEDBACK_IMAP_SECURITY")
    monkeypatch.setenv("FEEDBACK_IMAP_AFTER_PROCESSING", "move")
    with pytest.raises(ConfigError, match="FEEDBACK_IMAP_MOVE_TO"):
        load(EmailSettings)
    monkeypatch.setenv("FEEDBACK_IMAP_MOVE_TO", "Done")
    monkeypatch.setenv("FEEDBACK_IMAP_USER", "u")
    monkeypatch.setenv("FEEDBACK_IMAP_OAUTH2_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="FEEDBACK_IMAP_OAUTH2_TOKEN_FILE"):
        load(EmailSettings).require_imap()


def test_oauth2_token_file_wins_and_is_reread(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    s = EmailSettings(imap_oauth2_token="static", imap_oauth2_token_file=token)  # type: ignore[arg-type]
    assert s.oauth2_token() == "one"
    token.write_text("two")
    assert s.oauth2_token() == "two"
    assert EmailSettings(imap_oauth2_token="static").oauth2_token() == "static"  # type: ignore[arg-type]


def test_feedback_up_runs_the_connector_only_when_a_host_is_set(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from pipeline.supervisor import Supervisor

    monkeypatch.setenv("FEEDBACK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FEEDBACK_IMAP_HOST", raising=False)
    names = [c.name for c in Supervisor(load(UpSettings), with_broker=False).children]
    assert "email" not in names
    monkeypatch.setenv("FEEDBACK_IMAP_HOST", "imap.example.com")
    children = {c.name: c.argv for c in Supervisor(load(UpSettings), with_broker=False).children}
    assert children["email"][-2:] == ["connector", "email"]

"""The Zendesk poller's former cursor file moves into the state store once, without overwriting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.tickets.poller import import_legacy_cursor, state_namespace
from pipeline.config import ZendeskSettings
from pipeline.errors import ConfigError
from pipeline.state import MemoryStateStore
from tests.conftest import TEST_CUSTOMER_KEY


def settings(tmp_path: Path) -> ZendeskSettings:
    return ZendeskSettings(zendesk_base_url="http://127.0.0.1:8123", zendesk_email="a@example.com",
                           zendesk_api_token="t", data_dir=tmp_path, customer_hash_key=TEST_CUSTOMER_KEY,
                           zendesk_checkpoint_file=tmp_path / "zendesk.json")


def test_the_file_cursor_is_imported_once_and_the_file_renamed(tmp_path: Path) -> None:
    s, store = settings(tmp_path), MemoryStateStore()
    (tmp_path / "zendesk.json").write_text(json.dumps({"cursor": "c42", "updated_at": 1700000000.0}))
    import_legacy_cursor(s, store)
    assert state_namespace(s) == "zendesk:127.0.0.1_8123"
    assert store.get(state_namespace(s), "cursor") == {"cursor": "c42", "updated_at": 1700000000.0}
    assert not (tmp_path / "zendesk.json").exists() and (tmp_path / "zendesk.json.imported").exists()
    import_legacy_cursor(s, store)  # nothing left to import
    assert len(store.saves) == 1


def test_a_cursor_already_in_the_store_wins_and_a_broken_file_is_a_config_error(tmp_path: Path) -> None:
    s, store = settings(tmp_path), MemoryStateStore()
    store.save(state_namespace(s), {"cursor": {"cursor": "c99"}})
    (tmp_path / "zendesk.json").write_text(json.dumps({"cursor": "c1"}))
    import_legacy_cursor(s, store)
    assert store.get(state_namespace(s), "cursor") == {"cursor": "c99"}
    (tmp_path / "zendesk.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        import_legacy_cursor(s, store)

"""FEEDBACK_API_TOKENS entries and what a /v1/events caller may send (connectors.http.security)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from connectors.http.errors import ApiError
from connectors.http.security import ApiToken, admit_event, authenticate, parse_api_tokens
from pipeline.errors import ConfigError


def test_token_entries_old_and_new_forms() -> None:
    legacy, named, allowed = parse_api_tokens(["s3cret", "crm:tok-1", "desk:tok-2:webform|ticket|event"])
    assert (legacy.name, legacy.secret, legacy.sources) == (None, b"s3cret", frozenset())
    assert legacy.origin == "event:token-" + hashlib.sha256(b"s3cret").hexdigest()[:12]
    assert "s3cret" not in legacy.origin and "s3cret" not in repr(legacy)
    assert (named.name, named.secret, named.origin) == ("crm", b"tok-1", "event:crm")
    assert allowed.sources == frozenset({"webform", "ticket"})


@pytest.mark.parametrize("entry", ["bad name:tok", "crm:", "a:b:c:d", "crm:tok:sms", ":tok"])
def test_a_malformed_entry_names_the_variable(entry: str) -> None:
    with pytest.raises(ConfigError, match="FEEDBACK_API_TOKENS"):
        parse_api_tokens([entry])


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="same name"):
        parse_api_tokens(["crm:a", "crm:b"])


def test_authenticate_returns_the_matching_token() -> None:
    tokens = parse_api_tokens(["crm:tok-1", "desk:tok-2"])
    assert authenticate("Bearer tok-2", tokens) is tokens[1]
    assert authenticate("", []) is None  # no tokens configured: anonymous
    for header in ("", "Bearer ", "Bearer tok-3", "Basic tok-1"):
        with pytest.raises(ApiError) as err:
            authenticate(header, tokens)
        assert err.value.status == 401


def test_admit_event_rules() -> None:
    desk = ApiToken(b"t", "desk", frozenset({"webform"}))
    assert admit_event(0, {"source_ref": "r1", "text": "x"}, desk) == {
        "source_ref": "desk:r1", "text": "x", "origin": "event:desk"}
    assert admit_event(0, {"source": "webform", "source_ref": "r", "text": "x"}, desk)["source"] == "webform"
    assert admit_event(0, {"source_ref": "r1", "text": "x"}, None) == {"source_ref": "r1", "text": "x"}
    unnamed = ApiToken(b"t")
    assert admit_event(0, {"source_ref": "r1", "text": "x"}, unnamed)["source_ref"] == "r1"
    cases: list[tuple[dict[str, Any], ApiToken | None, int, str]] = [
        ({"source": "ticket", "source_ref": "r", "text": "x"}, desk, 403, "source_not_allowed"),
        ({"source": "webform", "source_ref": "r", "text": "x"}, None, 403, "source_not_allowed"),
        ({"source_ref": "r", "text": "x", "attributes": {"ticket_status": "solved"}}, desk, 403,
         "ticket_state_not_allowed"),
        ({"source_ref": "r", "text": "x", "attributes": {"csat_raw": "good"}}, None, 403, "ticket_state_not_allowed"),
        ({"source_ref": "r", "text": "x", "origin": "webform"}, desk, 422, "validation_failed"),
    ]
    for item, token, status, error in cases:
        with pytest.raises(ApiError) as err:
            admit_event(3, item, token)
        assert (err.value.status, err.value.error) == (status, error)

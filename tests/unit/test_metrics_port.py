"""Every component reads its /metrics port from FEEDBACK_METRICS_PORT; the former names still work."""

from __future__ import annotations

import pytest

from connectors.email.settings import EmailSettings
from pipeline.config import CommonSettings, ProcessorSettings, SinkSettings, ZendeskSettings, load
from pipeline.errors import ConfigError
from pipeline.signal_config import AlertSettings

FORMER = {ProcessorSettings: ("FEEDBACK_PROCESSOR_METRICS_PORT", 9101),
          SinkSettings: ("FEEDBACK_SINK_METRICS_PORT", 9102),
          AlertSettings: ("FEEDBACK_ALERT_METRICS_PORT", 9103),
          EmailSettings: ("FEEDBACK_IMAP_METRICS_PORT", 9104),
          ZendeskSettings: ("FEEDBACK_ZENDESK_METRICS_PORT", 9105)}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _ in [*FORMER.values(), ("FEEDBACK_METRICS_PORT", 0)]:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("cls", list(FORMER))
def test_defaults_and_the_unified_name(cls: type[CommonSettings], monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(cls).metrics_port == FORMER[cls][1]  # type: ignore[attr-defined]
    monkeypatch.setenv("FEEDBACK_METRICS_PORT", "7001")
    assert load(cls).metrics_port == 7001  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", list(FORMER))
def test_the_former_name_still_works_and_wins(cls: type[CommonSettings], monkeypatch: pytest.MonkeyPatch) -> None:
    """One environment may hold several components' ports (feedback up): the specific name wins."""
    former, _ = FORMER[cls]
    monkeypatch.setenv(former, "7002")
    monkeypatch.setenv("FEEDBACK_METRICS_PORT", "7001")
    settings = load(cls)
    assert settings.metrics_port == 7002  # type: ignore[attr-defined]
    old_attribute = former.removeprefix("FEEDBACK_").lower()
    assert getattr(settings, old_attribute) == 7002  # the former attribute name reads the same value


def test_a_bad_port_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_SINK_METRICS_PORT", "0")  # 0 (no /metrics) is only for the connectors
    with pytest.raises(ConfigError, match="FEEDBACK_SINK_METRICS_PORT: Input should be greater than or equal to 1"):
        load(SinkSettings)
    monkeypatch.setenv("FEEDBACK_IMAP_METRICS_PORT", "0")
    assert load(EmailSettings).metrics_port == 0


def test_set_by_name_in_code() -> None:
    assert load(SinkSettings, metrics_port=5).metrics_port == 5

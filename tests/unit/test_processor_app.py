"""The processor's faust app is configured for throughput from its settings (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ConfigError, ProcessorSettings, load


def test_the_producer_batches_as_the_settings_say(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from processors.app import create_app

    monkeypatch.setenv("FEEDBACK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FEEDBACK_PROCESSOR_LINGER_MS", "7")
    monkeypatch.setenv("FEEDBACK_PROCESSOR_PRODUCE_BATCH_BYTES", "2097152")
    app = create_app(load(ProcessorSettings))
    assert app.conf.producer_linger == 0.007
    assert app.conf.producer_max_batch_size == 2_097_152
    assert app.conf.producer_max_request_size >= 2_097_152  # a batch must fit in a request
    monkeypatch.delenv("FEEDBACK_PROCESSOR_LINGER_MS")
    monkeypatch.delenv("FEEDBACK_PROCESSOR_PRODUCE_BATCH_BYTES")
    defaults = create_app(load(ProcessorSettings))
    assert defaults.conf.producer_linger == 0.005 and defaults.conf.producer_max_batch_size == 1_048_576


def test_a_produce_batch_below_kafkas_default_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_PROCESSOR_PRODUCE_BATCH_BYTES", "1000")
    with pytest.raises(ConfigError, match="PRODUCE_BATCH_BYTES"):
        load(ProcessorSettings)

"""The follow-up sink's settings beside the other components': ports that `feedback up` can run together."""

from __future__ import annotations

from pathlib import Path

from connectors.email.settings import EmailSettings
from pipeline.config import HttpSettings, ProcessorSettings, SinkSettings, ZendeskSettings
from pipeline.signal_config import AlertSettings
from sinks.followups.sink import FollowupSettings


def test_every_component_has_its_own_default_port(tmp_path: Path) -> None:
    ports = {
        "http": HttpSettings(data_dir=tmp_path).http_port,
        "processor": ProcessorSettings(data_dir=tmp_path).metrics_port,
        "sink": SinkSettings(data_dir=tmp_path).sink_metrics_port,
        "alerts": AlertSettings(data_dir=tmp_path).metrics_port,
        "email": EmailSettings(data_dir=tmp_path).metrics_port,
        "zendesk": ZendeskSettings(data_dir=tmp_path).metrics_port,
        "followups": FollowupSettings(data_dir=tmp_path).metrics_port,
    }
    assert ports["followups"] == 9106
    assert len(set(ports.values())) == len(ports), ports


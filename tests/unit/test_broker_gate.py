"""The broker gate file: what the supervisor writes is what the publishers read; no file, no gate."""

from __future__ import annotations

from pathlib import Path

from pipeline.gate import ALWAYS_OPEN, UNKNOWN, BrokerGate, GateState


def test_written_state_is_read_back_and_compares_by_broker_start(tmp_path: Path) -> None:
    gate = BrokerGate(tmp_path / "broker.gate")
    assert gate.read() == UNKNOWN and not UNKNOWN.open  # before the supervisor wrote it: closed
    gate.write(GateState(open=True, epoch=1))
    assert gate.read() == GateState(open=True, epoch=1)
    assert (tmp_path / "broker.gate").read_text() == "open 1"
    gate.write(GateState(open=False, epoch=1))
    assert not gate.read().open
    gate.write(GateState(open=True, epoch=2))
    assert gate.read() != GateState(open=True, epoch=1)  # open again, but on another broker start
    assert [p.name for p in tmp_path.iterdir()] == ["broker.gate"]  # replaced atomically, no leftovers


def test_no_path_is_always_open_and_garbage_is_closed(tmp_path: Path) -> None:
    assert BrokerGate(None).read() == ALWAYS_OPEN and ALWAYS_OPEN.open
    (tmp_path / "g").write_text("half")
    assert BrokerGate(tmp_path / "g").read() == UNKNOWN

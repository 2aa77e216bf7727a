"""The pure helpers of ``tests.bench.memory_stage`` (issue 21); the memory figures come from running it."""

from __future__ import annotations

import pytest

from tests.bench.memory_stage import (
    count_arenas,
    faust_values,
    format_table,
    parse_assignments,
    parse_smaps_rollup,
    slope_per,
)


def test_assignments_keep_everything_after_the_first_equals_sign() -> None:
    assert parse_assignments(["MALLOC_ARENA_MAX=2", "X=a=b", "EMPTY="]) == {
        "MALLOC_ARENA_MAX": "2", "X": "a=b", "EMPTY": ""}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_assignments(["MALLOC_ARENA_MAX"])
    with pytest.raises(ValueError, match="--faust"):
        parse_assignments(["=1"], "--faust")


def test_faust_values_are_numbers_where_they_can_be() -> None:
    assert faust_values({"a": "1024", "b": "0.5", "c": "earliest"}) == {"a": 1024, "b": 0.5, "c": "earliest"}


def test_smaps_rollup_fields_in_bytes() -> None:
    text = ("55d0c0000000-7ffd00000000 ---p 00000000 00:00 0    [rollup]\n"
            "Rss:              183296 kB\nPss:              175000 kB\nAnonymous:        150000 kB\n")
    assert parse_smaps_rollup(text) == {"Rss": 183296 * 1024, "Pss": 175000 * 1024, "Anonymous": 150000 * 1024}


def test_arenas_are_the_heaps_of_malloc_info() -> None:
    xml = '<malloc version="1">\n<heap nr="0">\n<sizes>\n</sizes>\n</heap>\n<heap nr="1">\n</heap>\n<total/>\n</malloc>'
    assert count_arenas(xml) == 2


def test_slope_per_hundred_thousand_records() -> None:
    points = [(100_000.0, 200.0), (200_000.0, 210.0), (300_000.0, 220.0)]
    assert slope_per(points) == pytest.approx(10.0)
    assert slope_per(points[:1]) is None
    assert slope_per([(1.0, 1.0), (1.0, 2.0)]) is None


def test_table_lines_up_and_marks_missing_values() -> None:
    table = format_table([{"t_s": 0.0, "processed": 1.0, "rss_mb": 170.4},
                          {"t_s": 10.0, "processed": 12_345.0, "rss_mb": 181.0, "note": "idle"}])
    lines = table.splitlines()
    assert len(lines) == 3 and len({len(line.rstrip()) for line in lines[:2]}) == 1
    assert "12,345" in lines[2] and "181.0" in lines[2] and lines[2].rstrip().endswith("idle")
    assert " - " in lines[1]

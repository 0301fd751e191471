"""The monitor's --since window: durations and ISO times, and which log files can hold its rows."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlops_ray.exceptions import MonitorError
from mlops_ray.monitor.window import files_since, parse_since

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "ago"), [("24h", timedelta(hours=24)), ("30m", timedelta(minutes=30)),
                                          ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2)),
                                          ("90s", timedelta(seconds=90)), ("1.5h", timedelta(minutes=90)),
                                          (" 3 d ", timedelta(days=3))])
def test_durations_count_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - ago


def test_iso_times_are_utc_unless_they_name_a_zone() -> None:
    assert parse_since("2026-11-27", NOW) == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_since("2026-11-27T10:00:00Z", NOW) == datetime(2026, 11, 27, 10, tzinfo=UTC)
    paris = parse_since("2026-11-27T10:00:00+01:00", NOW)
    assert paris == datetime(2026, 11, 27, 9, tzinfo=UTC) and paris.tzinfo == UTC
    assert parse_since("2026-11-27T10:00", NOW).tzinfo == UTC
    assert parse_since("2026-11-27T10:00", NOW) != datetime(2026, 11, 27, 10, tzinfo=timezone(timedelta(hours=1)))


def test_case_huge_windows_and_old_dates_are_read_not_crashed_on() -> None:
    assert parse_since("24H", NOW) == NOW - timedelta(hours=24)
    assert parse_since("2026-11-27T10:00z", NOW) == datetime(2026, 11, 27, 10, tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_since("1000000d", NOW) == parse_since("99999999999d", NOW) == epoch  # was an OverflowError
    assert parse_since("1500-01-01", NOW) == epoch


@pytest.mark.parametrize(("text", "message"), [("yesterday", "neither a duration"), ("24 hours", "neither"),
                                               ("-1h", "neither"), ("2026-11-28", "in the future"),
                                               ("0s", "an empty window"), ("\u0663h", "neither"), ("", "neither")])
def test_bad_windows_say_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(MonitorError, match=message):
        parse_since(text, NOW)


def test_only_files_flushed_at_or_after_the_start_can_hold_its_rows(tmp_path: Path) -> None:
    old, new = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for f, t in ((old, NOW - timedelta(days=2)), (new, NOW)):
        f.write_bytes(b"")
        os.utime(f, (t.timestamp(), t.timestamp()))
    assert files_since([old, new], NOW - timedelta(days=1)) == [new]
    assert files_since([old, new], NOW - timedelta(days=3)) == [old, new]

"""The time window a monitor run judges (``--since``): parsing it, and the log files that can hold its rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlops_ray.exceptions import MonitorError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``24h``, ``30m``, ``7d``, ``2w``, ``90s`` (that long before ``now``) or an ISO 8601 time (UTC if it
    names no zone) -> an aware UTC datetime."""
    now = now or datetime.now(UTC)
    t = text.strip()
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw])", t.lower())
    if m:
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
        if seconds <= 0:
            raise MonitorError(f"--since {text!r} is an empty window; give a duration above 0 (24h, 30m)")
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:  # before year 1: every row is in the window (no log predates 1970)
            return datetime(1970, 1, 1, tzinfo=UTC)
    try:
        when = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", t))
    except ValueError:
        raise MonitorError(f"--since {text!r} is neither a duration (24h, 30m, 7d, 2w, 90s) nor an ISO time "
                           "(2026-11-27 or 2026-11-27T10:00:00Z)") from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when > now:
        raise MonitorError(f"--since {text!r} is in the future (now is {now.isoformat(timespec='seconds')})")
    return max(when, datetime(1970, 1, 1, tzinfo=UTC))  # no log predates 1970 (and pandas' times start in 1677)


def files_since(files: list[Path], since: datetime) -> list[Path]:
    """The files that may hold rows logged at or after ``since``: a log file is renamed into place when it is
    flushed, so its modification time is at or after its newest row, and an older file holds no such row."""
    cut = since.timestamp()
    return [f for f in files if f.stat().st_mtime >= cut]


def empty_window(what: str, since: datetime, detail: str = "") -> MonitorError:
    """The one error for a window that holds no logged prediction (``what``: "churn v3", say)."""
    return MonitorError(f"no prediction of {what} was logged since {since.isoformat(timespec='seconds')}{detail}; "
                        "widen --since or wait for traffic")

"""Feedback labels: appended to Parquet next to the prediction log, joined to it later by request id.

``record_feedback(directory, request_ids, labels, model_name=NAME)`` writes one file per call under
``<directory>/<NAME>/feedback/``. Ids not (yet) in the prediction log are stored anyway and reported back
in ``unknown_ids``: replicas flush their logs every ``monitor.flush_interval_s``, so a label can arrive
before its prediction is on disk; the monitor's join picks it up once the row lands. Ids that never appear
stay unjoined and are counted in the monitor report.

A request with several rows is logged as several rows sharing its id: the plain id labels its first row,
``"<request_id>#k"`` labels row k (0-based).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlops_ray.exceptions import MonitorError
from mlops_ray.monitor.logger import feedback_key, label_str, split_feedback_id

FEEDBACK_DIR = "feedback"


@dataclass
class FeedbackResult:
    """How many labels were stored, and which request ids the prediction log does not (yet) hold."""

    accepted: int
    unknown_ids: list[str] = field(default_factory=list)
    path: str | None = None


def model_dir(directory: str | Path, model_name: str | None) -> Path:
    return Path(directory) / model_name if model_name else Path(directory)


def log_files(model_folder: Path, version: str | None = None) -> list[Path]:
    """Prediction-log files of one model (one version, or all), oldest first."""
    pattern = f"v{version}/*.parquet" if version is not None else "v*/*.parquet"
    return sorted(model_folder.glob(pattern), key=lambda p: (p.stat().st_mtime, p.name))


def _unreadable_log(path: Path, e: Exception) -> Exception:
    from mlops_ray.exceptions import MonitorError

    return MonitorError(f"prediction-log file {path} cannot be read ({str(e).splitlines()[0][:200]}): move it out "
                        "of the log folder (a replica killed while writing can leave one)")


def log_columns(path: Path) -> list[str]:
    """A prediction-log file's column names (its Parquet footer), or a MonitorError naming the file."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError) as e:  # ArrowInvalid is a ValueError: a truncated or foreign file
        raise _unreadable_log(path, e) from e


def read_log(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A prediction-log file as a frame, or a MonitorError naming the file."""
    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, ValueError) as e:
        raise _unreadable_log(path, e) from e


def feedback_files(model_folder: Path) -> list[Path]:
    return sorted((model_folder / FEEDBACK_DIR).glob("*.parquet"), key=lambda p: (p.stat().st_mtime, p.name))


# Log files never change once renamed into place, so their id sets can be cached by (path, size, mtime).
_ID_CACHE: dict[tuple[str, int, float], dict[str, int]] = {}
_ID_CACHE_LOCK = threading.Lock()


def _ids_in(path: Path) -> dict[str, int]:
    """Request id -> how many rows of the file carry it (a request with k rows is logged as k rows)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime)
    with _ID_CACHE_LOCK:
        hit = _ID_CACHE.get(key)
    if hit is not None:
        return hit
    ids = dict(Counter(pq.read_table(path, columns=["request_id"]).column("request_id").to_pylist()))
    with _ID_CACHE_LOCK:
        if len(_ID_CACHE) > 10_000:
            _ID_CACHE.clear()
        _ID_CACHE[key] = ids
    return ids


def known_request_ids(model_folder: Path, wanted: set[str]) -> set[str]:
    """Which of ``wanted`` (plain ids, or ``"<id>#k"`` for row k) have a logged row in the model's log."""
    rows: dict[str, int] = {}
    bases = {split_feedback_id(w)[0] for w in wanted}
    for f in reversed(log_files(model_folder)):  # newest first: fresh feedback is about fresh requests
        counts = _ids_in(f)
        for base in bases & counts.keys():
            rows[base] = rows.get(base, 0) + counts[base]
        if len(rows) == len(bases):
            break
    known: set[str] = set()
    for w in wanted:
        base, row = split_feedback_id(w)
        if row < rows.get(base, 0):
            known.add(w)
    return known


def record_feedback(
    directory: str | Path,
    request_ids: Sequence[str],
    labels: Sequence[Any],
    *,
    model_name: str | None = None,
) -> FeedbackResult:
    """Append true labels for logged requests; unknown ids are stored too and reported back."""
    ids = [str(i) for i in request_ids]
    labs = list(labels)
    if not ids:
        raise MonitorError("feedback needs at least one request id and label")
    if len(ids) != len(labs):
        raise MonitorError(f"feedback: {len(ids)} request ids but {len(labs)} labels; send one label per id")
    bad = [i for i, rid in enumerate(ids) if not rid.strip()]
    if bad:
        raise MonitorError(f"feedback: empty request id at position(s) {bad[:10]}")
    texts = [label_str(v) for v in labs]
    missing = [ids[i] for i, t in enumerate(texts) if t is None]
    if missing:
        raise MonitorError(f"feedback: null label for request id(s) {missing[:10]}; send the true label")
    folder = model_dir(directory, model_name)
    values = [float(v) if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
              else np.nan for v in labs]
    df = pd.DataFrame({
        "request_id": pd.Series(ids, dtype="string"),
        "label": pd.Series(texts, dtype="string"),
        "label_value": pd.Series(values, dtype="float64"),
        "received_at": pd.Series([pd.Timestamp.now(tz="UTC")] * len(ids)).astype("datetime64[ms, UTC]"),
    })
    out = folder / FEEDBACK_DIR
    try:
        out.mkdir(parents=True, exist_ok=True)
        final = out / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = out / f".{final.name}.tmp"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, final)
    except OSError as e:
        raise MonitorError(f"could not write feedback under {out}: {e}") from e
    known = known_request_ids(folder, set(ids)) if folder.exists() else set()
    unknown = [i for i in dict.fromkeys(ids) if i not in known]
    return FeedbackResult(accepted=len(ids), unknown_ids=unknown, path=str(final))


FEEDBACK_COLUMNS = ("request_id", "label", "label_value", "received_at")


def _read_feedback_file(path: Path) -> pd.DataFrame:
    """One feedback file, or a MonitorError naming it: a damaged file, or one without a label column, would
    otherwise crash the monitor or count every row as a wrong answer."""
    from mlops_ray.exceptions import MonitorError

    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow's ArrowInvalid / OSError: not Parquet, truncated
        raise MonitorError(f"feedback file {path} cannot be read ({type(e).__name__}: {str(e)[:200]}); move it "
                           "aside (its labels are lost) and run again") from e
    missing = [c for c in FEEDBACK_COLUMNS if c not in df.columns]
    if missing:
        raise MonitorError(f"feedback file {path} lacks column(s) {missing} (it has {list(df.columns)}); it was "
                           "not written by mlops_ray: move it aside and run again")
    return df


def read_feedback(model_folder: Path) -> pd.DataFrame:
    """All feedback of a model, one row per request id (the latest label wins)."""
    files = feedback_files(model_folder)
    if not files:
        return pd.DataFrame({"request_id": pd.Series(dtype="string"), "label": pd.Series(dtype="string"),
                             "label_value": pd.Series(dtype="float64")})
    df = pd.concat([_read_feedback_file(f) for f in files], ignore_index=True)
    # "<id>#0" labels row 0, which the log keys by the plain id: one spelling for the join (the ingress
    # already scored it as row 0).
    df["request_id"] = [feedback_key(*split_feedback_id(str(i))) for i in df["request_id"]]
    df = df.sort_values("received_at", kind="stable").drop_duplicates("request_id", keep="last")
    return df[["request_id", "label", "label_value"]].reset_index(drop=True)

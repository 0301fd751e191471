"""The prediction log: buffered in memory, written to Parquet by a background thread, never on a request's path.

Used inside each Serve model replica::

    logger = PredictionLogger(dir, sample_rate=1.0, flush_rows=500, flush_interval_s=5.0,
                              model_name="iris", version="3", classes=["setosa", ...])
    logger.log(rows, predictions, probabilities, request_ids, timestamps)   # after each batch; O(batch) copy
    logger.close()                                                           # on shutdown: flushes the rest

Files land in ``<dir>/<model_name>/v<version>/<replica>-<seq>.parquet`` (one file per flush, written to a
temporary name and renamed, so a reader never sees half a file). Columns: ``request_id``, ``timestamp``
(UTC), ``model_name``, ``model_version``, one column per input feature (numbers as float64, anything else
as string), ``prediction`` (string for classifiers, float64 for regressors) and ``proba_<class>``.

Sampling is by a hash of the request id, so the same request is kept or dropped on every replica and a
feedback label can always find its row when the rate is 1. A failed write is retried at the next flush;
the buffer is bounded (``max_buffer_rows``) and rows dropped beyond it are counted, never hidden.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops_ray.exceptions import MonitorError

log = logging.getLogger(__name__)

BASE_COLUMNS = ("request_id", "row", "timestamp", "model_name", "model_version")
ROW_SEP = "#"  # feedback for row k of a multi-row request uses the id "<request_id>#k"


def feedback_key(request_id: str, row: int) -> str:
    """The id feedback uses for one logged row: the request id for its first row, ``id#k`` for row k."""
    return request_id if row == 0 else f"{request_id}{ROW_SEP}{row}"


def split_feedback_id(fid: str) -> tuple[str, int]:
    """``"abc#2"`` -> ("abc", 2); a plain id -> (id, 0)."""
    base, sep, tail = fid.rpartition(ROW_SEP)
    if sep and base and tail.isdigit():
        return base, int(tail)
    return fid, 0


def keep_request(request_id: str, sample_rate: float) -> bool:
    """Deterministic sampling: the same id gives the same answer in every process."""
    if sample_rate >= 1.0:
        return True
    if sample_rate <= 0.0:
        return False
    h = int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "big")
    return h / 2**64 < sample_rate


def version_dir(directory: str | Path, model_name: str, version: str | int) -> Path:
    return Path(directory) / model_name / f"v{version}"


@dataclass
class _Chunk:
    rows: Any  # list[dict], DataFrame or Arrow table, as given
    predictions: np.ndarray
    probabilities: np.ndarray | None
    request_ids: list[str]
    timestamps: Any


@dataclass
class LoggerStats:
    rows_seen: int = 0
    rows_sampled_out: int = 0
    rows_written: int = 0
    rows_dropped: int = 0  # buffer full (writes failing for long): counted, reported
    files_written: int = 0
    write_errors: int = 0
    last_error: str | None = None


class PredictionLogger:
    """Buffered, sampled, thread-safe Parquet prediction log for one model version in one replica."""

    def __init__(
        self,
        directory: str | Path,
        sample_rate: float = 1.0,
        flush_rows: int = 500,
        flush_interval_s: float = 5.0,
        model_name: str = "model",
        version: str | int = "1",
        *,
        classes: Sequence[Any] | None = None,
        feature_types: dict[str, str] | None = None,
        replica_id: str | None = None,
        max_buffer_rows: int | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise MonitorError(f"sample_rate must be in [0, 1], got {sample_rate}")
        if flush_rows < 1 or flush_interval_s <= 0:
            raise MonitorError(
                f"flush_rows must be >= 1 and flush_interval_s > 0, got {flush_rows} and {flush_interval_s}")
        self.directory = Path(directory)
        self.sample_rate = float(sample_rate)
        self.flush_rows = int(flush_rows)
        self.flush_interval_s = float(flush_interval_s)
        self.model_name = str(model_name)
        self.version = str(version)
        self.classes = [str(c) for c in classes] if classes is not None else None
        # column -> "double" | "string" (FeaturePipeline.input_types()): fixes the schema even for all-null batches
        self.feature_types = dict(feature_types or {})
        self.replica_id = replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.max_buffer_rows = int(max_buffer_rows or max(100 * self.flush_rows, 50_000))
        self.stats = LoggerStats()
        self._out = version_dir(self.directory, self.model_name, self.version)
        self._buffer: list[_Chunk] = []
        self._buffered_rows = 0
        self._seq = 0
        self._lock = threading.Lock()  # guards the buffer only; never held while writing
        self._write_lock = threading.Lock()  # one writer at a time (thread or close)
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"prediction-log-{self.model_name}", daemon=True)
        self._thread.start()
        # A clean interpreter exit flushes too, even if the owner forgot close().
        atexit.register(_close_ref, weakref.ref(self))

    # ------------------------------------------------------------------ hot path

    def log(
        self,
        rows: Sequence[dict[str, Any]] | pd.DataFrame | pa.Table,
        predictions: Sequence[Any] | np.ndarray,
        probabilities: np.ndarray | Sequence[Sequence[float]] | None = None,
        request_ids: Sequence[str] | None = None,
        timestamps: Sequence[Any] | None = None,
    ) -> int:
        """Buffer one batch (returns the rows kept after sampling); never blocks on IO."""
        if self._closed:
            raise MonitorError("PredictionLogger.log after close(); create a new logger")
        n = len(rows)
        preds = np.asarray(predictions)
        if preds.shape[0] != n:
            raise MonitorError(f"log: {n} rows but {preds.shape[0]} predictions")
        ids = [str(i) for i in request_ids] if request_ids is not None else [uuid.uuid4().hex for _ in range(n)]
        if len(ids) != n:
            raise MonitorError(f"log: {n} rows but {len(ids)} request ids")
        proba = None if probabilities is None else np.asarray(probabilities, dtype=np.float64)
        if proba is not None and (proba.ndim != 2 or proba.shape[0] != n):
            raise MonitorError(f"log: probabilities must be (rows, classes) = ({n}, K), got shape {proba.shape}")
        ts = timestamps if timestamps is not None else [time.time()] * n
        keep = [i for i, rid in enumerate(ids) if keep_request(rid, self.sample_rate)]
        with self._lock:
            self.stats.rows_seen += n
            self.stats.rows_sampled_out += n - len(keep)
        if not keep:
            return 0
        if len(keep) < n:
            if isinstance(rows, pa.Table):
                rows = rows.take(keep)
            else:
                rows = rows.iloc[keep] if isinstance(rows, pd.DataFrame) else [rows[i] for i in keep]
            preds, ids = preds[keep], [ids[i] for i in keep]
            proba = proba[keep] if proba is not None else None
            ts = [ts[i] for i in keep]
        elif not isinstance(rows, pd.DataFrame | pa.Table):
            rows = list(rows)  # the caller may reuse its list; the dicts themselves are not copied
        chunk = _Chunk(rows, preds.copy(), proba, ids, list(ts))
        with self._lock:
            if self._buffered_rows + len(keep) > self.max_buffer_rows:
                self.stats.rows_dropped += len(keep)
                return 0
            self._buffer.append(chunk)
            self._buffered_rows += len(keep)
            full = self._buffered_rows >= self.flush_rows
        if full:
            self._wake.set()
        return len(keep)

    # ------------------------------------------------------------------ background

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._closed:
                break
            self.flush()

    def flush(self) -> Path | None:
        """Write everything buffered as one Parquet file now (called by the thread, and by close)."""
        with self._write_lock:
            with self._lock:
                chunks, self._buffer = self._buffer, []
                self._buffered_rows = 0
            if not chunks:
                return None
            try:
                table = self._frame(_merge(chunks))
                path = self._write(table)
            except Exception as e:  # keep the rows for the next flush: a full disk must not kill a replica
                self.stats.write_errors += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
                log.warning("prediction log write failed (will retry): %s", self.stats.last_error)
                with self._lock:
                    self._buffer = chunks + self._buffer
                    self._buffered_rows += sum(len(c.request_ids) for c in chunks)
                return None
            self.stats.rows_written += len(table)
            self.stats.files_written += 1
            return path

    def _frame(self, c: _Chunk) -> pd.DataFrame:
        feats = _rows_frame(c.rows)
        n = len(c.request_ids)
        rid = pd.Series(c.request_ids, dtype="string")
        base = pd.DataFrame({
            "request_id": rid,
            # position of the row within its request (one request may carry many rows)
            "row": rid.groupby(rid, sort=False).cumcount().astype("int32"),
            "timestamp": _to_utc(c.timestamps),
            "model_name": [self.model_name] * n,
            "model_version": [self.version] * n,
        })
        cols = [base, _normalise_features(feats, self.feature_types)]
        if c.probabilities is not None:
            pred = pd.Series([label_str(p) for p in c.predictions], name="prediction", dtype="string")
            names = self.classes if self.classes and len(self.classes) == c.probabilities.shape[1] else [
                str(i) for i in range(c.probabilities.shape[1])]
            proba = pd.DataFrame(c.probabilities, columns=[f"proba_{k}" for k in names])
            cols += [pred.to_frame(), proba]
        else:
            cols.append(pd.Series(c.predictions, name="prediction").pipe(_normalise_column).to_frame())
        return pd.concat(cols, axis=1)

    def _write(self, df: pd.DataFrame) -> Path:
        self._out.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        final = self._out / f"{self.replica_id}-{self._seq:06d}.parquet"
        tmp = self._out / f".{final.name}.tmp"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, final)  # atomic: readers see whole files only
        return final

    # ------------------------------------------------------------------ shutdown

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the thread and flush what is buffered (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout_s)
        self.flush()
        if self._buffered_rows:
            log.error("prediction log: %d rows could not be written at close: %s", self._buffered_rows,
                      self.stats.last_error)

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending_rows(self) -> int:
        return self._buffered_rows


def _rows_frame(rows: Any) -> pd.DataFrame:
    if isinstance(rows, pa.Table):
        return rows.to_pandas()
    return rows.reset_index(drop=True) if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def _merge(chunks: list[_Chunk]) -> _Chunk:
    """All buffered chunks as one: the per-flush pandas work is then paid once, not once per model batch."""
    if len(chunks) == 1:
        return chunks[0]
    if all(isinstance(c.rows, pa.Table) for c in chunks):
        rows: Any = pa.concat_tables([c.rows for c in chunks], promote_options="permissive")
    else:
        rows = pd.concat([_rows_frame(c.rows) for c in chunks], ignore_index=True)
    probas = [c.probabilities for c in chunks]
    width = next((p.shape[1] for p in probas if p is not None), None)
    proba = None if width is None else np.vstack([
        p if p is not None else np.full((len(c.request_ids), width), np.nan)
        for p, c in zip(probas, chunks, strict=True)])
    return _Chunk(rows, np.concatenate([c.predictions for c in chunks]), proba,
                  [i for c in chunks for i in c.request_ids], [t for c in chunks for t in c.timestamps])


def _close_ref(ref: weakref.ReferenceType[PredictionLogger]) -> None:
    obj = ref()
    if obj is not None:
        obj.close()


def _to_utc(values: Sequence[Any]) -> pd.Series:
    s = pd.Series(list(values))
    if pd.api.types.is_numeric_dtype(s):
        return pd.to_datetime(s.astype("float64"), unit="s", utc=True).astype("datetime64[ms, UTC]")
    return pd.to_datetime(s, utc=True).astype("datetime64[ms, UTC]")


def _normalise_column(s: pd.Series, kind: str | None = None) -> pd.Series:
    """Numbers as float64, everything else as nullable strings: one stable schema across flushes."""
    if kind == "double" or (kind is None and pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
        return pd.to_numeric(s, errors="coerce").astype("float64")
    return s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).astype("string")


def _normalise_features(df: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    clash = [c for c in df.columns if c in BASE_COLUMNS or c == "prediction" or str(c).startswith("proba_")]
    if clash:
        raise MonitorError(f"feature columns {clash} clash with the prediction log's own columns; rename them")
    return pd.DataFrame({str(c): _normalise_column(df[c], types.get(str(c))) for c in df.columns})


def label_str(value: Any) -> str | None:
    """One canonical text form for labels and predictions, so 1, 1.0 and "1" compare equal in the join."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)

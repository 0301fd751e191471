"""PredictionLogger and feedback: buffering off the hot path, flush rules, schema, concurrency, close."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops_ray.exceptions import MonitorError
from mlops_ray.monitor.feedback import read_feedback, record_feedback
from mlops_ray.monitor.logger import PredictionLogger, keep_request, label_str


def _read(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("m/v1/*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def test_schema_and_flush_on_close(tmp_path: Path) -> None:
    lg = PredictionLogger(tmp_path, 1.0, flush_rows=1000, flush_interval_s=60, model_name="m", version=1,
                          classes=["a", "b"], feature_types={"x": "double", "c": "string"})
    rows = [{"x": 1, "c": "u"}, {"x": None, "c": None}]
    assert lg.log(rows, ["a", "b"], [[0.9, 0.1], [0.2, 0.8]], ["r1", "r2"], [1_700_000_000.0, 1_700_000_001.0]) == 2
    assert not list(tmp_path.rglob("*.parquet"))  # nothing written yet: below flush_rows, interval not reached
    lg.close()
    df = _read(tmp_path)
    assert list(df.columns) == ["request_id", "row", "timestamp", "model_name", "model_version", "x", "c",
                                "prediction", "proba_a", "proba_b"]
    assert df["request_id"].tolist() == ["r1", "r2"]
    assert df["model_version"].tolist() == ["1", "1"]
    assert df["x"].dtype == np.float64 and np.isnan(df["x"][1])
    assert str(df["timestamp"].dtype).startswith("datetime64[ms, UTC]")
    assert df["proba_b"].tolist() == [0.1, 0.8]
    lg.close()  # idempotent
    with pytest.raises(MonitorError, match="after close"):
        lg.log(rows, ["a", "b"])


def test_arrow_and_pandas_batches_land_in_one_file_in_order(tmp_path: Path) -> None:
    """A model replica logs Arrow batches; many batches are written as one file, rows in arrival order."""
    with PredictionLogger(tmp_path, 1.0, flush_rows=1000, flush_interval_s=60, model_name="m", version=1,
                          classes=["a", "b"], feature_types={"x": "double", "c": "string"}) as lg:
        lg.log(pa.table({"x": [1.0, None], "c": ["u", None]}), ["a", "b"], [[0.9, 0.1], [0.2, 0.8]], ["r1", "r1"])
        lg.log(pd.DataFrame({"x": [3.0], "c": ["w"]}), ["b"], [[0.3, 0.7]], ["r2"])
        lg.log(pa.table({"x": [4.0], "c": ["v"]}), ["a"], [[0.6, 0.4]], ["r3"])
    files = list(tmp_path.rglob("*.parquet"))
    df = _read(tmp_path)
    assert len(files) == 1 and df["request_id"].tolist() == ["r1", "r1", "r2", "r3"]
    assert df["row"].tolist() == [0, 1, 0, 0]
    assert df["x"].tolist()[2:] == [3.0, 4.0] and np.isnan(df["x"][1])
    assert df["c"].isna().tolist() == [False, True, False, False] and df["prediction"].tolist() == ["a", "b", "b", "a"]
    assert df["proba_b"].tolist() == [0.1, 0.8, 0.7, 0.4]


def test_flush_by_rows_happens_in_background(tmp_path: Path) -> None:
    with PredictionLogger(tmp_path, 1.0, flush_rows=10, flush_interval_s=60, model_name="m", version=1) as lg:
        lg.log(pd.DataFrame({"x": np.arange(12.0)}), np.arange(12.0))
        deadline = time.time() + 5
        while lg.stats.files_written == 0 and time.time() < deadline:
            time.sleep(0.01)
        assert lg.stats.files_written == 1 and lg.stats.rows_written == 12
    assert len(_read(tmp_path)) == 12


def test_flush_by_interval(tmp_path: Path) -> None:
    with PredictionLogger(tmp_path, 1.0, flush_rows=1000, flush_interval_s=0.1, model_name="m", version=1) as lg:
        lg.log([{"x": 1.0}], [3.0])
        deadline = time.time() + 5
        while lg.stats.files_written == 0 and time.time() < deadline:
            time.sleep(0.02)
        assert lg.stats.files_written == 1


def test_log_never_waits_on_a_slow_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lg = PredictionLogger(tmp_path, 1.0, flush_rows=5, flush_interval_s=60, model_name="m", version=1)
    slow = threading.Event()
    real = lg._write

    def slow_write(df: pd.DataFrame) -> Path:
        slow.wait(5)  # the disk hangs until released
        return real(df)

    monkeypatch.setattr(lg, "_write", slow_write)
    lg.log([{"x": float(i)} for i in range(5)], np.zeros(5))  # triggers a flush that will hang
    time.sleep(0.05)
    t0 = time.perf_counter()
    for _ in range(200):
        lg.log([{"x": 1.0}], [0.0])
    assert time.perf_counter() - t0 < 0.5  # the hot path is not blocked by the hung writer
    slow.set()
    lg.close()
    assert len(_read(tmp_path)) == 205


def test_failed_write_is_retried_and_nothing_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lg = PredictionLogger(tmp_path, 1.0, flush_rows=1000, flush_interval_s=60, model_name="m", version=1)
    real, calls = lg._write, {"n": 0}

    def flaky(df: pd.DataFrame) -> Path:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return real(df)

    monkeypatch.setattr(lg, "_write", flaky)
    lg.log([{"x": 1.0}, {"x": 2.0}], [0.0, 1.0])
    assert lg.flush() is None and lg.stats.write_errors == 1 and lg.pending_rows == 2
    lg.close()
    assert len(_read(tmp_path)) == 2


def test_concurrent_logging_from_many_threads(tmp_path: Path) -> None:
    lg = PredictionLogger(tmp_path, 1.0, flush_rows=50, flush_interval_s=0.05, model_name="m", version=1)

    def worker(k: int) -> None:
        for j in range(100):
            lg.log([{"x": float(j)}], [float(k)], request_ids=[f"t{k}-{j}"])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lg.close()
    df = _read(tmp_path)
    assert len(df) == 800 and df["request_id"].is_unique
    names = [p.name for p in (tmp_path / "m" / "v1").glob("*.parquet")]
    assert len(names) == len(set(names)) == lg.stats.files_written
    assert not list((tmp_path / "m" / "v1").glob(".*tmp"))


def test_sampling_is_deterministic_by_request_id(tmp_path: Path) -> None:
    ids = [f"req-{i}" for i in range(4000)]
    kept = [keep_request(i, 0.25) for i in ids]
    assert 0.22 < np.mean(kept) < 0.28
    assert kept == [keep_request(i, 0.25) for i in ids]
    with PredictionLogger(tmp_path, 0.25, flush_rows=10_000, model_name="m", version=1) as lg:
        lg.log([{"x": 1.0}] * 4000, np.zeros(4000), request_ids=ids)
        assert lg.stats.rows_sampled_out == 4000 - sum(kept)
    assert set(_read(tmp_path)["request_id"]) == {i for i, k in zip(ids, kept, strict=True) if k}


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="sample_rate"):
        PredictionLogger(tmp_path, 1.5)
    with PredictionLogger(tmp_path, model_name="m", version=1) as lg:
        with pytest.raises(MonitorError, match="2 rows but 1 predictions"):
            lg.log([{"x": 1}, {"x": 2}], [1])
        with pytest.raises(MonitorError, match="probabilities"):
            lg.log([{"x": 1}], [1], probabilities=[0.5, 0.5])


def test_label_str_makes_labels_comparable() -> None:
    assert label_str(1) == label_str(1.0) == label_str(np.int64(1)) == "1"
    assert label_str("setosa") == "setosa" and label_str(None) is None and label_str(True) == "True"


def test_feedback_accepts_and_reports_unknown_ids(tmp_path: Path) -> None:
    with PredictionLogger(tmp_path, model_name="m", version=1) as lg:
        lg.log([{"x": 1.0}, {"x": 2.0}], ["a", "b"], request_ids=["r1", "r2"])
    res = record_feedback(tmp_path, ["r1", "r9"], ["a", 1.0], model_name="m")
    assert res.accepted == 2 and res.unknown_ids == ["r9"]
    res2 = record_feedback(tmp_path, ["r1"], ["b"], model_name="m")  # a correction: the latest label wins
    assert res2.unknown_ids == []
    fb = read_feedback(tmp_path / "m").set_index("request_id")
    assert fb.loc["r1", "label"] == "b" and fb.loc["r9", "label"] == "1" and fb.loc["r9", "label_value"] == 1.0


def test_multi_row_request_rows_are_addressed_by_index(tmp_path: Path) -> None:
    with PredictionLogger(tmp_path, model_name="m", version=1) as lg:
        lg.log([{"x": 1.0}, {"x": 2.0}, {"x": 3.0}], [0, 1, 2], request_ids=["q", "q", "q"])
    assert _read(tmp_path)["row"].tolist() == [0, 1, 2]
    assert record_feedback(tmp_path, ["q", "q#2", "z#1"], [0, 2, 1], model_name="m").unknown_ids == ["z#1"]
    assert record_feedback(tmp_path, ["q#1", "q#3"], [1, 3], model_name="m").unknown_ids == ["q#3"]  # no row 3


def test_feedback_bad_input(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="2 request ids but 1 labels"):
        record_feedback(tmp_path, ["a", "b"], [1], model_name="m")
    with pytest.raises(MonitorError, match="null label"):
        record_feedback(tmp_path, ["a"], [None], model_name="m")
    with pytest.raises(MonitorError, match="at least one"):
        record_feedback(tmp_path, [], [], model_name="m")
    assert not (tmp_path / "m" / "feedback").exists()  # nothing half-written


def test_row_zero_by_either_spelling_and_unreadable_feedback_files(tmp_path: Path) -> None:
    """"q#0" is row 0 (the log keys it by the plain id); a damaged or foreign feedback file is named, not a
    traceback, and never read as labels (a file without `label` counted every row as a wrong answer)."""
    record_feedback(tmp_path, ["q#0", "q#2"], [1, 0], model_name="m")
    assert sorted(read_feedback(tmp_path / "m")["request_id"]) == ["q", "q#2"]
    folder = tmp_path / "m" / "feedback"
    (folder / "zz-garbage.parquet").write_bytes(b"not parquet")
    with pytest.raises(MonitorError, match=r"feedback file .*zz-garbage.parquet cannot be read"):
        read_feedback(tmp_path / "m")
    (folder / "zz-garbage.parquet").unlink()
    pd.DataFrame({"request_id": ["q"], "received_at": [pd.Timestamp.now(tz="UTC")]}).to_parquet(folder / "zz.parquet")
    with pytest.raises(MonitorError, match=r"lacks column\(s\) \['label', 'label_value'\]"):
        read_feedback(tmp_path / "m")

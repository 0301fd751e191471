"""The retrain data: original rows + new data + labelled logged rows, with the training dtypes. No Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_ray.config import parse_config
from mlops_ray.exceptions import MonitorError
from mlops_ray.monitor.feedback import record_feedback
from mlops_ray.monitor.logger import PredictionLogger
from mlops_ray.monitor.retrain import build_retrain_data, retrain_config
from mlops_ray.runtime import resolve_runtime


def _setup(tmp_path: Path, **retrain: object) -> tuple[object, object]:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(size=50), "color": rng.choice(["r", "g"], 50), "y": rng.integers(0, 2, 50)})
    data.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "cfg.yaml").write_text("")
    cfg = parse_config({"name": "m", "data": {"source": {"path": "train.csv"}, "target": "y"},
                        "monitor": {"retrain": retrain}}, str(tmp_path / "cfg.yaml"))
    rt = resolve_runtime(cfg, workdir=tmp_path / "work", tracking_uri="sqlite:///unused.db")
    return cfg, rt


def test_combined_table_has_original_and_labelled_rows(tmp_path: Path) -> None:
    cfg, rt = _setup(tmp_path)
    with PredictionLogger(rt.monitor_dir, model_name="m", version=1, classes=["0", "1"],
                          feature_types={"x": "double", "color": "string"}) as lg:
        rows = [{"x": 9.0, "color": "r"}, {"x": 8.0, "color": "b"}, {"x": 7.0, "color": "g"}]
        lg.log(rows, [1, 0, 1], [[0.2, 0.8], [0.7, 0.3], [0.1, 0.9]], ["a", "b", "c"])
    # another version served a different feature set: its rows cannot join this training table
    with PredictionLogger(rt.monitor_dir, model_name="m", version=2) as lg:
        lg.log([{"z": 1.0}], [1], request_ids=["d"])
    record_feedback(rt.monitor_dir, ["a", "c", "d", "a"], [0, 1, 1, 1], model_name="m")  # "a" corrected to 1
    data = build_retrain_data(cfg, rt)
    out = pd.read_parquet(data.path)
    assert data.rows_original == 50 and data.rows_feedback == 2 and len(out) == 52
    assert len(data.skipped_files) == 1 and "/v2/" in data.skipped_files[0]
    tail = out.tail(2).reset_index(drop=True)
    assert tail["x"].tolist() == [9.0, 7.0] and tail["y"].tolist() == [1, 1]
    assert out["y"].dtype == np.int64 and list(out.columns) == ["x", "color", "y"]
    new = retrain_config(cfg, data.path)
    assert new.data.source.path == str(data.path.resolve()) and new.data.source.format == "parquet"
    assert cfg.data.source.path == "train.csv"  # the original config is untouched
    assert (data.path.parent / "manifest.json").is_file()


def test_new_data_is_added_and_checked(tmp_path: Path) -> None:
    pd.DataFrame({"x": [1.0], "color": ["r"], "y": [0]}).to_parquet(tmp_path / "new.parquet")
    cfg, rt = _setup(tmp_path, new_data="new.parquet")
    data = build_retrain_data(cfg, rt)
    assert data.rows_new_data == 1 and data.rows_feedback == 0 and len(pd.read_parquet(data.path)) == 51
    pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "new.parquet")
    with pytest.raises(MonitorError, match="has no target column 'y'"):
        build_retrain_data(cfg, rt)
    pd.DataFrame({"x": [1.0], "y": [0]}).to_parquet(tmp_path / "new.parquet")  # was median-filled "color"
    with pytest.raises(MonitorError, match=r"lacks training column\(s\) \['color'\]"):
        build_retrain_data(cfg, rt)


def test_retrain_summary_reads_like_the_deploy_output() -> None:
    from types import SimpleNamespace

    from mlops_ray.monitor.retrain import RetrainResult

    dep = SimpleNamespace(model="bc", url="http://127.0.0.1:8000", decision={"reason": "canary at 10% of traffic"},
                          status={"traffic": {"1": 90.0, "2": 10.0}})
    reg = SimpleNamespace(name="bc", version="2", accepted=True)
    text = RetrainResult(True, ["drift in 3 features"], pipeline=SimpleNamespace(registration=reg,
                                                                                   deployment=dep)).summary()
    assert "registered bc v2: gate accepted" in text
    assert "serving bc at http://127.0.0.1:8000: canary at 10% of traffic (v1: 90%, v2: 10%)" in text
    assert "Deployment(" not in text and "namespace(" not in text


def test_retrain_since_an_empty_window_is_refused_before_ray_or_a_head_starts(tmp_path: Path) -> None:
    """Found by review: the window was checked by the monitor, after the serving head had been started."""
    from datetime import UTC, datetime

    from mlops_ray.monitor.retrain import retrain

    cfg, rt = _setup(tmp_path)
    with PredictionLogger(rt.monitor_dir, model_name="m", version=1, classes=["0", "1"],
                          feature_types={"x": "double", "color": "string"}) as lg:
        lg.log([{"x": 1.0, "color": "r"}], [1], [[0.2, 0.8]], ["a"])
    since = datetime.now(UTC)
    with pytest.raises(MonitorError, match=r"no prediction of m was logged since .*widen --since"):
        retrain(cfg, rt, since=since)  # unit tests cannot start Ray: reaching it would fail otherwise

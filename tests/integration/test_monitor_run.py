"""run_monitor on a real local Ray and a real MLflow store: drift, feedback join, report, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_ray.config import parse_config
from mlops_ray.exceptions import MonitorError
from mlops_ray.monitor.feedback import record_feedback
from mlops_ray.monitor.logger import PredictionLogger
from mlops_ray.monitor.profile import profile_from_frame
from mlops_ray.monitor.run import predictions_dir, run_monitor
from mlops_ray.runtime import Runtime

CLASSES = ["no", "yes"]


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"age": rng.normal(40 + shift * 10, 10, n), "income": rng.lognormal(10, 0.5, n),
                         "city": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])})


def _predict(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    p_yes = 1 / (1 + np.exp(-(df["age"].to_numpy() - 40) / 5))
    return np.where(p_yes > 0.5, "yes", "no"), np.c_[1 - p_yes, p_yes]


def _cfg(name: str = "churn", **monitor: object) -> object:
    return parse_config({"name": name, "data": {"source": {"path": "x.csv"}, "target": "y"},
                         "monitor": {"drift": {"min_rows": 100}, **monitor}})


def _log(runtime: Runtime, df: pd.DataFrame, version: int = 1, name: str = "churn", start: int = 0,
         at: float | None = None) -> list[str]:
    """Log ``df`` as served predictions (``at``: their time, default now)."""
    ids = [f"v{version}-{start + i}" for i in range(len(df))]
    labels, proba = _predict(df)
    with PredictionLogger(predictions_dir(runtime), 1.0, flush_rows=150, flush_interval_s=60, model_name=name,
                          version=version, classes=CLASSES, feature_types={"age": "double", "income": "double",
                                                                          "city": "string"}) as lg:
        for s in range(0, len(df), 50):  # many small batches, several files
            stamps = None if at is None else [at] * len(df.iloc[s:s + 50])
            lg.log(df.iloc[s:s + 50], labels[s:s + 50], proba[s:s + 50], ids[s:s + 50], stamps)
            if s % 150 == 100:
                lg.flush()  # several files, as several flush intervals would make
    return ids


@pytest.fixture
def reference() -> object:
    rng = np.random.default_rng(0)
    ref = _frame(rng, 3000)
    return profile_from_frame(ref, prediction=_predict(ref)[0])


def test_no_drift_and_accuracy_with_interval(ray_session: str, runtime: Runtime, reference: object) -> None:
    rng = np.random.default_rng(1)
    live = _frame(rng, 600)
    ids = _log(runtime, live)
    truth, _ = _predict(live)
    flip = rng.random(600) < 0.1  # the model is right 90% of the time
    labels = np.where(flip, np.where(truth == "yes", "no", "yes"), truth)
    res = record_feedback(predictions_dir(runtime), [*ids[:400], "ghost"], [*labels[:400], "no"], model_name="churn")
    assert res.unknown_ids == ["ghost"]
    rep = run_monitor(_cfg(), runtime, "churn", 1, reference=reference, engine="ray")
    assert rep.n_rows == 600 and rep.n_files >= 4 and rep.n_labelled == 400
    assert not rep.drift.drift_detected and not rep.retrain
    live_acc = rep.performance.live
    assert live_acc is not None and live_acc.method == "wilson"
    assert live_acc.low < 1 - flip[:400].mean() + 1e-9 < live_acc.high + 1e-9
    assert live_acc.estimate == pytest.approx(1 - flip[:400].mean())
    html = Path(rep.html_path).read_text()
    assert "data:image/png;base64," in html and "no action" in html
    assert {p.name for p in Path(rep.report_dir).glob("*.png")} == {"distributions.png", "drift_scores.png",
                                                                    "metric_over_time.png"}
    import mlflow

    run = mlflow.get_run(rep.mlflow_run_id)
    assert run.data.tags["mlops_ray.stage"] == "monitor" and run.data.metrics["rows"] == 600
    assert "live_accuracy" in run.data.metrics
    assert "monitor" in rep.summary() and "live accuracy" in rep.summary()


def test_injected_drift_triggers_retrain(ray_session: str, runtime: Runtime, reference: object) -> None:
    rng = np.random.default_rng(2)
    live = _frame(rng, 500, shift=1.5)
    live["city"] = rng.choice(["a", "b", "c", "zz"], 500, p=[0.1, 0.2, 0.3, 0.4])  # a new city appears
    _log(runtime, live)
    rep = run_monitor(_cfg(), runtime, "churn", 1, reference=reference, log_to_mlflow=False, engine="ray")
    assert any("Ray Data" in n for n in rep.notes)
    local = run_monitor(_cfg(), runtime, "churn", 1, reference=reference, write_report=False, engine="local")
    assert [f.p_value for f in local.drift.features] == [f.p_value for f in rep.drift.features]
    assert rep.drift.drift_detected
    assert {"age", "city"} <= set(rep.drift.material_features)
    assert "income" not in rep.drift.drifted_features
    assert rep.drift.prediction_drift
    assert rep.retrain and any("material drift" in r for r in rep.decision.reasons)
    city = next(f for f in rep.drift.features if f.name == "city")
    assert "zz" in city.new_categories
    assert "unknown" in rep.summary()  # no feedback: said, not an error


def test_since_judges_only_the_recent_rows(ray_session: str, runtime: Runtime, reference: object) -> None:
    import os
    import time
    from datetime import UTC, datetime, timedelta

    rng = np.random.default_rng(4)
    two_days_ago = time.time() - 2 * 86400
    _log(runtime, _frame(rng, 400, shift=1.5), at=two_days_ago)  # drifted, before the retrain
    folder = predictions_dir(runtime) / "churn" / "v1"
    old_files = sorted(folder.glob("*.parquet"))
    for f in old_files[:2]:  # two of them as they would be on disk: written then (skipped unread)
        os.utime(f, (two_days_ago, two_days_ago))
    _log(runtime, _frame(rng, 300), start=1000)  # healthy, since
    assert run_monitor(_cfg(), runtime, "churn", 1, reference=reference, write_report=False).retrain
    since = datetime.now(UTC) - timedelta(hours=1)
    for engine in ("local", "ray"):
        rep = run_monitor(_cfg(), runtime, "churn", 1, reference=reference, write_report=False, engine=engine,
                          since=since)
        assert rep.n_rows == 300 and not rep.drift.drift_detected and not rep.retrain, engine
        assert rep.n_files == len(list(folder.glob("*.parquet"))) - 2
        assert any(n.startswith("window: rows logged since ") for n in rep.notes)
        assert rep.time_range[0] >= pd.Timestamp(since)
    with pytest.raises(MonitorError, match=r"no prediction of churn v1 was logged since .*widen --since"):
        run_monitor(_cfg(), runtime, "churn", 1, reference=reference, write_report=False,
                    since=datetime.now(UTC))


def test_too_few_rows_are_not_judged(ray_session: str, runtime: Runtime, reference: object) -> None:
    _log(runtime, _frame(np.random.default_rng(3), 60, shift=2.0))
    rep = run_monitor(_cfg(), runtime, "churn", 1, reference=reference, write_report=False)
    assert not rep.drift.enough_data and not rep.retrain
    assert any("min_rows" in n for n in rep.decision.notes)


def test_clear_errors(ray_session: str, runtime: Runtime, reference: object) -> None:
    from mlflow import MlflowClient

    # Never registered: says so (and retrain stops before starting anything, a serving head included).
    with pytest.raises(MonitorError, match=r"model 'churn' is not registered in sqlite:.*mlops-ray run CONFIG"):
        run_monitor(_cfg(), runtime, "churn", 1, reference=reference)
    assert not (runtime.workdir / "mlflow.db").exists()  # asking did not create a store
    # A new process (no Ray yet), as a user runs it: the error comes before any Ray or serving head starts.
    cfg_path = runtime.workdir / "pipe.yaml"
    cfg_path.write_text("name: churn\nsteps: [data, tune, register, deploy]\ndata:\n  source: {path: x.csv}\n"
                        "  target: y\n")
    fresh = runtime.workdir / "fresh"
    done = subprocess.run([sys.executable, "-m", "mlops_ray.cli", "retrain", str(cfg_path), "--workdir", str(fresh)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "model 'churn' is not registered" in done.stderr, done.stderr
    assert not (fresh / "serve" / "head.json").exists() and "Ray" not in done.stderr
    MlflowClient(runtime.tracking_uri).create_registered_model("churn")
    with pytest.raises(MonitorError, match="no prediction logs for model 'churn'"):
        run_monitor(_cfg(), runtime, "churn", 1, reference=reference)
    _log(runtime, _frame(np.random.default_rng(4), 200), version=1)
    with pytest.raises(MonitorError, match=r"model 'churn' has no version 7 in the registry; versions with logs: 1"):
        run_monitor(_cfg(), runtime, "churn", 7, reference=reference)
    for _ in range(2):  # registered versions 1 and 2; only 1 has logs
        MlflowClient(runtime.tracking_uri).create_model_version("churn", source=str(runtime.workdir))
    with pytest.raises(MonitorError, match=r"prediction log of churn v2 is empty.*versions with logs: 1"):
        run_monitor(_cfg(), runtime, "churn", 2, reference=reference)
    # version 2 was served with another feature set (a column renamed)
    old = _frame(np.random.default_rng(5), 200).rename(columns={"income": "salary"})
    labels, proba = _predict(old)
    with PredictionLogger(predictions_dir(runtime), model_name="churn", version=2, classes=CLASSES) as lg:
        lg.log(old, labels, proba)
    with pytest.raises(MonitorError, match=r"(?s)lacks \['income'\].*'salary'.*version\(s\) 2"):
        run_monitor(_cfg(), runtime, "churn", 1, reference=reference, all_versions=True)
    # A reference of another model's data (no log file has its columns): the reference is blamed, not the logs.
    other = profile_from_frame(_frame(np.random.default_rng(7), 300).rename(columns={"income": "wage"}))
    with pytest.raises(MonitorError, match=r"the reference profile passed in has columns .*'wage'.*but none of "
                                           r"the \d+ prediction-log files does .*leave --reference out"):
        run_monitor(_cfg(), runtime, "churn", 1, reference=other)
    with pytest.raises(MonitorError, match="no reference profile for churn v1"):
        run_monitor(_cfg(), runtime, "churn", 1)
    # A log file cut short (a replica killed while writing): named, with what to do, not pyarrow's traceback.
    bad = predictions_dir(runtime) / "churn" / "v1" / "broken.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(MonitorError, match=r"prediction-log file .*broken\.parquet cannot be read .*move it out"):
        run_monitor(_cfg(), runtime, "churn", 1, reference=reference)
    bad.unlink()


def test_cli_prints_the_decision_and_exit_code(ray_session: str, runtime: Runtime, reference: object,
                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from mlops_ray.cli import main

    rng = np.random.default_rng(6)
    _log(runtime, _frame(rng, 300, shift=1.5))
    ref_path = reference.save(tmp_path / "reference.json")
    cfg_path = tmp_path / "pipe.yaml"
    cfg_path.write_text("name: churn\ndata:\n  source: {path: x.csv}\n  target: y\n"
                        "monitor:\n  drift: {min_rows: 100}\n")
    base = ["monitor", "churn", "--config", str(cfg_path), "--version", "1", "--reference", str(ref_path),
            "--workdir", str(runtime.workdir), "--no-mlflow"]
    assert main([*base, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["retrain"] is True and "age" in out["material_features"] and Path(out["report"]).is_file()
    saved = json.loads((Path(out["report"]).parent / "summary.json").read_text())  # written before its own path
    assert {**out, "report": None, "mlflow_run_id": None} == {**saved, "report": None, "mlflow_run_id": None}
    assert {f["name"] for f in out["drift"]["features"]} == {"age", "income", "city"}
    assert main(["monitor", "nobody", "--workdir", str(runtime.workdir)]) == 1
    assert "model 'nobody' is not registered" in capsys.readouterr().err
    # on a schedule a failing run is reported and retried at the next tick; the last one failing exits 1
    assert main(["monitor", "nobody", "--workdir", str(runtime.workdir), "--every", "0.1", "--count", "2"]) == 1
    assert capsys.readouterr().err.count("is not registered") == 2
    # a config file where the model name goes: the usage, not "model '...yaml' is not registered"
    assert main(["monitor", str(cfg_path), "--workdir", str(runtime.workdir)]) == 1
    assert f"mlops-ray monitor NAME --config {cfg_path}" in capsys.readouterr().err
    assert main([*base, "--every", "0.1", "--count", "2", "--fail-on-retrain"]) == 3
    assert capsys.readouterr().out.count("decision: RETRAIN") == 2
    assert main([*base, "--since", "1h", "--json"]) == 0  # every row was logged just now
    assert json.loads(capsys.readouterr().out)["rows"] == 300
    assert main([*base, "--json", "--every", "0.1", "--count", "2"]) == 0  # a schedule: JSON Lines
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(json.loads(line)["rows"] == 300 for line in lines)
    assert main([*base, "--since", "yesterday", "--every", "0.1"]) == 1  # refused before the first run
    assert "--since 'yesterday' is neither a duration" in capsys.readouterr().err


def test_all_versions_says_whose_logs_it_scanned(ray_session: str, runtime: Runtime, reference: object) -> None:
    old_ids = _log(runtime, _frame(np.random.default_rng(7), 150), version=1, name="multi")
    new_ids = _log(runtime, _frame(np.random.default_rng(8), 150), version=3, name="multi")
    # v1 was always wrong, v3 always right: v3's accuracy must not be dragged down by v1's labels
    flip = {"yes": "no", "no": "yes"}
    v1_pred, _ = _predict(_frame(np.random.default_rng(7), 150))
    v3_pred, _ = _predict(_frame(np.random.default_rng(8), 150))
    record_feedback(predictions_dir(runtime), old_ids, [flip[p] for p in v1_pred], model_name="multi")
    record_feedback(predictions_dir(runtime), new_ids[:100], list(v3_pred[:100]), model_name="multi")
    for engine in ("local", "ray"):
        rep = run_monitor(_cfg("multi"), runtime, "multi", 3, reference=reference, all_versions=True,
                          write_report=False, engine=engine)
        assert rep.n_rows == 300 and rep.n_files >= 2
        assert rep.notes[0].startswith("logs of every version scanned (v1, v3)") and "v3's" in rep.notes[0]
        assert rep.n_labelled == 100 and rep.performance.live.estimate == 1.0, engine
        assert "live accuracy from v3's 100 labelled rows (of 250 in all versions)" in rep.notes

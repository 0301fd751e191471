"""The closed loop, end to end: train + serve v1, drifted traffic with feedback, the monitor decides to retrain,
the retrained v2 meets the registry gate and rolls out as a canary that is promoted or rolled back by the rules.

Real parts only: a detached local Ray head, Ray Serve over HTTP, a SQLite MLflow store, Ray Data and Tune.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

DRIFTED = ["mean radius", "mean perimeter", "mean area", "worst radius", "worst perimeter", "worst area",
           "mean texture", "worst texture", "mean concavity", "worst concavity"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(workdir: Path) -> Any:
    from mlops_ray.config import parse_config

    return parse_config({
        "name": "loop", "workdir": str(workdir), "seed": 1,
        "data": {"source": {"bundled": "breast_cancer"}, "split": {"folds": 2, "holdout_fraction": 0.3}},
        "tune": {"model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
                 "search_space": {"C": {"loguniform": [0.05, 5.0]}}, "num_samples": 2, "max_concurrent": 2,
                 "resources": {"cpu": 0.5}},
        "registry": {"gate": {"n_bootstrap": 200, "confidence": 0.9}},
        "serve": {"port": _free_port(), "app_name": "loop-e2e", "replica_cpus": 0.25, "max_batch_size": 8,
                  "autoscaling": {"min_replicas": 1, "max_replicas": 1},
                  "canary": {"steps": [50.0, 100.0], "window_s": 3.0, "min_requests": 10,
                             "max_p99_ratio": 50.0, "max_prediction_psi": 5.0}},
        "monitor": {"flush_rows": 50, "flush_interval_s": 0.5, "drift": {"min_rows": 100},
                    "retrain": {"drifted_features_fraction": 0.2}},
    })


def _traffic(url: str, token: str, rows: list[dict[str, Any]], prefix: str) -> list[str]:
    import httpx

    ids = []
    with httpx.Client(timeout=60.0, headers={"Authorization": f"Bearer {token}"}) as client:
        for i, row in enumerate(rows):
            rid = f"{prefix}-{i}"
            r = client.post(f"{url}/v1/models/loop/predict", json={"rows": [row]}, headers={"X-Request-ID": rid})
            assert r.status_code == 200, r.text
            assert r.json()["request_id"] == rid
            ids.append(rid)
    return ids


def test_drift_to_retrain_to_canary(tmp_path: Path) -> None:
    # Its own process: the scenario joins a detached head of its own, and a test process may already hold the
    # session's in-process Ray (one Ray connection per process).
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}"}
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, __file__, str(tmp_path)], env=env, capture_output=True, text=True,
                       timeout=900, cwd=Path(__file__).resolve().parents[2])
    print(r.stdout[-4000:])
    assert r.returncode == 0, f"closed loop failed:\n{r.stdout[-4000:]}\n{r.stderr[-6000:]}"
    assert "closed loop: v2 gate" in r.stdout


def scenario(tmp_path: Path) -> None:
    import httpx
    import ray

    from mlops_ray import serve as mserve
    from mlops_ray.data import load_bundled
    from mlops_ray.monitor.retrain import attach_reference, retrain
    from mlops_ray.monitor.run import run_monitor
    from mlops_ray.pipeline import run_pipeline
    from mlops_ray.runtime import resolve_runtime
    from mlops_ray.serve.controller import connect

    cfg = _config(tmp_path / "work")
    # MLFLOW_TRACKING_URI (set by the test) is the store every process uses: the Ray head and its Serve
    # replicas inherit the environment, as when a user sets it for a shared MLflow.
    rt = resolve_runtime(cfg)
    rt.ensure_dirs()
    # This workdir's detached head (as `mlops-ray deploy` starts it), joined with its auth settings;
    # every later stage finds Ray connected.
    mserve.ensure_local_head(rt, num_cpus=4)
    connect(rt, start_head=False)
    try:
        # 1. train, register (champion v1), deploy
        first = run_pipeline(cfg, rt, log=lambda s: None)
        v1 = str(first.registration.version)
        assert first.deployment is not None and first.registration.is_champion
        assert attach_reference(rt, first) is not None  # the reference the monitor reads, with predictions
        token, url = first.deployment.token, first.deployment.url

        # 2. drifted traffic: ten size/texture features scaled up by 35%, then true labels as feedback
        data = load_bundled("breast_cancer").sample(frac=1.0, random_state=3).reset_index(drop=True)
        live = data.drop(columns="target").head(240).copy()
        live[DRIFTED] = live[DRIFTED] * 1.35
        ids = _traffic(url, token, live.to_dict(orient="records"), "drift")
        fb = httpx.post(f"{url}/v1/models/loop/feedback", json={"request_ids": ids,
                        "labels": data["target"].head(240).tolist()}, headers={"Authorization": f"Bearer {token}"},
                        timeout=60.0)
        assert fb.status_code == 200, fb.text
        time.sleep(2.0)  # one flush interval (0.5 s) and then some

        # 3. the monitor sees the drift and decides to retrain
        report = run_monitor(cfg, rt, "loop")
        assert report.version == v1 and report.n_rows == 240 and report.n_labelled == 240
        assert report.drift.drift_detected and set(report.drift.material_features) & set(DRIFTED)
        assert report.retrain, report.summary()
        assert Path(report.html_path).is_file() and report.mlflow_run_id

        # 4. retrain on original + labelled logged rows -> same data, tune, gate and deploy steps
        result = retrain(cfg, rt, report=report)
        assert result.retrained and result.data is not None and result.data.rows_feedback == 240
        reg = result.pipeline.registration
        v2 = str(reg.version)
        assert v2 != v1 and reg.decision is not None
        print(f"closed loop: v{v2} gate {'accepted' if reg.accepted else 'rejected'} ({reg.decision.reason})")
        if not reg.accepted:
            # The gate said no: the deploy step keeps the champion v1 serving and never routes to v2.
            assert result.pipeline.deployment.version == v1
            st = mserve.status(rt)["models"]["loop"]
            assert st["phase"] == "stable" and str(st["stable"]) == v1, st
            return
        assert result.pipeline.deployment.version == v2
        # 5. the canary rolls out under live traffic and ends promoted or rolled back, by the rollout rules
        outcome = None
        fresh = data.drop(columns="target").iloc[240:].to_dict(orient="records")
        deadline = time.time() + 240
        i = 0
        while time.time() < deadline and outcome is None:
            _traffic(url, token, fresh[i % len(fresh): i % len(fresh) + 20], f"canary-{i}")
            i += 20
            st = mserve.status(rt)["models"]["loop"]
            if st["phase"] == "stable":
                outcome = "promoted" if str(st["stable"]) == v2 else "rolled back"
        assert outcome is not None, f"the canary of v{v2} neither promoted nor rolled back: {st}"
        print(f"closed loop: canary v{v2} {outcome}; last decisions {st.get('decisions', [])[-3:]}")
        final = run_monitor(cfg, rt, "loop", write_report=False)  # the monitor follows the registry's champion
        assert final.version in (v1, v2) and final.n_rows > 0
    finally:
        try:
            mserve.shutdown(rt)
        finally:
            mserve.stop_local_head(rt)  # no-op when shutdown stopped it; never leave a head behind
            if ray.is_initialized():
                ray.shutdown()


if __name__ == "__main__":
    scenario(Path(sys.argv[1]))

"""Zero failed requests under steady load through deploy, canary steps, promotion, automatic and manual rollback.

Versions come from a real MLflow registry (``models:/clf/N``); the automatic rollback restores the
champion alias and records its reason on the model version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops_ray.runtime import Runtime, configure_mlflow, ensure_experiment, resolve_runtime
from tests.integration.serve_support import Load, make_config, make_model

PORT = 18040
MODEL = "clf"


def register(rt: Runtime, fitted: Any) -> str:
    import mlflow

    from mlops_ray.registry import log_fitted_model

    exp = ensure_experiment(rt, "serve-rollout-test")
    with mlflow.start_run(experiment_id=exp):
        info = log_fitted_model(fitted, bundle_code=False)
    return str(mlflow.register_model(info.model_uri, MODEL).version)


def wait_for(pred: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = pred()
        if out:
            return out
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@pytest.mark.slow
def test_rollout_under_load_answers_every_request(ray_session: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from mlops_ray import registry
    from mlops_ray.serve import deploy, rollback, shutdown, status
    from mlops_ray.serve.auth import read_tokens

    rt = resolve_runtime(None, workdir=tmp_path / "work", tracking_uri=f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    rt.ensure_dirs()
    configure_mlflow(rt)
    # Short windows for the test; p99 ratio loose because a 2-core shared machine is noisy.
    cfg = make_config(PORT, str(rt.workdir), canary={"steps": [10, 50, 100], "window_s": 1.5, "min_requests": 30,
                                                     "max_p99_ratio": 8.0, "max_prediction_psi": 0.25})
    v1, v2, v3 = register(rt, make_model(0)), register(rt, make_model(1)), register(rt, make_model(2, skewed=True))
    registry.promote(rt, MODEL, v1, "test")
    cl = MlflowClient(rt.tracking_uri, rt.tracking_uri)

    def current() -> dict[str, Any]:
        return status(rt)["models"][MODEL]

    def decisions() -> list[str]:
        return [f"{d['action']}:{d['version']}" for d in current()["decisions"]]

    dep = deploy(cfg, rt, model=MODEL)  # the champion alias
    assert dep.version == v1 and dep.source == f"models:/{MODEL}/{v1}"
    tok = read_tokens(rt.serve_dir, token_env="UNSET_T", admin_token_env="UNSET_A", env=lambda _: None).token
    try:
        with Load(dep.url, tok, MODEL, threads=3, pause_s=0.005) as load:
            time.sleep(1.0)
            # 1. a good version: canary 10% -> 50% -> 100% -> promoted, by passing windows. Deployed by number
            # while v1 is still the champion: the promotion moves the alias, so the registry says what serves.
            d2 = deploy(cfg, rt, model=MODEL, version=v2)
            assert d2.decision["action"] == "canary" and d2.status["traffic"] == {v1: 90.0, v2: 10.0}
            wait_for(lambda: current()["stable"] == v2 and current()["canary"] is None, 120, "promotion of v2")
            assert [a for a in decisions() if a.startswith(("step", "promote"))] == [
                f"step:{v2}", f"step:{v2}", f"promote:{v2}"]
            assert current()["previous"] == v1  # kept warm
            wait_for(lambda: str(cl.get_registered_model(MODEL).aliases.get("champion")) == v2, 30,
                     "champion alias follows the promotion")
            from mlops_ray.registry.store import alias_history

            moved = wait_for(lambda: [m for m in alias_history(cl, MODEL) if m.alias == "champion" and m.version == v2],
                             30, "the alias move recorded")  # written just after the alias itself
            assert moved[-1].actor == "serve" and "serving" in moved[-1].reason
            # 2. a bad version (its predictions are skewed): rolled back by the analysis, alias restored
            registry.promote(rt, MODEL, v3, "test")
            deploy(cfg, rt, model=MODEL, version=v3, canary_pct=50)
            wait_for(lambda: f"rollback:{v3}" in decisions(), 120, "automatic rollback of v3")
            st = current()
            assert st["traffic"] == {v2: 100.0} and st["canary"] is None
            reason = next(d["reason"] for d in st["decisions"] if d["action"] == "rollback")
            assert "PSI" in reason
            wait_for(lambda: str(cl.get_registered_model(MODEL).aliases.get("champion")) == v2, 30, "alias restored")
            tags = wait_for(lambda: cl.get_model_version(MODEL, v3).tags.get("mlops_ray.serve.reason"), 30, "tag")
            assert "PSI" in tags
            # 3. manual rollback: traffic flips to the warm previous version at once
            out = rollback(rt, MODEL, "test manual rollback")
            assert out["flip_seconds"] < 0.01 and out["call_seconds"] < 1.0
            assert out["status"]["traffic"] == {v1: 100.0}
            t0 = time.perf_counter()
            with httpx.Client() as c:
                body = {"rows": [{"x0": 0.1, "x1": 0.2, "x2": 0.3, "color": "red"}]}
                seen = {c.post(f"{dep.url}/v1/models/{MODEL}/predict", json=body,
                               headers={"Authorization": f"Bearer {tok}"}).json()["model_version"] for _ in range(20)}
            assert seen == {v1} and time.perf_counter() - t0 < 5
            # 4. two flips back to back (v1 -> v2 -> v1): their MLflow records must not race each other
            rollback(rt, MODEL, "flip")
            rollback(rt, MODEL, "flip back")
            time.sleep(1.0)
        res = load.result
        assert res.total > 300, res.codes
        assert set(res.codes) == {200}, (res.codes, res.failures[:5])
        assert {v1, v2, v3} <= set(res.versions), res.versions
        st = status(rt)
        assert st["models"][MODEL]["stable"] == v1 and st["models"][MODEL]["previous"] == v2
        # The CLI rollbacks restore the alias: it ends on what serves, however quickly traffic flipped.
        wait_for(lambda: registry.resolve_version(rt, MODEL).version == v1, 30, "champion alias on v1")
        time.sleep(3.0)  # no late write moves it afterwards
        assert registry.resolve_version(rt, MODEL).version == v1
    finally:
        shutdown(rt, stop_head=False)

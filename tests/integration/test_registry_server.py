"""Against a real `mlflow server` on loopback (own SQLite + artifact folder), and against one that is down."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from mlops_ray.config import parse_config
from mlops_ray.exceptions import RegistryError
from mlops_ray.registry import (
    find_cached_registration,
    list_versions,
    load_fitted_model,
    promote,
    register_model,
    resolve_version,
    rollback,
)
from mlops_ray.runtime import Runtime, ensure_experiment, resolve_runtime
from tests._registry_support import FakeSearch, fit_features, fit_model, make_frame, make_prepared

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
           "--artifacts-destination", (root / "artifacts").as_uri(), "--serve-artifacts"]
    log = open(root / "server.log", "wb")  # closed in the finally below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a loaded CI machine can take minutes to start it
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (started with start_new_session)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _setup(rt: Runtime):
    df = make_frame(300, seed=2)
    train, hold = df.iloc[:180], df.iloc[180:]
    features = fit_features(train)
    return train, make_prepared(train, hold, features, fingerprint="fp-server")


def _search(rt: Runtime, cfg, model) -> FakeSearch:
    exp = ensure_experiment(rt, cfg.experiment_name)
    with mlflow.start_run(experiment_id=exp) as run:
        pass
    return FakeSearch(model=model, parent_run_id=run.info.run_id, experiment_id=exp)


def test_register_gate_and_load_through_a_tracking_server(mlflow_server: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    rt = resolve_runtime(None, workdir=tmp_path / "work")
    assert rt.tracking_uri == mlflow_server
    cfg = parse_config({"name": "served", "data": {"source": {"bundled": "iris"}},
                        "registry": {"gate": {"n_bootstrap": 200, "thresholds": {"accuracy": 0.5}}}})
    train, prepared = _setup(rt)
    weak = fit_model(train, LogisticRegression(), prepared.features, columns=["x2", "color=red"])
    strong = fit_model(train, LogisticRegression(), prepared.features)

    first = register_model(cfg, rt, _search(rt, cfg, weak), prepared)
    second = register_model(cfg, rt, _search(rt, cfg, strong), prepared)
    assert first.accepted and second.accepted, second.decision.reason
    assert second.aliases == {"champion": "2", "previous": "1"}
    third = register_model(cfg, rt, _search(rt, cfg, weak), prepared)
    assert not third.accepted and third.aliases["challenger"] == "3"

    champ = load_fitted_model("models:/served@champion", tracking_uri=rt.tracking_uri)
    np.testing.assert_array_equal(champ.predict(prepared.holdout_frame), strong.predict(prepared.holdout_frame))
    pyf = mlflow.pyfunc.load_model("models:/served/2")
    assert list(pyf.predict(prepared.holdout_frame.head(3)).columns) == ["prediction", "proba_no", "proba_yes"]

    rollback(rt, "served", reason="server test", actor="ci")
    assert resolve_version(rt, "served").version == "1"
    promote(rt, "served", "2", reason="back", actor="ci")
    assert [v.version for v in list_versions(rt, "served")] == ["3", "2", "1"]
    assert resolve_version(rt, "served", alias="previous").version == "1"
    # Three identical runs (same data and training config): the cache answers with the champion, v2.
    assert find_cached_registration(rt, cfg, "fp-server").version == "2"
    # Artifacts went through the server (--serve-artifacts), not to the client's disk.
    assert not (tmp_path / "work" / "mlartifacts" / "served").exists()


def test_registry_server_down_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    # Explicit URI: mlflow.set_tracking_uri in earlier tests also exports MLFLOW_TRACKING_URI.
    local = resolve_runtime(None, workdir=tmp_path / "local", tracking_uri=f"sqlite:///{tmp_path / 'local' / 'm.db'}")
    local.ensure_dirs()
    ensure_experiment(local, "down")  # a real search run, made while a store was up
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("down").experiment_id) as run:
        pass
    train, prepared = _setup(local)
    cfg = parse_config({"name": "down", "data": {"source": {"bundled": "iris"}}})
    search = FakeSearch(model=fit_model(train, LogisticRegression(), prepared.features),
                        parent_run_id=run.info.run_id, experiment_id="0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    rt = resolve_runtime(None, workdir=tmp_path / "work")
    t0 = time.monotonic()
    with pytest.raises(RegistryError, match=r"not reachable.*Start it .*or unset MLFLOW_TRACKING_URI"):
        register_model(cfg, rt, search, prepared)
    for call in (lambda: promote(rt, "down", 1), lambda: rollback(rt, "down"), lambda: resolve_version(rt, "down"),
                 lambda: load_fitted_model("models:/down@champion", tracking_uri=down)):
        with pytest.raises(RegistryError, match="not reachable"):
            call()
    # The pipeline (run, tune, register) checks before Ray and the data step: it used to hang in the search.
    from mlops_ray.pipeline import run_pipeline

    with pytest.raises(RegistryError, match="not reachable"):
        run_pipeline(cfg, rt, steps=["data", "tune"], log=lambda _: None)
    assert time.monotonic() - t0 < 30  # fails fast, not after MLflow's retry back-off
    # Nothing was written anywhere: no local fallback store, no version in the real one.
    assert not (tmp_path / "work").exists()
    assert MlflowClient(local.tracking_uri).search_registered_models() == []

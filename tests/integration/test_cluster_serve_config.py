"""cluster/serve_config.yaml on the local test Ray: its import_path and args build the app, which answers over HTTP.

The config goes through Serve's own schema and builder call (what `serve deploy` does on a cluster); only the
args that point at the cluster's MLflow and workdir are replaced by this test's temporary store.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from mlops_ray.config import load_config, parse_config
from mlops_ray.exceptions import ServeError
from mlops_ray.runtime import Runtime
from tests._registry_support import FakeSearch, fit_features, fit_model, make_frame, make_prepared

REPO = Path(__file__).resolve().parents[2]
PORT = 18040  # Serve's HTTP port is fixed per Ray cluster: every Serve test module uses this one


def _register_champion(runtime: Runtime, name: str) -> None:
    """A tiny real model registered as version 1 (champion) of ``name`` in the test's MLflow store."""
    import mlflow

    from mlops_ray.registry import register_model
    from mlops_ray.runtime import ensure_experiment

    cfg = parse_config({"name": name, "data": {"source": {"bundled": "iris"}, "target": "label"},
                        "registry": {"gate": {"n_bootstrap": 200, "thresholds": {"accuracy": 0.4}}}})
    df = make_frame(300, seed=3)
    train, hold = df.iloc[:200], df.iloc[200:]
    features = fit_features(train)
    prepared = make_prepared(train, hold, features)
    model = fit_model(train, LogisticRegression(), features)
    exp_id = ensure_experiment(runtime, cfg.experiment_name)
    with mlflow.start_run(experiment_id=exp_id, run_name="search") as run:
        mlflow.log_metric("cv_mean", 0.9)
    search = FakeSearch(model=model, parent_run_id=run.info.run_id, experiment_id=exp_id,
                        holdout_metrics={"accuracy": 0.9})
    reg = register_model(cfg, runtime, search, prepared)
    assert reg.accepted and reg.aliases.get("champion") == "1", reg


def _app_spec(runtime: Runtime) -> object:
    from ray.serve.schema import ServeDeploySchema

    spec = ServeDeploySchema.parse_obj(yaml.safe_load((REPO / "cluster" / "serve_config.yaml").read_text()))
    assert len(spec.applications) == 1
    app = spec.applications[0]
    # What the cluster's runtime_env / working_dir provide there, this test's store and checkout provide here.
    app.args = {**app.args, "tracking_uri": runtime.tracking_uri, "workdir": str(runtime.workdir)}
    return app


def test_serve_config_deploys_and_answers_an_authenticated_predict(ray_session: str, runtime: Runtime) -> None:
    from ray import serve
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    from mlops_ray.registry import load_fitted_model
    from mlops_ray.serve.auth import read_tokens

    app = _app_spec(runtime)
    cfg = load_config(REPO / app.args["config"])
    _register_champion(runtime, cfg.model_name)

    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    built = call_user_app_builder_with_args_if_necessary(import_attr(app.import_path), app.args)
    serve.run(built, name=app.name, route_prefix=app.route_prefix)
    try:
        tokens = read_tokens(runtime.serve_dir, token_env=cfg.serve.auth.token_env,
                             admin_token_env=cfg.serve.auth.admin_token_env, env=lambda _: None)
        rows = make_frame(6, seed=11).drop(columns=["label"])
        url = f"http://127.0.0.1:{PORT}/v1/models/{cfg.model_name}/predict"
        body = {"rows": rows.to_dict(orient="records")}
        denied = httpx.post(url, json=body, timeout=30)
        assert denied.status_code == 401, denied.text
        r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {tokens.token}"}, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["model_name"] == cfg.model_name and out["model_version"] == "1"
        expected = load_fitted_model(f"models:/{cfg.model_name}/1", tracking_uri=runtime.tracking_uri)
        assert out["predictions"] == list(expected.predict(pd.DataFrame(rows)))
        proba = np.asarray(out["probabilities"])
        assert proba.shape == (6, 2) and np.allclose(proba.sum(axis=1), 1.0)
        status = serve.get_app_handle(app.name).status.remote().result()
        versions = status["models"][cfg.model_name]["versions"]
        assert versions == {"1": {"app": app.name, "source": f"models:/{cfg.model_name}/1", "device": "cpu"}}
    finally:
        serve.delete(app.name)
    assert app.name not in serve.status().applications


def test_build_app_refuses_bad_args(tmp_path: Path) -> None:
    from mlops_ray.serve.app import build_app

    with pytest.raises(ServeError, match=r"args\.config"):
        build_app({"alias": "champion"})
    with pytest.raises(ServeError, match="unknown build_app args"):
        build_app({"config": "examples/breast_cancer.yaml", "model": "x"})
    with pytest.raises(ServeError, match="not both"):
        build_app({"config": "examples/breast_cancer.yaml", "alias": "champion", "version": 2})
    with pytest.raises(ServeError, match="not found"):
        build_app({"config": str(tmp_path / "missing.yaml")})

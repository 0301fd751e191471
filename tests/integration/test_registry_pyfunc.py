"""The packaged model through MLflow's own loader, in a plain Python process with no Ray."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from mlops_ray.config import parse_config
from mlops_ray.exceptions import RegistryError
from mlops_ray.registry import load_fitted_model, log_fitted_model, register_model
from mlops_ray.runtime import Runtime, ensure_experiment
from tests._registry_support import FakeSearch, fit_features, fit_model, make_frame, make_prepared

SCRIPT = textwrap.dedent("""
    import json, sys
    import mlflow
    import pandas as pd

    uri, model_uri, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(model_uri)
    out = model.predict(pd.DataFrame(rows))
    import mlops_ray
    print(json.dumps({
        "columns": list(out.columns),
        "prediction": out["prediction"].tolist(),
        "proba_yes": out["proba_yes"].tolist(),
        "ray_imported": any(m == "ray" or m.startswith("ray.") for m in sys.modules),
        "mlops_ray_from": mlops_ray.__file__,
        "input_names": model.metadata.get_input_schema().input_names(),
    }))
""")


def test_pyfunc_loads_in_a_plain_process_without_ray(runtime: Runtime, tmp_path: Path) -> None:
    df = make_frame(200)
    train, hold = df.iloc[:140], df.iloc[140:]
    features = fit_features(train)
    prepared = make_prepared(train, hold, features)
    model = fit_model(train, RandomForestClassifier(n_estimators=8, random_state=0), features)
    cfg = parse_config({"name": "pyfunc-test", "data": {"source": {"bundled": "iris"}}})
    exp = ensure_experiment(runtime, cfg.experiment_name)
    with mlflow.start_run(experiment_id=exp) as run:
        pass
    reg = register_model(cfg, runtime, FakeSearch(model=model, parent_run_id=run.info.run_id, experiment_id=exp),
                         prepared)
    rows = hold[features.input_columns].head(7)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, runtime.tracking_uri, "models:/pyfunc-test@champion",
                           rows.to_json(orient="records")],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["columns"] == ["prediction", "proba_no", "proba_yes"]
    assert out["prediction"] == model.predict(rows).tolist()
    np.testing.assert_allclose(out["proba_yes"], model.predict_proba(rows)[:, 1])
    assert not out["ray_imported"]
    # The model carries its own copy of the package (MLflow code_paths): it loads where mlops_ray is not installed.
    assert "/code/mlops_ray/" in out["mlops_ray_from"]
    assert out["input_names"] == ["x1", "x2", "color"]
    assert reg.model_uri == "models:/pyfunc-test/1"


def test_logged_model_has_signature_and_example(runtime: Runtime) -> None:
    df = make_frame(80)
    model = fit_model(df, RandomForestClassifier(n_estimators=3, random_state=0))
    exp = ensure_experiment(runtime, "sig")
    with mlflow.start_run(experiment_id=exp):
        info = log_fitted_model(model, input_example=df, bundle_code=False)
    sig = info.signature
    assert [(c.name, c.type.name) for c in sig.inputs.inputs] == [("x1", "double"), ("x2", "double"),
                                                                  ("color", "string")]
    assert [c.name for c in sig.outputs.inputs] == ["prediction", "proba_no", "proba_yes"]
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    example = json.loads((local / "input_example.json").read_text())
    assert example["columns"] == ["x1", "x2", "color"] and len(example["data"]) == 5
    assert (local / "artifacts" / "fitted" / "estimator.skops").is_file()
    assert not list(local.rglob("*.pkl")) and not (local / "python_model.pkl").exists()
    # The same model loads as a FittedModel from the logged folder and from its URI.
    for src in (local, info.model_uri):
        loaded = load_fitted_model(src)
        np.testing.assert_array_equal(loaded.predict(df), model.predict(df))
    # Bad input through pyfunc: a missing column is refused with the column named.
    pyf = mlflow.pyfunc.load_model(info.model_uri)
    with pytest.raises(Exception, match="x1"):
        pyf.predict(pd.DataFrame({"x2": [0.1], "color": ["red"]}))
    with pytest.raises(RegistryError, match="does not exist"):
        load_fitted_model(local / "missing")


def test_integer_inputs_pass_mlflows_schema_check(runtime: Runtime) -> None:
    """The training frame itself (an int64 column) goes through pyfunc: MLflow refuses int64 -> double."""
    df = make_frame(80).assign(x2=lambda d: (d.x2 * 10).round().astype("int64"))
    features = fit_features(df)
    features.numeric[1].raw_type = "int"
    model = fit_model(df, RandomForestClassifier(n_estimators=3, random_state=0), features)
    exp = ensure_experiment(runtime, "sig-int")
    with mlflow.start_run(experiment_id=exp):
        info = log_fitted_model(model, bundle_code=False)
    assert [c.type.name for c in info.signature.inputs.inputs] == ["double", "long", "string"]
    out = mlflow.pyfunc.load_model(info.model_uri).predict(df.drop(columns="label"))
    np.testing.assert_array_equal(out["prediction"].to_numpy(), model.predict(df))
    assert load_fitted_model(info.model_uri).features.numeric[1].raw_type == "int"  # kept in features.json


def test_a_classifier_without_probabilities_registers_and_predicts(runtime: Runtime) -> None:
    """SVC(probability=False) has no predict_proba: labels only, everywhere (the gate used to crash on it)."""
    from sklearn.svm import SVC

    df = make_frame(200)
    train, hold = df.iloc[:140], df.iloc[140:]
    features = fit_features(train)
    model = fit_model(train, SVC(), features)
    assert not model.has_proba and model.predict_proba(hold) is None
    cfg = parse_config({"name": "svc-test", "data": {"source": {"bundled": "iris"}}})
    exp = ensure_experiment(runtime, cfg.experiment_name)
    with mlflow.start_run(experiment_id=exp) as run:
        pass
    reg = register_model(cfg, runtime, FakeSearch(model=model, parent_run_id=run.info.run_id, experiment_id=exp),
                         make_prepared(train, hold, features))
    assert reg.accepted and set(reg.decision.challenger_metrics) >= {"accuracy"}
    pyf = mlflow.pyfunc.load_model(reg.model_uri)
    assert [c.name for c in pyf.metadata.get_output_schema().inputs] == ["prediction"]
    out = pyf.predict(hold[features.input_columns])
    assert list(out.columns) == ["prediction"] and out["prediction"].tolist() == model.predict(hold).tolist()
    assert set(model.predict(hold)) <= {"no", "yes"}


def test_torch_mlp_through_pyfunc(runtime: Runtime) -> None:
    from mlops_ray.tune.fitted import FittedModel
    from mlops_ray.tune.torch_mlp import TorchMLPClassifier
    from tests._registry_support import class_indices

    df = make_frame(120)
    features = fit_features(df)
    est = TorchMLPClassifier(epochs=3, width=8, depth=1, random_state=0, device="cpu")
    est.fit(features.transform(df), class_indices(df))
    model = FittedModel(features=features, estimator=est, kind="torch_mlp", params=est.get_params())
    exp = ensure_experiment(runtime, "torch")
    with mlflow.start_run(experiment_id=exp):
        info = log_fitted_model(model, input_example=df, bundle_code=False)
    out = mlflow.pyfunc.load_model(info.model_uri).predict(df.head(10))
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"]
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].to_numpy(), model.predict_proba(df.head(10)), rtol=1e-5)
    reqs = (Path(mlflow.artifacts.download_artifacts(info.model_uri)) / "requirements.txt").read_text()
    assert "torch==" in reqs and "skops" not in reqs


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(runtime: Runtime, tmp_path: Path) -> None:
    """`mlflow models serve` (MLflow's own server, no mlops_ray code path) serves the registered model."""
    import os
    import signal
    import socket
    import time

    import requests

    df = make_frame(150)
    train, hold = df.iloc[:100], df.iloc[100:]
    features = fit_features(train)
    prepared = make_prepared(train, hold, features)
    model = fit_model(train, RandomForestClassifier(n_estimators=5, random_state=0), features)
    cfg = parse_config({"name": "mserve", "data": {"source": {"bundled": "iris"}}})
    exp = ensure_experiment(runtime, cfg.experiment_name)
    with mlflow.start_run(experiment_id=exp) as run:
        pass
    register_model(cfg, runtime, FakeSearch(model=model, parent_run_id=run.info.run_id, experiment_id=exp), prepared)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # MLflow starts `uvicorn` by name: the venv's bin must be on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": runtime.tracking_uri, "PATH": path}
    log = open(tmp_path / "serve.log", "wb")  # closed in the finally below
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/mserve@champion",
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    try:
        rows = hold[features.input_columns].head(4)
        payload = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        deadline = time.monotonic() + 120
        while True:
            try:
                r = requests.post(f"http://127.0.0.1:{port}/invocations", json=payload, timeout=5)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow models serve did not start: {(tmp_path / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.5)
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert [p["prediction"] for p in preds] == model.predict(rows).tolist()
        assert set(preds[0]) == {"prediction", "proba_no", "proba_yes"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its uvicorn worker
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()

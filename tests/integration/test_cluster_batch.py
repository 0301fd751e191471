"""batch_predict on the session's local Ray: every row scored exactly once, by the same model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_ray.cluster.batch import batch_predict
from mlops_ray.exceptions import ClusterError, DataError
from tests.cluster_helpers import fit_model, make_frame, write_parquet_parts


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory: pytest.TempPathFactory):
    train = make_frame(400, seed=1)
    model = fit_model(train)
    df = make_frame(3000, seed=2, start_id=10_000)
    folder = write_parquet_parts(df, tmp_path_factory.mktemp("in") / "to_score", parts=4)
    return model, df, folder


def test_every_row_scored_exactly_once_with_lineage(ray_session: str, model_and_data, tmp_path: Path) -> None:
    model, df, folder = model_and_data
    out = tmp_path / "scored"
    res = batch_predict(str(folder), str(out), model=model, model_name="demo", model_version="7",
                        id_column="row_id", passthrough=["color"], concurrency=2, batch_size=256)
    assert res.rows_in == res.rows_out == len(df)
    assert res.concurrency == 2
    scored = pd.read_parquet(out)
    assert len(scored) == len(df)
    assert scored["row_id"].is_unique
    assert set(scored["row_id"]) == set(df["row_id"])
    # Same predictions as the model applied in-process, row by row (joined on the id).
    merged = df.merge(scored, on="row_id", suffixes=("", "_out"))
    expected_labels = model.predict(merged)
    expected_proba = model.predict_proba(merged)
    assert (merged["prediction"].to_numpy() == expected_labels).all()
    np.testing.assert_allclose(merged[["proba_no", "proba_yes"]].to_numpy(), expected_proba, rtol=1e-9)
    np.testing.assert_allclose(scored[["proba_no", "proba_yes"]].sum(axis=1), 1.0)
    assert (merged["color_out"] == merged["color"]).all()
    # Lineage: one model, one run, one timestamp for every row.
    assert set(scored["model_name"]) == {"demo"} and set(scored["model_version"]) == {"7"}
    assert scored["batch_run_id"].nunique() == 1 and scored["scored_at"].nunique() == 1
    assert str(scored["scored_at"].dt.tz) == "UTC"
    assert (out / "_batch_predict.json").is_file()


def test_missing_model_column_fails_before_scoring(ray_session: str, model_and_data, tmp_path: Path) -> None:
    model, df, _ = model_and_data
    bad = tmp_path / "bad"
    bad.mkdir()
    df.drop(columns=["label", "x1"]).to_parquet(bad / "p.parquet")
    with pytest.raises(DataError, match="x1"):
        batch_predict(str(bad), str(tmp_path / "out"), model=model, concurrency=1)
    assert not (tmp_path / "out").exists()


def test_non_empty_output_is_not_overwritten_by_default(ray_session: str, model_and_data, tmp_path: Path) -> None:
    model, _, folder = model_and_data
    out = tmp_path / "scored"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(ClusterError, match="not empty"):
        batch_predict(str(folder), str(out), model=model, concurrency=1)
    assert (out / "keep.txt").read_text() == "precious"
    res = batch_predict(str(folder), str(out), model=model, concurrency=1, overwrite=True, batch_size=1000)
    assert res.rows_out == res.rows_in and not (out / "keep.txt").exists()


def test_unknown_id_column_is_an_error(ray_session: str, model_and_data, tmp_path: Path) -> None:
    model, _, folder = model_and_data
    with pytest.raises(DataError, match="request_id"):
        batch_predict(str(folder), str(tmp_path / "o"), model=model, id_column="request_id", concurrency=1)


def _register(runtime, model, name: str) -> str:
    """Log ``model`` as an MLflow model, register it and point @champion at it; returns the version."""
    import mlflow
    from mlflow import MlflowClient

    from mlops_ray.registry.packaging import log_fitted_model
    from mlops_ray.runtime import ensure_experiment

    exp = ensure_experiment(runtime, "cluster-batch-test")
    with mlflow.start_run(experiment_id=exp):
        info = log_fitted_model(model, bundle_code=False)
    mv = mlflow.register_model(info.model_uri, name)
    MlflowClient().set_registered_model_alias(name, "champion", mv.version)
    return str(mv.version)


def test_registered_model_alias_is_pinned_and_loaded_per_actor(ray_session: str, runtime, model_and_data,
                                                                tmp_path: Path) -> None:
    model, df, folder = model_and_data
    version = _register(runtime, model, "batchdemo")
    res = batch_predict(str(folder), str(tmp_path / "scored"), model_uri="models:/batchdemo@champion",
                        runtime=runtime, id_column="row_id", concurrency=2, batch_size=500)
    assert (res.model_name, res.model_version) == ("batchdemo", version)
    assert res.model_uri == f"models:/batchdemo/{version}"  # the alias resolved once, on the driver
    scored = pd.read_parquet(tmp_path / "scored").merge(df, on="row_id")
    assert len(scored) == len(df) and scored["row_id"].is_unique
    assert (scored["prediction"].to_numpy() == model.predict(scored)).all()
    assert set(scored["model_uri"]) == {f"models:/batchdemo/{version}"}
    with pytest.raises(ClusterError, match="no alias 'nope'"):
        batch_predict(str(folder), str(tmp_path / "x"), model_uri="models:/batchdemo@nope", runtime=runtime)


def test_model_folder_scored_and_a_corrupt_model_fails_clearly(ray_session: str, model_and_data,
                                                                tmp_path: Path) -> None:
    from mlops_ray.exceptions import RegistryError
    from mlops_ray.registry import save_fitted_model
    from mlops_ray.registry.artifacts import SKOPS

    model, df, folder = model_and_data
    saved = save_fitted_model(model, tmp_path / "model")
    res = batch_predict(str(folder), str(tmp_path / "scored"), model_uri=str(saved), id_column="row_id",
                        concurrency=2, batch_size=500)
    scored = pd.read_parquet(tmp_path / "scored").merge(df, on="row_id")
    assert res.rows_out == len(df) and (scored["prediction"].to_numpy() == model.predict(scored)).all()
    assert res.model_uri == str(saved)

    # The features read fine (the schema check passes) but the estimator file is not skops: the loader task
    # fails, and the caller hears that from the registry, not an actor-pool stack trace. Nothing is written.
    (saved / SKOPS).write_bytes(b"not a skops file")
    with pytest.raises(RegistryError, match=r"did not load, so no row was scored.*not a readable skops file"):
        batch_predict(str(folder), str(tmp_path / "scored2"), model_uri=str(saved), id_column="row_id",
                      concurrency=1, batch_size=500)
    written = list((tmp_path / "scored2").glob("*.parquet")) if (tmp_path / "scored2").exists() else []
    assert written == []


def test_a_file_without_a_model_column_fails_with_the_data_error(ray_session: str, model_and_data,
                                                                   tmp_path: Path) -> None:
    model, df, _ = model_and_data
    inp = tmp_path / "in"
    inp.mkdir()
    df.iloc[:100].drop(columns=["label"]).to_parquet(inp / "a.parquet", index=False)  # schema is read from here
    df.iloc[100:200].drop(columns=["label", "x2"]).to_parquet(inp / "b.parquet", index=False)
    with pytest.raises(DataError, match=r"b\.parquet lacks column\(s\) \['x2'\]"):
        batch_predict(str(inp), str(tmp_path / "out"), model=model, concurrency=1)
    assert not list((tmp_path / "out").glob("*b*"))


def test_killed_scoring_actor_rows_still_scored_exactly_once(ray_session: str, model_and_data,
                                                              tmp_path: Path) -> None:
    """A scoring actor's process dies mid-run: Ray Data restarts it and retries its part, which replaces its
    own output file, so no row is lost or written twice."""
    import threading
    import time

    import psutil

    model, _, _ = model_and_data
    df = make_frame(60_000, seed=5)
    inp = write_parquet_parts(df, tmp_path / "in", parts=12)
    out = tmp_path / "scored"
    result: dict = {}

    def run() -> None:
        try:
            result["res"] = batch_predict(str(inp), str(out), model=model, id_column="row_id", concurrency=2,
                                          num_cpus=0.5, batch_size=50)
        except Exception as e:  # handed to the test thread
            result["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and worker.is_alive() and time.monotonic() < deadline:
        if out.exists() and list(out.glob("part-*.parquet")):  # a part is done; others are in flight
            for p in psutil.process_iter(["cmdline"]):
                if "MapWorker(MapBatches(PartScorer))" in " ".join(p.info["cmdline"] or []):
                    p.kill()
                    killed = p.pid
                    break
        time.sleep(0.05)
    worker.join(timeout=300)
    assert killed is not None, "the run ended before a scoring actor could be killed"
    assert "error" not in result, result.get("error")
    assert result["res"].rows_out == len(df)
    scored = pd.read_parquet(out)
    assert len(scored) == len(df) and scored["row_id"].is_unique
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind

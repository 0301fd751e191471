"""BatchScorer and model-URI parsing on plain pandas frames (what each Ray Data actor runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops_ray.cluster.devices import choose_device, torch_device
from mlops_ray.cluster.scoring import (
    LINEAGE_COLUMNS,
    BatchScorer,
    output_columns,
    proba_column_names,
)
from mlops_ray.exceptions import ClusterError, DataError, RegistryError
from mlops_ray.registry import parse_model_uri
from tests.cluster_helpers import fit_model, make_frame


@pytest.fixture(scope="module")
def model():
    return fit_model(make_frame(300, seed=3))


def test_parse_model_uri() -> None:
    assert parse_model_uri("models:/churn@champion").alias == "champion"
    ref = parse_model_uri("models:/churn/12")
    assert (ref.name, ref.version, ref.alias, ref.registered) == ("churn", "12", None, True)
    assert ref.effective_alias is None  # a pinned version resolves no alias
    bare = parse_model_uri("models:/churn")
    assert bare.version is None and bare.effective_alias == "champion"  # a bare name is the champion
    assert parse_model_uri("models:/churn@staging").effective_alias == "staging"
    # MLflow 3's logged-model ids are not registry names: MLflow resolves them itself.
    logged = parse_model_uri("models:/m-0123456789abcdef0123456789abcdef")
    assert not logged.registered and logged.logged_model_id == "m-0123456789abcdef0123456789abcdef"
    assert logged.effective_alias is None
    local = parse_model_uri("/tmp/model")
    assert not local.registered and local.uri == "/tmp/model"
    with pytest.raises(RegistryError, match="is not models:/NAME"):
        parse_model_uri("models:/a/b/c")
    with pytest.raises(RegistryError, match="empty"):
        parse_model_uri(" ")


def test_proba_column_names_are_safe_and_unique() -> None:
    assert proba_column_names(["yes", "no"]) == ["proba_yes", "proba_no"]
    assert proba_column_names(["a b", "a-b", 3]) == ["proba_a_b", "proba_a_b_2", "proba_3"]


def test_scorer_scores_a_batch_with_lineage(model) -> None:
    df = make_frame(50, seed=4)
    when = pd.Timestamp("2026-11-27T04:00:00Z")
    scorer = BatchScorer(model=model, passthrough=["row_id"],
                         lineage={"model_name": "m", "model_version": 3, "model_uri": "models:/m/3",
                                  "scored_at": when, "batch_run_id": "r1"})
    out = scorer(df)
    assert list(out.columns) == output_columns(model.features, ["row_id"])
    assert list(out["row_id"]) == list(df["row_id"])
    assert (out["prediction"].to_numpy() == model.predict(df)).all()
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].to_numpy(), model.predict_proba(df))
    assert set(out["model_version"]) == {"3"} and set(out["model_uri"]) == {"models:/m/3"}
    assert (out["scored_at"] == when).all()
    assert set(LINEAGE_COLUMNS) <= set(out.columns)
    # Extra input columns (the label here) are ignored, column order does not matter.
    assert (scorer(df[df.columns[::-1]])["prediction"].to_numpy() == out["prediction"].to_numpy()).all()
    empty = scorer(df.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == list(out.columns)


def test_arrow_batch_scores_like_pandas(model) -> None:
    """Ray Data hands the actors Arrow batches (no pandas round trip); the result must be the same rows."""
    df = make_frame(40, seed=5)
    df.loc[3, df.columns[1]] = np.nan  # a missing value travels as an Arrow null
    when = pd.Timestamp("2026-11-27T04:00:00Z")
    scorer = BatchScorer(model=model, passthrough=["row_id"],
                         lineage={"model_name": "m", "model_version": None, "scored_at": when, "batch_run_id": "r"})
    table = pa.Table.from_pandas(df, preserve_index=False)
    out = scorer(table)
    assert isinstance(out, pa.Table) and out.column_names == output_columns(model.features, ["row_id"])
    expected = scorer(df)
    same = [c for c in out.column_names if c not in ("model_version", "model_uri")]  # nulls: NaN vs None
    pd.testing.assert_frame_equal(out.to_pandas()[same], expected[same], check_dtype=False)
    assert out.schema.field("scored_at").type == pa.timestamp("ns", tz="UTC")
    assert out.column("model_version").null_count == 40
    assert scorer(table.slice(0, 0)).num_rows == 0


def test_scorer_loads_a_model_folder_by_uri(model, tmp_path) -> None:
    from mlops_ray.registry import save_fitted_model

    df = make_frame(20, seed=6)
    scorer = BatchScorer(str(save_fitted_model(model, tmp_path / "m")), passthrough=["row_id"])
    assert (scorer(df)["prediction"].to_numpy() == model.predict(df)).all()
    assert set(scorer(df)["model_uri"]) == {str(tmp_path / "m")}


def test_scorer_limits_estimator_threads(model) -> None:
    model.estimator.n_jobs = -1
    BatchScorer(model=model, estimator_threads=1)
    assert model.estimator.n_jobs == 1


def test_scorer_rejects_bad_batches(model) -> None:
    scorer = BatchScorer(model=model, passthrough=["row_id"])
    with pytest.raises(DataError, match=r"missing 1 column.*x2"):
        scorer(make_frame(5).drop(columns=["x2"]))
    with pytest.raises(DataError, match="row_id"):
        scorer(make_frame(5).drop(columns=["row_id"]))
    with pytest.raises(DataError, match="clash"):
        BatchScorer(model=model, passthrough=["prediction"])(make_frame(5).assign(prediction=1))
    with pytest.raises(ClusterError, match="needs a model_uri"):
        BatchScorer()


def test_device_choice_follows_ray_assignment() -> None:
    assert choose_device([], cuda_available=True) == "cpu"  # no GPU assigned: never grab one
    assert choose_device(["0"], cuda_available=False) == "cpu"
    assert choose_device(["3"], cuda_available=True) == "cuda:0"  # CUDA_VISIBLE_DEVICES remaps to 0
    assert torch_device() == "cpu"  # outside Ray nothing is assigned


def test_torch_model_scores_on_the_cpu_when_ray_assigned_no_gpu() -> None:
    from mlops_ray.tune.fitted import FittedModel
    from mlops_ray.tune.torch_mlp import TorchMLPClassifier

    df = make_frame(200, seed=5)
    base = fit_model(df)
    y = (df["label"] == "yes").astype(int).to_numpy()
    est = TorchMLPClassifier(epochs=2, width=8, depth=1, random_state=0).fit(base.features.transform(df), y)
    fitted = FittedModel(features=base.features, estimator=est, kind="torch_mlp")
    scorer = BatchScorer(model=fitted)
    assert scorer.device == "cpu" and str(est.device_) == "cpu"
    out = scorer(df)
    assert (out["prediction"].to_numpy() == fitted.predict(df)).all()
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].sum(axis=1), 1.0, rtol=1e-5)


def test_pool_sizing_by_cpus_or_gpus() -> None:
    from mlops_ray.cluster.batch import check_fits, default_concurrency

    assert default_concurrency(4, 0, 1.0, 0.0) == 4  # the actors read and write their own parts: no I/O tasks
    assert default_concurrency(2, 0, 0.5, 0.0) == 4
    assert default_concurrency(1, 0, 2.0, 0.0) == 1  # never zero: check_fits then says what does fit
    assert default_concurrency(16, 2, 1.0, 0.5) == 4  # GPU actors: by GPUs
    check_fits(2, 0, 2, 1.0, 0.0)
    with pytest.raises(ClusterError, match=r"needs? 4 CPUs.*num_cpus=0\.67"):
        check_fits(2, 0, 3, 4 / 3, 0.0)
    with pytest.raises(ClusterError, match="GPUs but the cluster has 1"):
        check_fits(16, 1, 4, 1.0, 0.5)


def test_a_classifier_without_probabilities_scores_labels_with_null_probabilities(model) -> None:
    from sklearn.svm import SVC

    from mlops_ray.tune.fitted import FittedModel

    train = make_frame(300, seed=3)
    est = SVC().fit(model.features.transform(train), (train["label"] == "yes").astype(int).to_numpy())
    labels_only = FittedModel(features=model.features, estimator=est)
    df = make_frame(40, seed=5)
    out = BatchScorer(model=labels_only, passthrough=["row_id"])(df)
    assert list(out.columns) == output_columns(model.features, ["row_id"])  # the same schema as any classifier
    assert (out["prediction"].to_numpy() == labels_only.predict(df)).all() and set(out["prediction"]) <= {"no", "yes"}
    assert out[["proba_no", "proba_yes"]].isna().all().all()

"""Packaging a FittedModel without pickle: JSON features, skops with checked trusted types. No MLflow, no Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from mlops_ray.exceptions import RegistryError
from mlops_ray.registry.artifacts import (
    META,
    SKOPS,
    FittedModelFiles,
    check_trusted_types,
    load_fitted_model_dir,
    save_fitted_model,
)
from mlops_ray.registry.card import model_card
from mlops_ray.registry.gate import decide
from mlops_ray.registry.scoring import score_on_holdout
from mlops_ray.tune.fitted import FittedModel
from tests._registry_support import class_indices, fit_features, fit_model, make_frame


def _double(x: np.ndarray) -> np.ndarray:  # a user function: not a type this package produces
    return x * 2


def test_round_trip_predicts_the_same(tmp_path: Path) -> None:
    df = make_frame(120)
    fitted = fit_model(df, RandomForestClassifier(n_estimators=5, random_state=0))
    path = save_fitted_model(fitted, tmp_path / "m")
    meta = json.loads((path / META).read_text())
    assert meta["trusted_types"] == ["sklearn.tree._tree.Tree"]  # exactly what the forest needs
    assert sorted(p.name for p in path.iterdir()) == ["estimator.skops", "features.json", "meta.json"]
    loaded = load_fitted_model_dir(path)
    assert isinstance(loaded, FittedModel) and loaded.kind == "sklearn"
    np.testing.assert_array_equal(loaded.predict(df), fitted.predict(df))
    np.testing.assert_allclose(loaded.predict_proba(df), fitted.predict_proba(df))
    assert loaded.features.input_types() == {"x1": "double", "x2": "double", "color": "string"}


def test_loading_a_skops_model_does_not_import_torch(tmp_path: Path) -> None:
    """A fresh process (a Serve replica, a scoring task) loads a forest without torch, with the same trust list."""
    import subprocess
    import sys

    df = make_frame(120)
    fitted = fit_model(df, RandomForestClassifier(n_estimators=5, random_state=0))
    path = save_fitted_model(fitted, tmp_path / "m")
    code = (
        "import sys\n"
        "from mlops_ray.registry.artifacts import load_fitted_model_dir\n"
        f"m = load_fitted_model_dir({str(path)!r})\n"
        "assert type(m.estimator).__name__ == 'RandomForestClassifier'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as names\n"
        "assert 'sklearn.ensemble._forest.RandomForestClassifier' in names and len(names) > 150\n"
        "import sklearn.externals.array_api_compat.torch\n"  # the skipped shim still imports on demand
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_untrusted_type_is_refused_at_save(tmp_path: Path) -> None:
    df = make_frame(60)
    fitted = fit_model(df, make_pipeline(FunctionTransformer(_double), LogisticRegression()))
    with pytest.raises(RegistryError, match=r"outside scikit-learn/numpy.*_double"):
        save_fitted_model(fitted, tmp_path / "m")
    assert not (tmp_path / "m" / SKOPS).exists()


def test_model_files_as_bytes_load_with_the_same_checks(tmp_path: Path) -> None:
    df = make_frame(120)
    fitted = fit_model(df, RandomForestClassifier(n_estimators=5, random_state=0))
    path = save_fitted_model(fitted, tmp_path / "m")
    files = FittedModelFiles.read(path)  # what batch_predict ships to actors on nodes without the folder
    assert sorted(files.files) == ["estimator.skops", "features.json", "meta.json"]
    np.testing.assert_allclose(files.load().predict_proba(df), fitted.predict_proba(df))

    forest = RandomForestClassifier(n_estimators=2).fit(np.ones((4, 5)), [0, 1, 0, 1])
    bad = FittedModelFiles({**files.files, SKOPS: sio.dumps(make_pipeline(FunctionTransformer(_double), forest))})
    with pytest.raises(RegistryError, match="outside scikit-learn/numpy"):
        bad.load()
    with pytest.raises(RegistryError, match=r"meta\.json"):
        FittedModelFiles.read(tmp_path)  # not a model folder: refused where it is read
    with pytest.raises(RegistryError, match="outside the model folder"):
        FittedModelFiles({**files.files, "../../evil.py": b"x"}).load()


def test_edited_metadata_cannot_widen_trust(tmp_path: Path) -> None:
    df = make_frame(60)
    path = save_fitted_model(fit_model(df, LogisticRegression()), tmp_path / "m")
    # Swap in an estimator with a user function and list it as trusted, as an attacker would.
    evil = make_pipeline(FunctionTransformer(_double), LogisticRegression()).fit(np.ones((4, 5)), [0, 1, 0, 1])
    blob = sio.dumps(evil)
    (path / SKOPS).write_bytes(blob)
    meta = json.loads((path / META).read_text())
    meta["trusted_types"] = sio.get_untrusted_types(data=blob)
    (path / META).write_text(json.dumps(meta))
    with pytest.raises(RegistryError, match="outside scikit-learn/numpy"):
        load_fitted_model_dir(path)


def test_types_not_in_metadata_are_refused(tmp_path: Path) -> None:
    df = make_frame(60)
    path = save_fitted_model(fit_model(df, LogisticRegression()), tmp_path / "m")
    forest = RandomForestClassifier(n_estimators=2).fit(np.ones((4, 5)), [0, 1, 0, 1])
    (path / SKOPS).write_bytes(sio.dumps(forest))  # needs sklearn.tree._tree.Tree, metadata lists none
    with pytest.raises(RegistryError, match="does not list"):
        load_fitted_model_dir(path)


def test_trust_policy() -> None:
    assert check_trusted_types(["sklearn.tree._tree.Tree", "numpy.dtype"]) == ["numpy.dtype", "sklearn.tree._tree.Tree"]
    for bad in ("builtins.eval", "posix.system", "sklearnx.Evil", "numpy.testing.foo", "tests.unit.X"):
        with pytest.raises(RegistryError, match="outside"):
            check_trusted_types([bad])


def test_missing_paths_and_bad_targets(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"meta\.json is missing"):
        load_fitted_model_dir(tmp_path / "nope")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    fitted = fit_model(make_frame(40), LogisticRegression())
    with pytest.raises(RegistryError, match="not empty"):
        save_fitted_model(fitted, tmp_path / "full")
    fitted.kind = "xgboost"  # type: ignore[assignment]
    with pytest.raises(RegistryError, match="unknown model kind"):
        save_fitted_model(fitted, tmp_path / "k")


def test_torch_kind_only_rebuilds_known_classes(tmp_path: Path) -> None:
    from mlops_ray.registry import torch_io

    with pytest.raises(RegistryError, match="torch_mlp models must be one of"):
        torch_io.export_estimator(LogisticRegression())
    with pytest.raises(RegistryError, match=r"refusing to rebuild torch class .os\.system."):
        torch_io.build_estimator({}, {"class": "os.system"})


def test_scoring_aligns_classes_by_label() -> None:
    df = make_frame(200)
    fitted = fit_model(df, LogisticRegression())
    y = class_indices(df)
    p = score_on_holdout(fitted, df, y, "classification", ["no", "yes"])
    # The same model seen through a reference with the classes in the other order.
    q = score_on_holdout(fitted, df, 1 - y, "classification", ["yes", "no"])
    np.testing.assert_array_equal(p.pred == p.y_true, q.pred == q.y_true)
    np.testing.assert_allclose(p.proba[:, 0], q.proba[:, 1])
    with pytest.raises(RegistryError, match="cannot score"):
        score_on_holdout(fitted, df.drop(columns=["x1"]), y, "classification", ["no", "yes"])


def test_model_card_has_the_sections() -> None:
    df = make_frame(100)
    fitted = fit_model(df, LogisticRegression())
    p = score_on_holdout(fitted, df, class_indices(df), "classification", fit_features(df).classes)
    d = decide("accuracy", p, p, champion_version="1")
    card = model_card(name="m", version="2", task="classification", lineage={"config_hash": "abc"},
                      data={"rows": 100}, features={"inputs": "x1"}, config={"estimator": "LR"},
                      cv={"mean": 0.9}, holdout={"accuracy": 0.91}, decision=d, aliases=["challenger"])
    for part in ("# m v2", "## Gate decision", "**rejected**", "paired bootstrap", "## Lineage", "abc",
                 "holdout accuracy", "## Features", "## Configuration"):
        assert part in card, part


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_torch_mlp_round_trip_without_pickle(tmp_path: Path, task: str) -> None:
    from mlops_ray.tune.torch_mlp import TorchMLPClassifier, TorchMLPRegressor

    df = make_frame(120)
    features = fit_features(df)
    X = features.transform(df)
    if task == "classification":
        est = TorchMLPClassifier(epochs=3, width=8, depth=1, random_state=0, device="cpu").fit(X, class_indices(df))
    else:
        features.task, features.classes = "regression", None
        est = TorchMLPRegressor(epochs=3, width=8, depth=1, random_state=0, device="cpu").fit(X, df["x1"].to_numpy())
    fitted = FittedModel(features=features, estimator=est, kind="torch_mlp", params=est.get_params())
    path = save_fitted_model(fitted, tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == ["features.json", "meta.json", "state_dict.pt", "torch_mlp.json"]
    import torch

    assert all(isinstance(v, torch.Tensor) for v in torch.load(path / "state_dict.pt", weights_only=True).values())
    if task == "classification":  # recorded as trained on a GPU: must still load on this CPU-only machine
        hp = json.loads((path / "torch_mlp.json").read_text())
        hp["params"]["device"] = "cuda"
        (path / "torch_mlp.json").write_text(json.dumps(hp))
    loaded = load_fitted_model_dir(path)
    assert str(loaded.estimator.device_) in ("cpu", "cuda")
    np.testing.assert_allclose(loaded.predict_matrix(X)[0] if task == "regression" else loaded.predict_proba(df),
                               fitted.predict_matrix(X)[0] if task == "regression" else fitted.predict_proba(df),
                               rtol=1e-5)


def test_input_example_takes_the_signatures_types() -> None:
    """The data stage's sample rows are cleaned values (an int column as float64): MLflow refused the example
    against the ``long``/``boolean`` signature, and register failed for any int or bool feature."""
    import pandas as pd

    from mlops_ray.data.features import FeaturePipeline, NumericFeature
    from mlops_ray.registry.packaging import example_frame

    features = FeaturePipeline(numeric=[NumericFeature("n", fill=1.0, raw_type="int"),
                                        NumericFeature("b", fill=0.0, raw_type="bool"),
                                        NumericFeature("f", fill=0.0)], categorical=[], target="y",
                               task="classification", classes=[0, 1])
    frame = pd.DataFrame({"n": [1.0, 3.0], "b": [0.0, 1.0], "f": [0.5, 1.5], "y": [0, 1]})
    out = example_frame(frame, features)
    assert list(out.columns) == ["n", "b", "f"]
    assert [str(t) for t in out.dtypes] == ["int64", "bool", "float64"] and out["n"].tolist() == [1, 3]
    assert example_frame(frame.assign(n=[1.5, 2.0]), features) is None  # an imputed 1.5: no example at all

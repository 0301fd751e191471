"""The pyfunc output frame and the MLflow signature, for classifiers and regressors (no store, no Ray)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from mlops_ray.registry.packaging import build_signature, pip_requirements
from mlops_ray.registry.pyfunc_model import predictions_frame
from mlops_ray.tune.fitted import FittedModel
from tests._registry_support import fit_features, fit_model, make_frame


def test_classifier_frame_and_signature() -> None:
    df = make_frame(80)
    model = fit_model(df, LogisticRegression())
    out = predictions_frame(model, df.head(6))
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"]
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].sum(axis=1), 1.0)
    assert out["prediction"].tolist() == model.predict(df.head(6)).tolist()
    sig = build_signature(model)
    assert sig.inputs.input_names() == ["x1", "x2", "color"]
    assert [(c.name, c.type.name) for c in sig.outputs.inputs] == [
        ("prediction", "string"), ("proba_no", "double"), ("proba_yes", "double")]
    reqs = pip_requirements(model)
    assert any(r.startswith("skops==") for r in reqs) and any(r.startswith("scikit-learn==") for r in reqs)


def test_regressor_frame_and_signature() -> None:
    df = make_frame(80)
    features = fit_features(df)
    features.task, features.classes = "regression", None
    est = Ridge().fit(features.transform(df), df["x1"].to_numpy() * 2)
    model = FittedModel(features=features, estimator=est)
    out = predictions_frame(model, df.head(4))
    assert list(out.columns) == ["prediction"] and out["prediction"].dtype == np.float64
    assert [c.name for c in build_signature(model).outputs.inputs] == ["prediction"]

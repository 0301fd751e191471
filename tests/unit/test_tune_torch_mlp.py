"""The PyTorch tabular MLP as a scikit-learn estimator, on the CPU."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mlops_ray.tune.torch_mlp import TorchMLPClassifier, TorchMLPRegressor, resolve_device
from tests.tune_helpers import make_prepared


def test_classifier_learns_and_reports_each_epoch() -> None:
    p = make_prepared(n=200, n_folds=2)
    seen: list[int] = []
    clf = TorchMLPClassifier(epochs=15, lr=1e-2, width=16, depth=2, batch_size=32, random_state=0)
    clf.fit(p.X_train, p.y_train, epoch_callback=lambda epoch, model: seen.append(epoch))
    assert seen == list(range(15))
    proba = clf.predict_proba(p.X_holdout)
    assert proba.shape == (len(p.y_holdout), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert (clf.predict(p.X_holdout) == p.y_holdout).mean() > 0.75
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.device_ == resolve_device("auto") == "cpu"


def test_same_seed_same_model_and_pickle_is_a_state_dict() -> None:
    p = make_prepared(n=120, n_folds=2)
    a = TorchMLPClassifier(epochs=3, width=8, dropout=0.1, random_state=7).fit(p.X_train, p.y_train)
    b = TorchMLPClassifier(epochs=3, width=8, dropout=0.1, random_state=7).fit(p.X_train, p.y_train)
    assert np.allclose(a.predict_proba(p.X_holdout), b.predict_proba(p.X_holdout))
    state = a.__getstate__()
    assert "model_" not in state and all(isinstance(v, np.ndarray) for v in state["state_dict_"].values())
    c = pickle.loads(pickle.dumps(a))
    assert np.allclose(c.predict_proba(p.X_holdout), a.predict_proba(p.X_holdout))


def test_regressor_and_get_params() -> None:
    p = make_prepared(n=200, task="regression", n_folds=2)
    reg = TorchMLPRegressor(epochs=40, lr=1e-2, width=32, depth=1, weight_decay=1e-4, random_state=0)
    assert set(reg.get_params()) >= {"epochs", "lr", "width", "depth", "dropout", "batch_size", "weight_decay"}
    reg.fit(p.X_train, p.y_train)
    pred = reg.predict(p.X_holdout)
    assert 1 - ((pred - p.y_holdout) ** 2).sum() / ((p.y_holdout - p.y_holdout.mean()) ** 2).sum() > 0.8


def test_bad_parameter_and_unfitted_use_are_errors() -> None:
    with pytest.raises(ValueError, match=r"dropout=1\.5"):
        TorchMLPClassifier(dropout=1.5).fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="not fitted"):
        TorchMLPClassifier().predict(np.zeros((1, 2)))


@pytest.mark.parametrize(("params", "message"), [
    ({"epochs": 2.5}, "epochs=2.5 must be a whole number"),
    ({"width": "abc"}, "width='abc' must be a whole number"),
    ({"lr": "fast"}, "lr='fast' must be a number"),
    ({"depth": True}, "depth=True must be a whole number"),
    ({"device": "tpu"}, "device='tpu' must be auto, cpu or cuda"),
    ({"lr": "1e-3"}, r"lr='1e-3' must be a number \(YAML reads 1e-3 as text: write 1.0e-3\)"),
    ({"lr": float("inf")}, "lr=inf must be finite"),
    ({"weight_decay": float("nan")}, "weight_decay=nan must be finite"),
])
def test_parameters_of_the_wrong_type_are_refused_not_truncated(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TorchMLPClassifier(**params).check_params()
    TorchMLPClassifier(epochs=3.0, device="cuda:1").check_params()  # a whole float and a device index are fine


@pytest.mark.parametrize(("space", "fixed", "resources", "message"), [
    ({"epochs": {"grid": [2, 2.5]}}, {}, {}, r"tune.search_space.epochs: .*epochs=2.5 must be a whole number"),
    ({"width": {"choice": ["abc", 32]}}, {}, {}, r"tune.search_space.width: .*width='abc'"),
    ({"dropout": {"uniform": [0.2, 1.5]}}, {}, {}, r"tune.search_space.dropout: .*out of range \(must be in \[0, 1\)"),
    ({"epochs": {"uniform": [1, 10]}}, {}, {}, r"tune.search_space.epochs: .*whole number .*randint"),
    ({"lr": {"loguniform": [1e-4, 1e-2]}}, {"device": "cuda"}, {}, r"tune.model.params.device: cuda needs a GPU"),
    ({"device": {"grid": ["cpu", "cuda"]}}, {}, {}, r"tune.search_space.device: cuda needs a GPU"),
])
def test_search_values_a_torch_trial_would_reject_are_refused_before_the_search(
        space: dict, fixed: dict, resources: dict, message: str) -> None:
    from mlops_ray.config import parse_config
    from mlops_ray.exceptions import TuneError
    from mlops_ray.tune import check_config
    from tests.tune_helpers import tune_config

    cfg = parse_config(tune_config(model={"kind": "torch_mlp", "params": fixed}, search="random",
                                   search_space=space, resources=resources))
    with pytest.raises(TuneError, match=message):
        check_config(cfg)


def test_a_torch_space_inside_the_ranges_passes_and_cuda_with_a_gpu_is_allowed() -> None:
    from mlops_ray.config import parse_config
    from mlops_ray.tune import check_config
    from tests.tune_helpers import tune_config

    space = {"dropout": {"uniform": [0.0, 1.0]}, "epochs": {"randint": [1, 4]}, "width": {"choice": [16, 32]},
             "lr": {"loguniform": [1e-4, 1e-1]}, "device": {"choice": ["auto", "cuda"]}}
    check_config(parse_config(tune_config(model={"kind": "torch_mlp"}, search="random", search_space=space,
                                          resources={"cpu": 1, "gpu": 0.5})))

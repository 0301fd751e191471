"""Tuning stage: hyperparameter search on Ray Tune, each trial scored by k-fold cross-validation.

- ``run_search(cfg, runtime, prepared, *, resume=False) -> SearchResult``: search, refit the best config on
  all training rows, score it on the holdout; MLflow parent run + one child run per trial.
- ``check_config(cfg)``: the tune section's checks that need no data (run before Ray starts).
- ``SearchResult`` / ``TrialSummary`` / ``format_result``: what a search returns and how it prints.
- ``FittedModel``: fitted features + estimator, what the registry stage packages.
- ``TorchMLPClassifier`` / ``TorchMLPRegressor``: the PyTorch tabular MLP (``tune.model.kind: torch_mlp``).
- ``cross_validate``: the trial's objective, usable without Ray.

Heavy modules (ray, mlflow, torch) load on first use, so importing this package stays cheap.
"""

from __future__ import annotations

from mlops_ray._lazy import lazy_exports
from mlops_ray.tune.fitted import FittedModel

_LAZY = {
    "run_search": "mlops_ray.tune.search",
    "check_config": "mlops_ray.tune.checks",
    "evaluate_holdout": "mlops_ray.tune.search",
    "experiment_name": "mlops_ray.tune.search",
    "SearchResult": "mlops_ray.tune.result",
    "TrialSummary": "mlops_ray.tune.result",
    "format_result": "mlops_ray.tune.result",
    "cross_validate": "mlops_ray.tune.cv",
    "CVResult": "mlops_ray.tune.cv",
    "resolve_metric": "mlops_ray.tune.metrics",
    "parse_space": "mlops_ray.tune.spaces",
    "TorchMLPClassifier": "mlops_ray.tune.torch_mlp",
    "TorchMLPRegressor": "mlops_ray.tune.torch_mlp",
}

__all__ = ["FittedModel", *_LAZY]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

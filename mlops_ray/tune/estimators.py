"""Which estimator a trial builds: a scikit-learn class by import path, or the built-in torch MLP.

Pure (no Ray): resolves the class, checks that every configured parameter is one the estimator
accepts (before any trial launches), and builds instances with the seed applied.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from mlops_ray.exceptions import SearchSpaceError, TuneError

TORCH_MLP_CLASSIFIER = "mlops_ray.tune.torch_mlp.TorchMLPClassifier"
TORCH_MLP_REGRESSOR = "mlops_ray.tune.torch_mlp.TorchMLPRegressor"


def import_estimator(path: str, field_name: str = "tune.model.estimator") -> type:
    """Import ``package.module.ClassName``; a TuneError names the field and the reason on failure."""
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise TuneError(f"{field_name} {path!r} is not an import path; write it like "
                        "sklearn.ensemble.RandomForestClassifier")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise TuneError(f"{field_name} {path!r}: module {module_name!r} does not import ({e}); "
                        "check the spelling or install the package") from e
    try:
        cls = getattr(module, attr)
    except AttributeError as e:
        raise TuneError(f"{field_name} {path!r}: module {module_name!r} has no attribute {attr!r}") from e
    if not isinstance(cls, type) or not hasattr(cls, "fit") or not hasattr(cls, "get_params"):
        raise TuneError(f"{field_name} {path!r} is not a scikit-learn style estimator class "
                        "(needs fit, predict and get_params)")
    return cls


@dataclass(frozen=True)
class EstimatorFactory:
    """Builds the estimator of one trial from its config; picklable, so it travels to the workers."""

    cls: type
    kind: str  # "sklearn" | "torch_mlp"
    fixed: dict[str, Any] = field(default_factory=dict)  # tune.model.params
    seed: int | None = None

    @property
    def path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    def params_for(self, config: dict[str, Any]) -> dict[str, Any]:
        """Fixed params, then the trial's sampled ones, then the pipeline seed where not set."""
        params = {**self.fixed, **config}
        if self.seed is not None and "random_state" in accepted_params(self.cls) and \
                params.get("random_state") is None:
            params["random_state"] = self.seed
        return params

    def build(self, config: dict[str, Any]) -> Any:
        return self.cls(**self.params_for(config))


def accepted_params(cls: type) -> set[str]:
    """Parameter names the estimator accepts (``get_params(deep=True)`` of a default instance)."""
    try:
        return set(cls().get_params(deep=True))
    except TypeError:  # a class whose __init__ has required arguments
        import inspect

        sig = inspect.signature(cls.__init__)
        return {n for n in sig.parameters if n != "self"}


def make_factory(kind: str, estimator: str | None, task: str, fixed: dict[str, Any],
                 search_params: list[str], seed: int | None) -> EstimatorFactory:
    """Resolve and check the model spec; raises SearchSpaceError naming an unknown parameter."""
    if kind == "torch_mlp":
        path, field_name = (TORCH_MLP_CLASSIFIER if task == "classification" else TORCH_MLP_REGRESSOR), "kind"
    elif kind == "sklearn":
        if not estimator:
            raise TuneError("tune.model.estimator is empty; name an import path like sklearn.linear_model.Ridge")
        path, field_name = estimator, "tune.model.estimator"
    else:
        raise TuneError(f"tune.model.kind {kind!r} is not supported; use sklearn or torch_mlp")
    cls = import_estimator(path, field_name)
    _check_task(cls, path, task)
    accepted = accepted_params(cls)
    # With task auto the torch class is not chosen yet: name the family, not the regressor it defaults to.
    label = "the torch_mlp model" if kind == "torch_mlp" else path
    for where, names in (("tune.model.params", list(fixed)), ("tune.search_space", search_params)):
        for name in names:
            if name not in accepted:
                raise SearchSpaceError(
                    f"{where}.{name}: {label} has no parameter {name!r}; it accepts {', '.join(sorted(accepted))}"
                )
    if kind == "torch_mlp":
        try:
            cls(**fixed).check_params()
        except ValueError as e:  # a fixed value out of range fails every trial: say it before the data stage
            raise SearchSpaceError(f"tune.model.params: {e}") from None
    both = sorted(set(fixed) & set(search_params))
    if both:
        raise SearchSpaceError(f"tune.search_space.{both[0]} is also fixed in tune.model.params; keep it in one")
    return EstimatorFactory(cls=cls, kind=kind, fixed=dict(fixed), seed=seed)


def _check_task(cls: type, path: str, task: str) -> None:
    # sklearn marks its estimators; only reject a clear mismatch, custom classes pass.
    est_type = getattr(cls, "_estimator_type", None)
    try:
        tags = cls().__sklearn_tags__()
        est_type = getattr(tags, "estimator_type", est_type)
    except Exception:
        pass
    if est_type == "classifier" and task == "regression":
        raise TuneError(f"tune.model.estimator {path!r} is a classifier but the task is regression; "
                        "pick a regressor (e.g. sklearn.ensemble.RandomForestRegressor), or, if the target holds "
                        "class labels (a 0/1 column with missing values reads as float), set data.task: "
                        "classification")
    if est_type == "regressor" and task == "classification":
        raise TuneError(f"tune.model.estimator {path!r} is a regressor but the task is classification; "
                        "pick a classifier (e.g. sklearn.ensemble.RandomForestClassifier)")

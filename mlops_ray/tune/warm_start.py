"""Warm-start paths: a grid over an ensemble's size scored by growing one ensemble per fold. Pure (no Ray).

A grid over ``n_estimators`` of a random forest, extra trees or gradient boosting fits the same first
trees again for every size. scikit-learn's ``warm_start`` adds trees to a fitted ensemble and advances its
random state, so growing 25 -> 50 -> 100 trees gives at each size exactly the model that a separate fit of
that size gives (same seed). So the first trial to reach a fold of a *group* (every parameter but the
size) grows the group's path on that fold and scores every size; the group's other trials read their
scores (``FoldClaims``). Scores are identical to separate fits (tests/unit/test_tune_warm_start.py checks
each class); the CPU spent per fold is that of the largest size.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mlops_ray.tune.cv import FoldScore, fold_indices, score_fold
from mlops_ray.tune.estimators import EstimatorFactory
from mlops_ray.tune.fold_claims import HEARTBEAT_S
from mlops_ray.tune.spaces import ParamDomain

# Classes whose warm-start growth was checked to equal a separate fit, and the parameter that grows.
# Exact classes only: a subclass may change fit.
GROWING = {
    "sklearn.ensemble.RandomForestClassifier": "n_estimators",
    "sklearn.ensemble.RandomForestRegressor": "n_estimators",
    "sklearn.ensemble.ExtraTreesClassifier": "n_estimators",
    "sklearn.ensemble.ExtraTreesRegressor": "n_estimators",
    "sklearn.ensemble.GradientBoostingClassifier": "n_estimators",
    "sklearn.ensemble.GradientBoostingRegressor": "n_estimators",
}
# Set to anything but these, a parameter makes a grown model differ from a separate fit of its size
# (warm_start: the user grows the model; n_iter_no_change: early stopping inside fit).
_PATH_SAFE = {"warm_start": (False,), "n_iter_no_change": (None,)}


@dataclass(frozen=True)
class WarmStartPath:
    """The growing parameter and the grid's sizes of it, ascending."""

    param: str
    sizes: tuple[int, ...]

    def group(self, params: dict[str, Any]) -> str:
        """Every parameter but the size: trials with the same group share their paths."""
        rest = {k: v for k, v in params.items() if k != self.param}
        return json.dumps(sorted(rest.items()), default=repr)

    def describe(self) -> str:
        return f"{self.param} {list(self.sizes)}"


def _public_path(cls: type) -> str:
    module = cls.__module__
    if module.startswith("sklearn.ensemble."):  # sklearn.ensemble._forest -> the public sklearn.ensemble
        module = "sklearn.ensemble"
    return f"{module}.{cls.__qualname__}"


def plan_warm_start(factory: EstimatorFactory, domains: list[ParamDomain], search: str,
                    enabled: bool = True) -> WarmStartPath | None:
    """The path to share for this search, or None where growing would not give the separate fits' scores
    or would not save work (not a grid, the size not searched, no fixed seed, early stopping set)."""
    param = GROWING.get(_public_path(factory.cls)) if factory.kind == "sklearn" else None
    if not enabled or search != "grid" or param is None:
        return None
    by_name = {d.name: d for d in domains}
    size = by_name.get(param)
    if size is None:
        return None
    sizes = size.grid_values()
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes) or len(set(sizes)) < 2:
        return None
    for k, safe in _PATH_SAFE.items():
        values = by_name[k].grid_values() if k in by_name else [factory.fixed[k]] if k in factory.fixed else []
        if any(all(v is not ok for ok in safe) for v in values):
            return None
    # Without a fixed seed every fit draws new trees: separate fits would differ, sharing would hide that.
    # (params_for gives the pipeline seed where random_state is None.)
    configs = [{"random_state": s} for s in by_name["random_state"].grid_values()] if "random_state" in by_name \
        else [{}]
    if any(factory.params_for(c).get("random_state") is None for c in configs):
        return None
    return WarmStartPath(param=param, sizes=tuple(sorted(set(sizes))))


def score_path(factory: EstimatorFactory, config: dict[str, Any], path: WarmStartPath, X: np.ndarray,
               y: np.ndarray, train: np.ndarray, val: np.ndarray, task: str, n_classes: int,
               fold: int) -> dict[int, FoldScore]:
    """Grow one ensemble through ``path.sizes`` on a fold and score every size (``fit_s``: fit time so far)."""
    params = {**factory.params_for(config), path.param: path.sizes[0], "warm_start": True}
    est = factory.cls(**params)
    Xt, yt, Xv, yv = X[train], y[train], X[val], y[val]
    out: dict[int, FoldScore] = {}
    fit_s = 0.0
    for n in path.sizes:
        est.set_params(**{path.param: n})
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # "class_weight presets ... not recommended for warm_start if the fitted data differs": it does not.
            warnings.filterwarnings("ignore", message="class_weight presets", category=UserWarning)
            est.fit(Xt, yt)
        fit_s += time.perf_counter() - t0
        out[n] = FoldScore(fold=fold, metrics=score_fold(est, Xv, yv, task, n_classes), fit_s=fit_s,
                           n_train=len(train), n_val=len(val))
    return out


class FoldSource(Protocol):
    """Where a trial takes folds from: another trial's finished path, or a claim to grow it here."""

    def take(self, folds: list[int], worker: int) -> tuple[int, dict[int, FoldScore] | None]:
        """(fold, its path's scores) if one is done, else (fold, None): a claim to compute that fold."""

    def put(self, fold: int, scores: dict[int, FoldScore]) -> None: ...

    def touch(self, folds: list[int], worker: int) -> None:
        """The claims of ``worker`` on ``folds`` are alive (it is growing them)."""

    def drop(self, fold: int, worker: int) -> None:
        """Give a claim back without a result (the fit raised)."""


def iter_path_cv(factory: EstimatorFactory, config: dict[str, Any], path: WarmStartPath, X: np.ndarray,
                 y: np.ndarray, folds: np.ndarray, task: str, n_classes: int, n_jobs: int,
                 source: FoldSource) -> Iterator[tuple[FoldScore, bool]]:
    """Yield (this config's score on a fold, grown here?) as folds become available, each fold once.

    With ``n_jobs > 1`` that many threads take and grow folds (scikit-learn releases the GIL while fitting).
    """
    splits = fold_indices(folds)
    size = int(factory.params_for(config)[path.param])
    remaining = set(range(len(splits)))
    busy: dict[int, int] = {}  # fold being grown -> the worker growing it
    grown_here: set[int] = set()  # folds a thread of this trial grew (whichever thread reports them)
    lock = threading.Lock()
    stop = threading.Event()
    beats = threading.Event()

    def heartbeat() -> None:  # a claim that is not touched goes stale and is grown again elsewhere
        while not beats.wait(HEARTBEAT_S):
            with lock:
                growing = dict(busy)
            for worker in set(growing.values()):
                try:
                    source.touch([f for f, w in growing.items() if w == worker], worker)
                except Exception:  # the store is gone: the trial fails at its next put or take
                    pass

    def work(worker: int) -> Iterator[tuple[FoldScore, bool]]:
        while not stop.is_set():
            with lock:
                wanted = sorted(remaining - busy.keys())
            if not wanted:
                return
            fold, scores = source.take(wanted, worker)
            if scores is None:
                with lock:
                    if stop.is_set():  # the trial ended while this thread waited: leave the fold to others
                        source.drop(fold, worker)
                        return
                    busy[fold] = worker
                    grown_here.add(fold)
                try:
                    tr, va = splits[fold]
                    scores = score_path(factory, config, path, X, y, tr, va, task, n_classes, fold)
                    source.put(fold, scores)
                except BaseException:
                    with lock:
                        busy.pop(fold, None)
                    source.drop(fold, worker)
                    raise
            with lock:  # leaving busy and remaining at once: no other thread of this trial takes it meanwhile
                busy.pop(fold, None)
                if fold not in remaining:  # another thread of this trial reported it
                    continue
                remaining.discard(fold)
                grown = fold in grown_here
            yield scores[size], grown

    threading.Thread(target=heartbeat, daemon=True, name="cv-path-heartbeat").start()
    if n_jobs <= 1 or len(splits) == 1:
        try:
            yield from work(0)
        finally:
            beats.set()
        return
    items: queue.Queue[tuple[str, Any]] = queue.Queue()

    def run(worker: int) -> None:
        try:
            for item in work(worker):
                items.put(("item", item))
        except BaseException as e:  # handed to the consumer, which raises it in the trial
            items.put(("error", e))
        finally:
            items.put(("end", None))

    threads = [threading.Thread(target=run, args=(i,), daemon=True, name=f"cv-path-{i}")
               for i in range(min(n_jobs, len(splits)))]
    for t in threads:
        t.start()
    ended = 0
    try:
        while ended < len(threads):
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                ended += 1
    finally:  # the consumer stopped early (ASHA) or failed: let the folds being grown finish (as iter_cv does),
        # so that no fit of this trial runs on into the next trial of a reused actor; idle waiters just end.
        with lock:
            stop.set()
        while True:
            with lock:
                if not busy:
                    break
            time.sleep(0.02)
        beats.set()

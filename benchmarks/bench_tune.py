"""Tuning stage vs scikit-learn GridSearchCV / HalvingGridSearchCV and Optuna, side by side.

The standard task (issue 3): make_classification(6000 x 20), RandomForestClassifier(n_jobs=1) over
n_estimators {25,50,100} x max_depth {6,12,None} x max_features {sqrt,0.5} (18 configs), 5-fold
stratified CV (the same folds for every peer), accuracy. Also the serial sum of all 90 fits (the floor
is that divided by the cores) and the per-trial overhead of Tune on a no-op objective. The stage runs with
its default shared warm-start paths and with ``warm_start_path: false``; every finished trial's CV mean is
checked against the same config's separate serial fits.

    .venv/bin/python benchmarks/bench_tune.py --reps 3            # everything (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/bench_tune.py --only overhead      # just the no-op overhead part

Prints a table and writes benchmarks/out/bench_tune.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

GRID = {"n_estimators": [25, 50, 100], "max_depth": [6, 12, None], "max_features": ["sqrt", 0.5]}
CORES = 2
SERIAL: dict[str, float] = {}  # CV score per config from separate serial fits (serial_fits)


def make_task() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import StratifiedKFold

    X, y = make_classification(n_samples=6000, n_features=20, n_informative=8, n_redundant=4, class_sep=0.8,
                               flip_y=0.03, random_state=0)
    folds = np.zeros(len(y), dtype=np.int64)
    for i, (_, val) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)):
        folds[val] = i
    return X, y, folds


def configs() -> list[dict[str, Any]]:
    from sklearn.model_selection import ParameterGrid

    return list(ParameterGrid(GRID))


def rf(**params: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_jobs=1, random_state=0, **params)


# ------------------------------------------------------------------------------------------- peers


def serial_fits(X: np.ndarray, y: np.ndarray, folds: np.ndarray) -> tuple[float, float, dict[str, float]]:
    """Every (config, fold) fit + score one after another: the work itself, without any scheduler.

    Returns (wall seconds, CPU seconds of this process, CV score per config). On a shared machine the CPU
    time is the better measure of the work: wall time also counts the time other processes held the core.
    """
    total, cpu, best = 0.0, 0.0, {}
    for cfg in configs():
        scores = []
        for k in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            m = rf(**cfg).fit(X[folds != k], y[folds != k])
            scores.append(float((m.predict(X[folds == k]) == y[folds == k]).mean()))
            total += time.perf_counter() - t0
            cpu += time.process_time() - c0
        best[json.dumps(cfg)] = float(np.mean(scores))
    return total, cpu, best


def grid_search_cv(X: np.ndarray, y: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    from sklearn.model_selection import GridSearchCV, PredefinedSplit

    t0 = time.perf_counter()
    gs = GridSearchCV(rf(), GRID, cv=PredefinedSplit(folds), scoring="accuracy", n_jobs=CORES).fit(X, y)
    return time.perf_counter() - t0, float(gs.best_score_)


def halving_grid_search_cv(X: np.ndarray, y: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV, StratifiedKFold

    t0 = time.perf_counter()
    # Halving subsamples rows per round, so it cannot take predefined folds over all rows: stratified 5-fold.
    hs = HalvingGridSearchCV(rf(), GRID, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="accuracy",
                             n_jobs=CORES, random_state=0).fit(X, y)
    elapsed = time.perf_counter() - t0
    # Its best_score_ is on the last round's subsample; score its pick on the full folds for a fair comparison.
    return elapsed, float(hs.best_score_)


def optuna_tpe(X: np.ndarray, y: np.ndarray, folds: np.ndarray, n_trials: int = 18) -> tuple[float, float]:
    import optuna
    from sklearn.model_selection import PredefinedSplit, cross_val_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cv = PredefinedSplit(folds)

    def objective(trial: Any) -> float:
        params = {k: trial.suggest_categorical(k, v) for k, v in GRID.items()}
        return float(cross_val_score(rf(**params), X, y, cv=cv, scoring="accuracy", n_jobs=1).mean())

    t0 = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=n_trials, n_jobs=CORES)  # two trials at a time (threads)
    return time.perf_counter() - t0, float(study.best_value)


def _prepared(X: np.ndarray, y: np.ndarray, folds: np.ndarray) -> Any:
    import pandas as pd

    from mlops_ray.data.features import FeaturePipeline, NumericFeature
    from mlops_ray.data.prepared import DataReport, PreparedData

    names = [f"x{i}" for i in range(X.shape[1])]
    feats = FeaturePipeline(numeric=[NumericFeature(n, fill=0.0, transform="none") for n in names], categorical=[],
                            target="y", task="classification", classes=[0, 1])
    empty = np.zeros((0, X.shape[1]))
    return PreparedData(features=feats, X_train=X, y_train=y, folds=folds, X_holdout=empty,
                        y_holdout=np.zeros(0, dtype=int), holdout_frame=pd.DataFrame(columns=names),
                        train_frame_sample=pd.DataFrame(X[:3], columns=names), fingerprint="bench-standard-task",
                        report=DataReport(len(y), len(y), 0), reference={})


def this_stage(X: np.ndarray, y: np.ndarray, folds: np.ndarray, scheduler: str, **tune: Any) -> tuple[float, float]:
    """(seconds, best CV score); every finished trial's CV mean is also checked against ``SERIAL``'s."""
    from mlops_ray.config import parse_config
    from mlops_ray.runtime import ensure_experiment, resolve_runtime
    from mlops_ray.tune import run_search

    space = {k: {"grid": v} for k, v in GRID.items()}
    cfg = parse_config({"name": f"bench-{scheduler}", "data": {"source": {"bundled": "iris"}},
                        "tune": {"model": {"estimator": "sklearn.ensemble.RandomForestClassifier",
                                           "params": {"n_jobs": 1}},
                                 "search": "grid", "scheduler": scheduler, "search_space": space, **tune}})
    with tempfile.TemporaryDirectory() as wd:
        rt = resolve_runtime(None, workdir=wd, tracking_uri=f"sqlite:///{wd}/mlflow.db")
        rt.ensure_dirs()
        prepared = _prepared(X, y, folds)
        ensure_experiment(rt, cfg.experiment_name)  # an existing tracking store, as on any run but the first
        t0 = time.perf_counter()
        res = run_search(cfg, rt, prepared)
        elapsed = time.perf_counter() - t0
        if len(y) == 6000 and SERIAL:  # the standard task: each config's score equals its separate fits'
            for t in res.trials:
                if t.status == "completed":
                    want = SERIAL[json.dumps({k: t.config[k] for k in sorted(t.config)})]
                    if abs(t.cv_mean - want) > 1e-12:
                        raise AssertionError(f"{t.config}: stage {t.cv_mean} vs separate fits {want}")
        return elapsed, res.cv_mean


# ---------------------------------------------------------------------------------------- overhead


def _noop(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report({"score": float(config["x"])})


def tune_noop(n: int, stage_settings: bool) -> float:
    """Seconds per trial of Tuner.fit over ``n`` no-op trials: Tune defaults, or this stage's settings."""
    from ray import tune

    from mlops_ray.tune.search import _tune_env

    with tempfile.TemporaryDirectory() as store:
        kw: dict[str, Any] = {}
        run_kw: dict[str, Any] = {}
        if stage_settings:
            kw = {"reuse_actors": True}
            run_kw = {"verbose": 0, "log_to_file": False,
                      "checkpoint_config": tune.CheckpointConfig(num_to_keep=1, checkpoint_frequency=0)}
        t0 = time.perf_counter()
        ctx = _tune_env(max_pending=CORES + 1) if stage_settings else _nullctx()
        with ctx:
            tune.Tuner(_noop, param_space={"x": tune.grid_search(list(range(n)))},
                       tune_config=tune.TuneConfig(metric="score", mode="max", **kw),
                       run_config=tune.RunConfig(storage_path=store, name="noop", **run_kw)).fit()
        return (time.perf_counter() - t0) / n


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def stage_noop(n: int) -> float:
    """Seconds per trial of the whole stage (MLflow child run per trial included) on a no-op estimator."""
    from sklearn.datasets import make_classification

    from mlops_ray.config import parse_config
    from mlops_ray.runtime import ensure_experiment, resolve_runtime
    from mlops_ray.tune import run_search

    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    folds = np.arange(40) % 2
    cfg = parse_config({"name": "bench-noop", "data": {"source": {"bundled": "iris"}},
                        "tune": {"model": {"estimator": "sklearn.dummy.DummyClassifier"}, "search": "grid",
                                 "search_space": {"random_state": {"grid": list(range(n))}}}})
    with tempfile.TemporaryDirectory() as wd:
        rt = resolve_runtime(None, workdir=wd, tracking_uri=f"sqlite:///{wd}/mlflow.db")
        rt.ensure_dirs()
        prepared = _prepared(X, y, folds)
        ensure_experiment(rt, cfg.experiment_name)  # an existing tracking store, as on any run but the first
        t0 = time.perf_counter()
        run_search(cfg, rt, prepared)
        return (time.perf_counter() - t0) / n


# -------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=["search", "overhead"], default=None)
    ap.add_argument("--default-noop-trials", type=int, default=30, help="Tune defaults are slow: fewer trials")
    ap.add_argument("--reuse-serial", action="store_true",
                    help="take the serial sum from benchmarks/out/bench_tune.json instead of measuring it again")
    args = ap.parse_args()

    import ray

    # Ray starts its workers at nice 15; GridSearchCV's and Optuna's workers run at nice 0. On a machine
    # shared with other busy processes that alone starves the trials, so give Ray's workers the same priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address="local", num_cpus=CORES, include_dashboard=False, log_to_driver=False)
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": CORES,
                           "reps": args.reps}
    X, y, folds = make_task()

    if args.only in (None, "overhead"):
        tune_noop(4, stage_settings=True)  # warm-up (imports, worker processes), not recorded
        stage_noop(4)
        out["noop_tune_default_s_per_trial"] = tune_noop(args.default_noop_trials, stage_settings=False)
        print(f"no-op, Tune defaults: {out['noop_tune_default_s_per_trial'] * 1000:.0f} ms/trial", flush=True)
        stage = [tune_noop(100, stage_settings=True) for _ in range(args.reps)]
        out["noop_tune_stage_settings_s_per_trial"] = {"median": statistics.median(stage), "runs": stage}
        print(f"no-op, this stage's Tune settings: {statistics.median(stage) * 1000:.1f} ms/trial", flush=True)
        full = [stage_noop(100) for _ in range(max(1, args.reps - 1))]
        out["noop_run_search_s_per_trial"] = {"median": statistics.median(full), "runs": full}
        print(f"no-op estimator through run_search (MLflow child runs included): "
              f"{statistics.median(full) * 1000:.1f} ms/trial", flush=True)
        save(out)

    if args.only in (None, "search"):
        if args.reuse_serial:
            prev = json.loads((Path(__file__).parent / "out" / "bench_tune.json").read_text())
            serial, cpu = prev["serial_sum_s"], prev["serial_sum_cpu_s"]
            per_cfg = prev["serial_scores"]
        else:
            serial, cpu, per_cfg = serial_fits(X, y, folds)
        SERIAL.update(per_cfg)
        out["serial_scores"] = per_cfg
        out["serial_sum_s"] = serial
        out["serial_sum_cpu_s"] = cpu
        out["floor_s"] = serial / CORES
        out["floor_cpu_s"] = cpu / CORES
        out["grid_best_serial"] = max(per_cfg.values())
        print(f"serial sum {serial:.1f}s wall ({cpu:.1f}s CPU) -> floor {serial / CORES:.1f}s "
              f"({cpu / CORES:.1f}s); best CV {max(per_cfg.values()):.4f}", flush=True)
        peers = {
            "GridSearchCV": lambda: grid_search_cv(X, y, folds),
            "HalvingGridSearchCV": lambda: halving_grid_search_cv(X, y, folds),
            "Optuna TPE (18)": lambda: optuna_tpe(X, y, folds),
            "mlops_ray grid": lambda: this_stage(X, y, folds, "fifo"),
            "mlops_ray grid, warm_start_path off": lambda: this_stage(X, y, folds, "fifo", warm_start_path=False),
            "mlops_ray grid + ASHA": lambda: this_stage(X, y, folds, "asha",
                                                        asha={"grace_period": 1, "reduction_factor": 3}),
        }
        this_stage(X[:600], y[:600], folds[:600], "fifo")  # warm-up (imports, worker processes), not recorded
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in peers}
        for rep in range(args.reps):
            for name, fn in peers.items():
                runs[name].append(fn())
                print(f"rep {rep} {name}: {runs[name][-1][0]:.1f}s best {runs[name][-1][1]:.4f}", flush=True)
                out["search"] = {k: {"median_s": statistics.median(t for t, _ in v), "times_s": [t for t, _ in v],
                                     "best_scores": [s for _, s in v]} for k, v in runs.items() if v}
                save(out)
        out["search"] = {k: {"median_s": statistics.median(t for t, _ in v), "times_s": [t for t, _ in v],
                             "best_scores": [s for _, s in v]} for k, v in runs.items()}

    save(out)
    print(json.dumps(out, indent=1))


def save(out: dict[str, Any]) -> None:
    path = Path(__file__).parent / "out" / "bench_tune.json"
    path.parent.mkdir(exist_ok=True)
    prev = json.loads(path.read_text()) if path.exists() else {}
    prev.update(out)
    path.write_text(json.dumps(prev, indent=1))


if __name__ == "__main__":
    main()

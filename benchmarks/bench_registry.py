"""Registry benchmarks, peers side by side.

1. Packaging: log + load + predict of the same fitted model as
   - mlops_ray's pyfunc (JSON features + skops with checked types, model from code; with and without the
     bundled sources),
   - MLflow's own sklearn flavor with skops, and with cloudpickle (a sklearn Pipeline doing the same
     preprocessing, the usual alternative; both need MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true to load).
2. Gate: the paired bootstrap (1000 resamples) as mlops_ray computes it (vectorised per-row means,
   rank-based AUC) vs the straightforward loop calling scikit-learn metrics per resample.

Run:  .venv/bin/python benchmarks/bench_registry.py [--repeats 3] [--rows 2000]
Prints a Markdown table (medians over the repeats, ratios vs mlops_ray).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"  # only so the peers can load at all
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_ray.registry.gate import Predictions, paired_bootstrap
from mlops_ray.registry.packaging import log_fitted_model
from tests._registry_support import class_indices, fit_model, make_frame


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_packaging(rows: int, repeats: int) -> list[tuple[str, float, float, float, float]]:
    df = make_frame(rows, seed=0)
    batch = df[["x1", "x2", "color"]].head(1000)
    ours = fit_model(df, RandomForestClassifier(n_estimators=50, random_state=0))
    peer = make_pipeline(ColumnTransformer([("num", StandardScaler(), ["x1", "x2"]),
                                            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"])]),
                         RandomForestClassifier(n_estimators=50, random_state=0)).fit(df[["x1", "x2", "color"]],
                                                                                       class_indices(df))
    tmp = tempfile.mkdtemp(prefix="bench_registry_")
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    exp = mlflow.create_experiment("bench", artifact_location=Path(tmp, "art").as_uri())
    peer_trusted = __import__("skops.io", fromlist=["x"]).get_untrusted_types(
        data=__import__("skops.io", fromlist=["x"]).dumps(peer))
    cases: dict[str, Callable[[], object]] = {
        "mlops_ray pyfunc (skops, checked types)": lambda: log_fitted_model(ours, input_example=df, bundle_code=False),
        "mlops_ray pyfunc + bundled code": lambda: log_fitted_model(ours, input_example=df, bundle_code=True),
        "mlflow.sklearn skops": lambda: mlflow.sklearn.log_model(
            peer, name="model", serialization_format="skops", skops_trusted_types=peer_trusted,
            input_example=df[["x1", "x2", "color"]].head(5)),
        "mlflow.sklearn cloudpickle": lambda: mlflow.sklearn.log_model(
            peer, name="model", serialization_format="cloudpickle", input_example=df[["x1", "x2", "color"]].head(5)),
    }
    out = []
    for label, log in cases.items():
        log_t, load_t, pred_t, sizes = [], [], [], []
        for _ in range(repeats):
            with mlflow.start_run(experiment_id=exp):
                t0 = time.perf_counter()
                info = log()
                log_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model = mlflow.pyfunc.load_model(info.model_uri)
            load_t.append(time.perf_counter() - t0)
            pred_t.append(_median_time(lambda m=model: m.predict(batch), 5))
            local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
            sizes.append(sum(p.stat().st_size for p in local.rglob("*") if p.is_file()) / 1024)
        out.append((label, statistics.median(log_t), statistics.median(load_t), statistics.median(pred_t),
                    statistics.median(sizes)))
    return out


def _naive_bootstrap(metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int) -> tuple[float, float]:
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if metric == "accuracy":
            deltas.append(skm.accuracy_score(y[idx], a[idx] > 0.5) - skm.accuracy_score(y[idx], b[idx] > 0.5))
        else:
            deltas.append(skm.roc_auc_score(y[idx], a[idx]) - skm.roc_auc_score(y[idx], b[idx]))
    return tuple(np.quantile(deltas, [0.025, 0.975]))  # type: ignore[return-value]


def bench_gate(rows: int, repeats: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, rows)
    pa = np.clip(0.35 * y + rng.uniform(0, 0.65, rows), 0, 1)
    pb = np.clip(0.25 * y + rng.uniform(0, 0.75, rows), 0, 1)
    A = Predictions("classification", y, (pa > 0.5).astype(np.int64), np.column_stack([1 - pa, pa]))
    B = Predictions("classification", y, (pb > 0.5).astype(np.int64), np.column_stack([1 - pb, pb]))
    out = []
    for metric in ("accuracy", "roc_auc"):
        ours = _median_time(lambda m=metric: paired_bootstrap(m, A, B, n_bootstrap=1000, seed=0), repeats)
        naive = _median_time(lambda m=metric: _naive_bootstrap(m, y, pa, pb, 1000), repeats)
        out.append((metric, ours, naive))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=2000)
    args = ap.parse_args()
    pk = bench_packaging(args.rows, args.repeats)
    base = pk[0]
    print(f"### Packaging: log + load + predict 1000 rows (RandomForest 50 trees, {args.rows} training rows, "
          f"median of {args.repeats})\n")
    print("| format | log s | load s | predict ms | size KiB | load vs mlops_ray |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, log_s, load_s, pred_s, kib in pk:
        print(f"| {label} | {log_s:.2f} | {load_s:.2f} | {pred_s * 1000:.1f} | {kib:.0f} | {load_s / base[2]:.2f}x |")
    print(f"\n### Gate: paired bootstrap, 1000 resamples, {args.rows} holdout rows (median of {args.repeats})\n")
    print("| metric | mlops_ray s | naive sklearn loop s | speed-up |")
    print("|---|---:|---:|---:|")
    for metric, ours, naive in bench_gate(args.rows, args.repeats):
        print(f"| {metric} | {ours:.3f} | {naive:.3f} | {naive / ours:.1f}x |")


if __name__ == "__main__":
    main()

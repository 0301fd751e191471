"""The standard preprocessing job, side by side: this data stage (Ray Data), pandas + scikit-learn, polars.

Job: a Parquet table (10 numeric columns with ~5% missing and ~0.5% outliers, 3 categorical columns,
a label), impute medians, clip to the 1%/99% quantiles, standard-scale, one-hot; write Parquet.
Each runner is repeated; medians are reported with the ratio to pandas + scikit-learn. Ray start-up is
timed apart (the stage's time starts with Ray up). Memory: a sampler sums the proportional set size
(PSS, shared memory split fairly, Ray's object store included) of this process and all its children
(Ray's raylet, GCS and workers), minus the idle baseline measured just before the run.

    .venv/bin/python benchmarks/bench_preprocess.py --rows 2000000 --repeats 3 --mem-rows 20000000

What the stage does beyond the peers (and is timed with it): schema validation of every row with
rejects, the seeded train/holdout split by row hash (statistics fitted on the training rows only),
the content fingerprint and the monitoring reference profile.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlops_ray.data.generate import CATEGORICAL, NUMERIC, TARGET, generate_table  # noqa: E402

# ------------------------------------------------------------------------------------------- memory


class PssSampler:
    """Peak PSS of this process tree, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.25) -> None:
        import psutil

        self._psutil = psutil
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def total(self) -> int:
        me = self._psutil.Process(os.getpid())
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.total())
            self._stop.wait(self.interval)

    def __enter__(self) -> PssSampler:
        self.baseline = self.total()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_over_baseline(self) -> int:
        return max(0, self.peak - self.baseline)


# ------------------------------------------------------------------------------------------- runners


def run_pandas_sklearn(src: Path, out: Path) -> None:
    import pandas as pd
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    class QuantileClipper(BaseEstimator, TransformerMixin):  # type: ignore[misc]
        def __init__(self, lower: float = 0.01, upper: float = 0.99) -> None:
            self.lower = lower
            self.upper = upper

        def fit(self, x: np.ndarray, y: Any = None) -> QuantileClipper:
            self.low_, self.high_ = np.quantile(x, [self.lower, self.upper], axis=0)
            return self

        def transform(self, x: np.ndarray) -> np.ndarray:
            return np.clip(x, self.low_, self.high_)

        def get_feature_names_out(self, input_features: Any = None) -> Any:
            return input_features

    df = pd.read_parquet(sorted(src.glob("*.parquet")))
    ct = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("clip", QuantileClipper()),
                          ("scale", StandardScaler())]), NUMERIC),
        ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                          ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), CATEGORICAL),
    ])
    x = ct.fit_transform(df[NUMERIC + CATEGORICAL])
    result = pd.DataFrame(x, columns=ct.get_feature_names_out())
    result[TARGET] = df[TARGET].to_numpy()
    result.to_parquet(out / "pandas.parquet", index=False)


def run_polars(src: Path, out: Path) -> None:
    import polars as pl

    df = pl.read_parquet(src / "*.parquet")
    stats = df.select(
        *[pl.col(c).median().alias(f"{c}__med") for c in NUMERIC],
        *[pl.col(c).mode().first().alias(f"{c}__mode") for c in CATEGORICAL],
    ).row(0, named=True)
    filled = df.with_columns(
        *[pl.col(c).fill_null(stats[f"{c}__med"]) for c in NUMERIC],
        *[pl.col(c).fill_null(stats[f"{c}__mode"]) for c in CATEGORICAL],
    )
    q = filled.select(
        *[pl.col(c).quantile(0.01, "linear").alias(f"{c}__lo") for c in NUMERIC],
        *[pl.col(c).quantile(0.99, "linear").alias(f"{c}__hi") for c in NUMERIC],
    ).row(0, named=True)
    clipped = filled.with_columns(*[pl.col(c).clip(q[f"{c}__lo"], q[f"{c}__hi"]) for c in NUMERIC])
    m = clipped.select(*[pl.col(c).mean().alias(f"{c}__m") for c in NUMERIC],
                       *[pl.col(c).std(ddof=0).alias(f"{c}__s") for c in NUMERIC]).row(0, named=True)
    scaled = clipped.with_columns(*[((pl.col(c) - m[f"{c}__m"]) / m[f"{c}__s"]) for c in NUMERIC])
    scaled.to_dummies(columns=CATEGORICAL).write_parquet(out / "polars.parquet")


def stage_config(src: Path) -> Any:
    from mlops_ray.config import parse_config

    columns = [{"name": c, "type": "float"} for c in NUMERIC] + [{"name": c, "type": "category"} for c in CATEGORICAL]
    columns.append({"name": TARGET, "type": "int"})
    return parse_config({
        "name": "bench", "seed": 0,
        "data": {
            "source": {"path": str(src / "*.parquet"), "format": "parquet"}, "target": TARGET, "task": "classification",
            "schema": {"columns": columns},
            "clean": {"numeric_missing": {"strategy": "median"}, "categorical_missing": {"strategy": "most_frequent"},
                      "outliers": {"method": "clip_quantile", "lower": 0.01, "upper": 0.99}},
            "features": {"numeric": "standard", "categorical": "onehot"},
        },
    })


def run_stage(src: Path, out: Path) -> dict[str, Any]:
    from mlops_ray.data import prepare
    from mlops_ray.runtime import resolve_runtime

    rt = resolve_runtime(None, workdir=out / "stage", tracking_uri="sqlite:///:memory:")
    prepared = prepare(stage_config(src), rt, materialize=False)
    r = prepared.report
    return {"rows_read": r.rows_read, "rows_clean": r.rows_clean, "passes": r.seconds_by_pass,
            "quantiles_exact": r.quantiles_exact}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ------------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mem-rows", type=int, default=0, help="also run the stage once on this many rows, memory sampled")
    ap.add_argument("--files", type=int, default=8, help="Parquet files the table is split into")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--workdir", default=str(ROOT / "benchmarks" / "out" / "preprocess"))
    ap.add_argument("--only", default="stage,pandas,polars")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    runners = args.only.split(",")

    src = work / f"table_{args.rows}"  # data files plus a _done marker; readers get the *.parquet glob
    if not (src / "_done").exists():
        shutil.rmtree(src, ignore_errors=True)
        t, s = timed(lambda: generate_table(src, args.rows, seed=0, files=args.files, malformed=False))
        (src / "_done").write_text(json.dumps({"rows": s.rows, "bytes": s.bytes}))
        print(f"generated {args.rows:,} rows ({s.bytes / 1e6:.0f} MB, {args.files} files) in {t:.1f}s", flush=True)

    results: dict[str, Any] = {"rows": args.rows, "repeats": args.repeats, "cpus": args.cpus, "runs": {}}
    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    t_ray, _ = timed(lambda: ray.init(address="local", num_cpus=args.cpus, include_dashboard=False,
                                      log_to_driver=False, logging_level="WARNING"))
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    results["ray_startup_s"] = round(t_ray, 2)
    print(f"ray start-up {t_ray:.1f}s (reported apart)", flush=True)
    # Warm-up: Ray's worker processes start once per session; a user's second run finds them up.
    if "stage" in runners:
        small = work / "table_warmup"
        if not (small / "_done").exists():
            generate_table(small, 20_000, seed=1, files=2, malformed=False)
            (small / "_done").write_text("{}")
        t_w, _ = timed(lambda: run_stage(small, work / "warm"))
        results["stage_warmup_s"] = round(t_w, 2)

    jobs: dict[str, Callable[[], Any]] = {
        "stage": lambda: run_stage(src, work / "out_stage"),
        "pandas+sklearn": lambda: run_pandas_sklearn(src, work),
        "polars": lambda: run_polars(src, work),
    }
    names = {"stage": "stage", "pandas": "pandas+sklearn", "polars": "polars"}
    for rep in range(args.repeats):
        for key in runners:
            name = names[key]
            with PssSampler() as mem:
                t, info = timed(jobs[name])
            run = results["runs"].setdefault(name, {"seconds": [], "peak_mb": []})
            run["seconds"].append(round(t, 3))
            run["peak_mb"].append(round(mem.peak_over_baseline / 2**20))
            if info:
                run["last"] = info
            print(f"[{rep + 1}/{args.repeats}] {name:<15} {t:7.2f}s  peak +{mem.peak_over_baseline / 2**20:,.0f} MB",
                  flush=True)
    base = statistics.median(results["runs"]["pandas+sklearn"]["seconds"]) if "pandas" in runners else None
    print(f"\n{args.rows:,} rows, {args.cpus} CPUs, median of {args.repeats}:")
    for name, run in results["runs"].items():
        med = statistics.median(run["seconds"])
        run["median_s"] = med
        run["ratio_vs_pandas_sklearn"] = round(med / base, 3) if base else None
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"  {name:<15} {med:7.2f}s  {ratio:>6}  peak +{max(run['peak_mb']):,} MB")

    if args.mem_rows:
        big = work / f"table_{args.mem_rows}"
        if not (big / "_done").exists():
            shutil.rmtree(big, ignore_errors=True)
            t, s = timed(lambda: generate_table(big, args.mem_rows, seed=0, files=max(8, args.mem_rows // 1_000_000),
                                                malformed=False))
            (big / "_done").write_text(json.dumps({"rows": s.rows, "bytes": s.bytes}))
            print(f"generated {args.mem_rows:,} rows ({s.bytes / 1e6:.0f} MB) in {t:.1f}s", flush=True)
        with PssSampler(interval=0.5) as mem:
            t, info = timed(lambda: run_stage(big, work / "out_big"))
        results["memory"] = {"rows": args.mem_rows, "seconds": round(t, 1),
                             "peak_mb_over_baseline": round(mem.peak_over_baseline / 2**20),
                             "baseline_mb": round(mem.baseline / 2**20), "passes": info["passes"]}
        print(f"\nstage on {args.mem_rows:,} rows: {t:.1f}s, peak memory +{mem.peak_over_baseline / 2**30:.2f} GB "
              f"over the idle baseline ({mem.baseline / 2**30:.2f} GB)")
        shutil.rmtree(work / "out_big", ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

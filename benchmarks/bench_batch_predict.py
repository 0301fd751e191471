"""Batch inference: mlops_ray batch_predict (Ray Data, actor pool) vs one pandas process, same model, same rows.

    .venv/bin/python benchmarks/bench_batch_predict.py --rows 5000000 --repeats 3

The model is a RandomForestClassifier (50 trees, depth 12) on 20 numeric features, saved with the
registry's no-pickle format (skops + JSON features) and loaded back by each peer from disk. Each peer
runs in its own subprocess; the peak memory is the largest sum of RSS over that subprocess and all its
descendants (Ray's raylet, workers, object store), sampled every 0.1 s. Times are wall clock from
"load the model" to "output written", with Ray already started and its idle worker processes up (a
cluster is up before jobs arrive); the Ray peer ships the model folder's bytes to its actors, each loads it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "out" / "batch_predict"
N_FEATURES = 20


def make_data(rows: int, folder: Path, parts: int = 20, seed: int = 0) -> None:
    """``rows`` rows of 20 float features in ``parts`` Parquet files, generated part by part."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.parquet"))) == parts and (folder / "_rows").is_file() \
            and (folder / "_rows").read_text() == str(rows):
        return
    for f in folder.glob("*.parquet"):
        f.unlink()
    rng = np.random.default_rng(seed)
    per = rows // parts
    start = 0
    for i in range(parts):
        n = per if i < parts - 1 else rows - start
        df = pd.DataFrame(rng.normal(size=(n, N_FEATURES)), columns=[f"f{j}" for j in range(N_FEATURES)])
        df.insert(0, "row_id", np.arange(start, start + n))
        df.to_parquet(folder / f"part-{i:03d}.parquet", index=False)
        start += n
    (folder / "_rows").write_text(str(rows))


def make_model(path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from mlops_ray.data.features import FeaturePipeline, NumericFeature
    from mlops_ray.registry.artifacts import save_fitted_model
    from mlops_ray.tune.fitted import FittedModel

    if (path / "meta.json").is_file():
        return
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20_000, N_FEATURES))
    y = (X[:, 0] + X[:, 1] * X[:, 2] - 0.5 * X[:, 3] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    feats = FeaturePipeline(numeric=[NumericFeature(name=f"f{j}", fill=0.0) for j in range(N_FEATURES)],
                            categorical=[], target="y", task="classification", classes=["neg", "pos"])
    est = RandomForestClassifier(n_estimators=50, max_depth=12, random_state=0, n_jobs=1).fit(feats.transform(
        pd.DataFrame(X, columns=[f"f{j}" for j in range(N_FEATURES)])), y)
    save_fitted_model(FittedModel(features=feats, estimator=est, kind="sklearn"), path)


# ------------------------------------------------------------------------------------- the peers


def peer_pandas(data: Path, model_dir: Path, out: Path) -> dict:
    """What one would write without Ray: read everything, transform, predict, write."""
    from mlops_ray.registry.artifacts import load_fitted_model_dir

    t0 = time.perf_counter()  # loading the model is part of the job, as it is for batch_predict
    model = load_fitted_model_dir(model_dir)
    df = pd.read_parquet(data)
    labels, proba = model.predict_matrix(model.features.transform(df[model.features.input_columns]))
    res = pd.DataFrame({"row_id": df["row_id"].to_numpy(), "prediction": labels,
                        "proba_neg": proba[:, 0], "proba_pos": proba[:, 1]})
    res["model_uri"] = str(model_dir)
    res["scored_at"] = pd.Timestamp.now(tz="UTC")
    out.mkdir(parents=True, exist_ok=True)
    res.to_parquet(out / "scored.parquet", index=False)
    return {"seconds": time.perf_counter() - t0, "rows": len(res)}


def peer_ray(data: Path, model_dir: Path, out: Path, cpus: int, concurrency: int) -> dict:
    import ray

    from mlops_ray.cluster.batch import batch_predict

    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             object_store_memory=2_000_000_000)

    # A cluster that is up has its idle worker processes started before a job arrives: wait for them. Not by
    # running tasks on them: Ray starts actors only in workers that never ran a task, so warming them with
    # tasks would make every scoring actor start a new process.
    import psutil

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(
            "ray::IDLE" in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])) < cpus:
        time.sleep(0.1)
    time.sleep(1.0)
    t0 = time.perf_counter()
    res = batch_predict(str(data), str(out), id_column="row_id", concurrency=concurrency,
                        num_cpus=cpus / concurrency, overwrite=True, model_uri=str(model_dir))
    seconds = time.perf_counter() - t0
    ray.shutdown()
    return {"seconds": seconds, "rows": res.rows_out}


# --------------------------------------------------------------------------------------- harness


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_peer(args: list[str]) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    stdout, _ = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"peer {args} failed with exit code {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_gib"] = peak / 2**30
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--peer", choices=["pandas", "ray"])
    args = ap.parse_args()
    data, model_dir = OUT / f"data_{args.rows}", OUT / "model"
    if args.peer == "pandas":
        print(json.dumps(peer_pandas(data, model_dir, OUT / "scored_pandas")))
        return
    if args.peer == "ray":
        print(json.dumps(peer_ray(data, model_dir, OUT / "scored_ray", args.cpus, args.concurrency)))
        return
    make_data(args.rows, data)
    make_model(model_dir)
    runs: dict[str, list[dict]] = {"pandas": [], "ray": []}
    common = ["--rows", str(args.rows), "--cpus", str(args.cpus), "--concurrency", str(args.concurrency)]
    for i in range(args.repeats):
        for peer in ("pandas", "ray"):  # interleaved, so machine noise hits both alike
            r = run_peer(["--peer", peer, *common])
            runs[peer].append(r)
            print(f"repeat {i + 1} {peer:6s} {r['seconds']:7.2f}s  peak RSS {r['peak_rss_gib']:.2f} GiB", flush=True)
    med = {p: statistics.median(r["seconds"] for r in rs) for p, rs in runs.items()}
    mem = {p: statistics.median(r["peak_rss_gib"] for r in rs) for p, rs in runs.items()}
    print(f"\nrows={args.rows} cpus={args.cpus} actors={args.concurrency} repeats={args.repeats}")
    for p in runs:
        print(f"{p:6s} median {med[p]:7.2f}s  {args.rows / med[p]:,.0f} rows/s  median peak RSS {mem[p]:.2f} GiB")
    print(f"speed-up ray/pandas: {med['pandas'] / med['ray']:.2f}x")
    (OUT / f"result_{args.rows}.json").write_text(json.dumps({"runs": runs, "median_s": med, "peak_rss_gib": mem},
                                                             indent=1))


if __name__ == "__main__":
    main()

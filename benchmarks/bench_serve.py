"""Serving benchmark (issue 5): this stage vs `mlflow models serve` vs a hand-written FastAPI + uvicorn server.

The standard job: RandomForestClassifier(50 trees, max_depth 12) on the tuning benchmark's 20-feature
task (make_classification 6000 x 20), one row per request, 16 connections from `wrk` for DURATION s,
REPEATS times per peer; medians of throughput, p50 and p99. Also: the latency the ingress hop adds at
low load (1 connection: the full ingress -> model path vs one Serve deployment that parses and predicts
itself), and the time a manual rollback takes to take effect.

    .venv/bin/python benchmarks/bench_serve.py [--duration 15] [--repeats 2] [--with-default-proxy]

Needs `wrk` (Debian: apt-get install wrk). Writes benchmarks/out/bench_serve.json.
"""

# No `from __future__ import annotations`: FastAPI must see the real types of the baseline's routes.

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_FEATURES = 20
PORTS = {"ours": 18095, "mlflow": 18096, "fastapi": 18097, "ours_default": 18098}
FEATURES = [f"f{j}" for j in range(N_FEATURES)]


# ------------------------------------------------------------------------------------- model


def make_fitted() -> Any:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from mlops_ray.data.features import FeaturePipeline, NumericFeature
    from mlops_ray.tune.fitted import FittedModel

    X, y = make_classification(n_samples=6000, n_features=20, n_informative=8, n_redundant=4, class_sep=0.8,
                               flip_y=0.03, random_state=0)
    feats = FeaturePipeline(numeric=[NumericFeature(name=c, fill=0.0, transform="none") for c in FEATURES],
                            categorical=[], target="y", task="classification", classes=["neg", "pos"])
    est = RandomForestClassifier(n_estimators=50, max_depth=12, random_state=0, n_jobs=1)
    est.fit(feats.transform(pd.DataFrame(X, columns=FEATURES)), y)
    return FittedModel(features=feats, estimator=est, kind="sklearn", params={"n_estimators": 50, "max_depth": 12})


def register(rt: Any, fitted: Any) -> str:
    import mlflow

    from mlops_ray.registry import log_fitted_model
    from mlops_ray.runtime import configure_mlflow, ensure_experiment

    configure_mlflow(rt)
    exp = ensure_experiment(rt, "bench-serve")
    with mlflow.start_run(experiment_id=exp):
        info = log_fitted_model(fitted, bundle_code=True)
    return str(mlflow.register_model(info.model_uri, "bench").version)


def one_row() -> dict[str, float]:
    rng = np.random.default_rng(3)
    return {c: float(v) for c, v in zip(FEATURES, rng.normal(size=N_FEATURES), strict=True)}


# ------------------------------------------------------------------------------------- wrk


def wrk(url: str, body: dict[str, Any], headers: dict[str, str], duration: int, connections: int,
        workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    threads = min(2, connections)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s",
                          str(script), url], capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    lat = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    return {"rps": rps, "requests": total, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0,
            "p50_ms": lat.get("50", float("nan")), "p90_ms": lat.get("90", float("nan")),
            "p99_ms": lat.get("99", float("nan"))}


def _ms(v: str, unit: str) -> float:
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wait_http(url: str, timeout_s: float = 180.0, **kw: Any) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, timeout=5, **kw).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s}s")


def measure(name: str, url: str, body: dict[str, Any], headers: dict[str, str], args: argparse.Namespace,
            tmp: Path) -> dict[str, Any]:
    wait_http(url, json=body, headers=headers)
    wrk(url, body, headers, 3, 16, tmp)  # warm-up
    runs = [wrk(url, body, headers, args.duration, 16, tmp) for _ in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p90_ms", "p99_ms")}
    med["failed"] = sum(r["non_2xx"] + r["socket_errors"] for r in runs)
    print(f"{name:>14}: {med['rps']:8.0f} req/s  p50 {med['p50_ms']:6.1f} ms  p99 {med['p99_ms']:6.1f} ms  "
          f"failed {med['failed']}", flush=True)
    return {"median": med, "runs": runs}


# ------------------------------------------------------------------------------------- peers


def serve_ours(rt: Any, cfg: Any, fast: bool, body: dict[str, Any], args: argparse.Namespace,
               tmp: Path) -> dict[str, Any]:
    import ray

    from mlops_ray.serve import deploy, ensure_local_head, shutdown
    from mlops_ray.serve.auth import read_tokens

    out: dict[str, Any] = {}
    try:
        ensure_local_head(rt, fast_mode=fast)
        dep = deploy(cfg, rt, model="bench", version="1", num_replicas=args.replicas, fast_mode=fast)
        tok = read_tokens(rt.serve_dir, token_env="_", admin_token_env="_", env=lambda _: None).token
        headers = {"Authorization": f"Bearer {tok}"}
        url = f"{dep.url}/v1/models/bench/predict"
        out["load"] = measure("ours" if fast else "ours (default)", url, body, headers, args, tmp)
        if fast:
            out["rollback"] = rollback_time(rt, cfg, url, body, headers, args)
            out["hop"] = ingress_hop(dep.url, url, body, headers, args, tmp, rt.tracking_uri, cfg.serve.app_name)
        return out
    finally:
        shutdown(rt)
        ray.shutdown()


def ingress_hop(base: str, url: str, body: dict[str, Any], headers: dict[str, str], args: argparse.Namespace,
                tmp: Path, rt_uri: str, app_name: str) -> dict[str, Any]:
    """p50 at 1 connection: ingress -> model (two deployments) vs one deployment doing both itself.

    The baseline replaces the ingress at route "/" (one HTTP application at a time, as in HAProxy mode).
    """
    from ray import serve

    full = [wrk(url, body, headers, args.hop_duration, 1, tmp) for _ in range(args.repeats)]
    serve.delete(app_name)
    serve.run(direct_app("models:/bench/1", rt_uri), name="bench-direct", route_prefix="/")
    durl = f"{base}/predict"
    wait_http(durl, json=body)
    direct = [wrk(durl, body, {}, args.hop_duration, 1, tmp) for _ in range(args.repeats)]
    serve.delete("bench-direct")
    f50 = statistics.median(r["p50_ms"] for r in full)
    d50 = statistics.median(r["p50_ms"] for r in direct)
    print(f"ingress hop at 1 connection: p50 {f50:.2f} ms (ingress -> model) vs {d50:.2f} ms (one deployment): "
          f"+{f50 - d50:.2f} ms", flush=True)
    return {"full_p50_ms": f50, "direct_p50_ms": d50, "added_ms": f50 - d50, "full": full, "direct": direct}


def direct_app(source: str, tracking_uri: str) -> Any:
    """One Serve deployment that parses, validates and predicts (batched) itself: the no-hop baseline."""
    from fastapi import FastAPI, Request
    from ray import serve

    api = FastAPI()

    @serve.deployment(ray_actor_options={"num_cpus": 0.5})
    @serve.ingress(api)
    class Direct:
        def __init__(self) -> None:
            from mlops_ray.serve.model_server import load_model
            from mlops_ray.serve.validation import InputSchema

            self.model = load_model(source, tracking_uri)
            self.schema = InputSchema.from_features(self.model.features)

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.001)
        async def _batch(self, frames: list[Any]) -> list[Any]:
            merged = {c: [v for f in frames for v in f[c]] for c in self.schema.columns}
            labels, _ = self.model.predict_matrix(self.model.features.transform(pd.DataFrame(merged)))
            return [str(v) for v in labels]

        @api.post("/predict")
        async def predict(self, request: Request) -> dict[str, Any]:
            from mlops_ray.serve.protocols import parse_v1
            from mlops_ray.serve.validation import parse_json

            cols = parse_v1(parse_json(await request.body(), 2_000_000), self.schema, 1000)
            return {"predictions": [await self._batch(cols)]}

    return Direct.bind()


def rollback_time(rt: Any, cfg: Any, url: str, body: dict[str, Any], headers: dict[str, str],
                  args: argparse.Namespace) -> dict[str, Any]:
    """Switch to v2 (canary 100), then roll back: time until every answer comes from v1 again."""
    from mlops_ray.serve import deploy, rollback

    deploy(cfg, rt, model="bench", version="2", source="models:/bench/1", canary_pct=100,
           num_replicas=args.replicas)
    results = []
    with httpx.Client(headers=headers) as c:
        for i in range(3):
            target = "1" if i % 2 == 0 else "2"
            t0 = time.perf_counter()
            out = rollback(rt, "bench", "benchmark")
            call_s = time.perf_counter() - t0
            while c.post(url, json=body).json()["model_version"] != target:
                pass
            effect_s = time.perf_counter() - t0
            results.append({"flip_ms": out["flip_seconds"] * 1e3, "call_ms": call_s * 1e3,
                            "effect_ms": effect_s * 1e3})
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"manual rollback: weights flipped in {med['flip_ms']:.3f} ms inside the ingress; rollback call "
          f"{med['call_ms']:.0f} ms; first answer from the previous version {med['effect_ms']:.0f} ms after "
          "the call started", flush=True)
    return {"median": med, "runs": results}


def serve_mlflow(rt: Any, body: dict[str, Any], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = PORTS["mlflow"]
    # mlflow starts `uvicorn` by name: the venv's bin must be on PATH.
    env_cmd = ["env", f"MLFLOW_TRACKING_URI={rt.tracking_uri}",
               f"PATH={ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"]
    cmd = [*env_cmd, str(ROOT / ".venv/bin/mlflow"), "models", "serve", "-m", "models:/bench/1", "-p", str(port),
           "-h", "127.0.0.1", "-w", "2", "--env-manager", "local"]
    return _subprocess_peer("mlflow serve", cmd, f"http://127.0.0.1:{port}/invocations",
                            {"dataframe_records": body["rows"]}, args, tmp)


FASTAPI_APP = textwrap.dedent('''
    import pandas as pd
    from fastapi import FastAPI
    from mlops_ray.registry import load_fitted_model
    import os
    model = load_fitted_model(os.environ["BENCH_MODEL_DIR"])
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict):
        labels, proba = model.predict_matrix(model.features.transform(pd.DataFrame(body["rows"])))
        return {"predictions": [str(v) for v in labels], "probabilities": proba.tolist()}
''')


def serve_fastapi(model_dir: Path, body: dict[str, Any], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = PORTS["fastapi"]
    (tmp / "bench_fastapi_app.py").write_text(FASTAPI_APP)
    cmd = ["env", f"BENCH_MODEL_DIR={model_dir}", f"PYTHONPATH={tmp}:{ROOT}", str(ROOT / ".venv/bin/uvicorn"),
           "bench_fastapi_app:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
           "--log-level", "warning"]
    return _subprocess_peer("fastapi+uvicorn", cmd, f"http://127.0.0.1:{port}/predict", body, args, tmp)


def _subprocess_peer(name: str, cmd: list[str], url: str, body: dict[str, Any], args: argparse.Namespace,
                     tmp: Path) -> dict[str, Any]:
    log = open(tmp / f"{name.split()[0]}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return {"load": measure(name, url, body, {}, args, tmp)}
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


# ------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--hop-duration", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--replicas", type=int, default=1, help="model replicas of this stage")
    ap.add_argument("--with-default-proxy", action="store_true", help="also run this stage on Serve's default proxy")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")

    from mlops_ray.config import parse_config
    from mlops_ray.registry import save_fitted_model
    from mlops_ray.runtime import resolve_runtime

    tmp = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    rt = resolve_runtime(None, workdir=tmp / "work", tracking_uri=f"sqlite:///{tmp / 'work' / 'mlflow.db'}")
    rt.ensure_dirs()
    fitted = make_fitted()
    register(rt, fitted)
    model_dir = save_fitted_model(fitted, tmp / "model")
    body = {"rows": [one_row()]}
    t0 = time.perf_counter()
    X1 = fitted.features.transform(pd.DataFrame(body["rows"]))
    X32 = np.repeat(X1, 32, axis=0)
    cost = {}
    for name, X in (("1_row_ms", X1), ("32_rows_ms", X32)):
        ts = []
        for _ in range(30):
            s = time.perf_counter()
            fitted.predict_matrix(X)
            ts.append((time.perf_counter() - s) * 1e3)
        cost[name] = statistics.median(ts)
    print(f"predict cost: 1 row {cost['1_row_ms']:.2f} ms, 32 rows {cost['32_rows_ms']:.2f} ms", flush=True)

    def cfg_for(port: int) -> Any:
        return parse_config({"name": "bench", "data": {"source": {"bundled": "iris"}},
                             "serve": {"port": port, "app_name": "bench", "max_batch_size": 32,
                                       "batch_wait_timeout_s": 0.001, "replica_cpus": 0.5}})

    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "args": vars(args),
                               "predict_cost": cost}
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)

    def save() -> None:
        (out / "bench_serve.json").write_text(json.dumps(results, indent=2, default=str))

    results["mlflow"] = serve_mlflow(rt, body, args, tmp)
    save()
    results["fastapi"] = serve_fastapi(model_dir, body, args, tmp)
    save()
    results["ours"] = serve_ours(rt, cfg_for(PORTS["ours"]), True, body, args, tmp)
    save()
    if args.with_default_proxy:
        results["ours_default"] = serve_ours(rt, cfg_for(PORTS["ours_default"]), False, body, args, tmp)
    o, m, f = (results[k]["load"]["median"] for k in ("ours", "mlflow", "fastapi"))
    results["ratios"] = {"throughput_vs_mlflow": o["rps"] / m["rps"], "throughput_vs_fastapi": o["rps"] / f["rps"],
                         "p99_vs_mlflow": o["p99_ms"] / m["p99_ms"], "p99_vs_fastapi": o["p99_ms"] / f["p99_ms"]}
    print("ratios:", {k: round(v, 2) for k, v in results["ratios"].items()}, f"({time.perf_counter() - t0:.0f}s)")
    save()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

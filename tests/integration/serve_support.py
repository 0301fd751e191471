"""Shared helpers of the Serve tests: a small real model built by hand, a config, a load generator."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_ray.config import parse_config
from mlops_ray.data.features import CategoricalFeature, FeaturePipeline, NumericFeature
from mlops_ray.tune.fitted import FittedModel

FEATURES = ["x0", "x1", "x2"]


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.normal(size=n) for c in FEATURES})
    df["color"] = rng.choice(["red", "green", "blue"], size=n)
    return df


def make_model(seed: int = 0, skewed: bool = False, n_estimators: int = 10) -> FittedModel:
    """A fitted RandomForest on 3 numeric + 1 categorical feature (about half "pos").

    ``skewed``: a bad model that learned a rare-positive rule, so its predictions are ~90% "neg".
    """
    from sklearn.ensemble import RandomForestClassifier

    features = FeaturePipeline(
        numeric=[NumericFeature(name=c, fill=0.0 if c != "x2" else None) for c in FEATURES],
        categorical=[CategoricalFeature(name="color", fill="red", categories=["red", "green", "blue"])],
        target="y", task="classification", classes=["neg", "pos"],
        input_order=[*FEATURES, "color"],
    )
    df = make_frame(400, seed)
    rule = df["x0"] > 1.2 if skewed else (df["x0"] + 0.5 * df["x1"]) > 0
    y = rule.astype(int).to_numpy()
    est = RandomForestClassifier(n_estimators=n_estimators, max_depth=5, random_state=seed)
    est.fit(features.transform(df), y)
    return FittedModel(features=features, estimator=est, kind="sklearn", params={"n_estimators": n_estimators})


def rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    return make_frame(n, seed).to_dict(orient="records")


def make_config(port: int, workdir: str, **serve: Any) -> Any:
    spec = {"name": "servetest", "workdir": workdir, "data": {"source": {"bundled": "iris"}},
            "serve": {"port": port, "app_name": f"mlops-test-{port}", "replica_cpus": 0.25,
                      "autoscaling": {"min_replicas": 1, "max_replicas": 1}, **serve}}
    return parse_config(spec)


@dataclass
class LoadResult:
    codes: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.codes.values())


class Load:
    """Steady load from threads with httpx; counts every response (and every exception as a failure)."""

    def __init__(self, url: str, token: str, model: str, threads: int = 3, pause_s: float = 0.01) -> None:
        self.url, self.model, self.threads, self.pause_s = url, model, threads, pause_s
        self.headers = {"Authorization": f"Bearer {token}"}
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def _run(self, seed: int) -> None:
        import httpx

        bodies = [{"rows": [r]} for r in rows(64, seed)]
        i = 0
        with httpx.Client(timeout=30.0) as client:
            while not self._stop.is_set():
                i += 1
                try:
                    r = client.post(f"{self.url}/v1/models/{self.model}/predict", json=bodies[i % len(bodies)],
                                    headers=self.headers)
                    with self._lock:
                        self.result.codes[r.status_code] += 1
                        if r.status_code == 200:
                            self.result.versions[r.json()["model_version"]] += 1
                        else:
                            self.result.failures.append(f"{r.status_code}: {r.text[:200]}")
                except Exception as e:
                    with self._lock:
                        self.result.codes[-1] += 1
                        self.result.failures.append(repr(e))
                time.sleep(self.pause_s)

    def __enter__(self) -> Load:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=30)

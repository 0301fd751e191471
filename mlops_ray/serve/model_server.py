"""The model deployment: one Serve application per model version, dynamically batched (the Ray edge).

One application per version (not one deployment inside the ingress's application) so that a new
version is added, kept warm or deleted without redeploying, and so without restarting, the ingress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
import pyarrow as pa
from ray import serve

from mlops_ray.serve.validation import Columns, InputSchema

logger = logging.getLogger("ray.serve")
DEPLOYMENT_NAME = "ModelServer"


def load_model(source: Any, tracking_uri: str | None) -> Any:
    """A FittedModel from a registry URI or a local folder (via the registry's loader), or as given."""
    if not isinstance(source, str):
        return source  # a FittedModel shipped by value (tests, notebooks)
    from mlops_ray.registry import load_in_worker

    return load_in_worker(source, tracking_uri)


@serve.deployment(name=DEPLOYMENT_NAME, max_ongoing_requests=64, health_check_period_s=2.0,
                  graceful_shutdown_timeout_s=10.0)
class ModelServer:
    """Predicts batches of validated rows for one model version; logs them for monitoring."""

    def __init__(self, model_name: str, version: str, source: Any, options: dict[str, Any]) -> None:
        import ray

        self.model_name, self.version = model_name, str(version)
        self.model = load_model(source, options.get("tracking_uri"))
        self.schema = InputSchema.from_features(self.model.features)
        self.device = "cpu"
        gpus = ray.get_gpu_ids()
        if gpus and self.model.kind == "torch_mlp":
            self.device = self._to_gpu()
        self._batch.set_max_batch_size(int(options.get("max_batch_size", 32)))
        self._batch.set_batch_wait_timeout_s(float(options.get("batch_wait_timeout_s", 0.001)))
        self.pred_logger = self._make_logger(options)

    def _to_gpu(self) -> str:
        est = self.model.estimator
        for attr in ("to", "set_device"):
            fn = getattr(est, attr, None)
            if callable(fn):
                try:
                    fn("cuda")
                    return "cuda"
                except Exception as e:  # keep serving on CPU rather than not at all
                    logger.warning("could not move model to GPU: %s", e)
        return "cpu"

    def _make_logger(self, options: dict[str, Any]) -> Any:
        directory = options.get("monitor_dir")
        if not directory:
            return None
        try:
            from mlops_ray.monitor.logger import PredictionLogger
        except ImportError:
            return None
        return PredictionLogger(directory, sample_rate=float(options.get("sample_rate", 1.0)),
                                flush_rows=int(options.get("flush_rows", 500)),
                                flush_interval_s=float(options.get("flush_interval_s", 5.0)),
                                model_name=self.model_name, version=self.version, classes=self.model.classes,
                                feature_types=self.model.features.input_types())

    def metadata(self) -> dict[str, Any]:
        return {"model": self.model_name, "version": self.version, "schema": self.schema.to_dict(),
                "task": self.model.task, "classes": _plain(self.model.classes), "kind": self.model.kind,
                "device": self.device, "params": {k: str(v) for k, v in (self.model.params or {}).items()}}

    async def predict(self, cols: Columns, request_id: str) -> dict[str, Any]:
        """One request's rows, batched here with other callers' (for handle users)."""
        return await self._batch((cols, request_id))

    async def predict_many(self, items: list[tuple[Columns, str]]) -> list[dict[str, Any]]:
        """Requests the ingress already batched: predicted together at once, one answer per request."""
        return await self._predict_items(items)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.001)
    async def _batch(self, items: list[tuple[Columns, str]]) -> list[dict[str, Any]]:
        return await self._predict_items(items)

    async def _predict_items(self, items: list[tuple[Columns, str]]) -> list[dict[str, Any]]:
        sizes = [len(next(iter(c.values()))) for c, _ in items]
        # Arrow, not pandas: the validated lists convert in C, and the features and the log read it as is.
        frame = pa.table({n: pa.array([v for c, _ in items for v in c[n]],
                                      pa.float64() if self.schema.types[n] == "double" else pa.string())
                          for n in self.schema.columns})
        labels, proba = await asyncio.to_thread(self._predict_frame, frame)
        total = frame.num_rows
        if self.pred_logger is not None:
            ids = [rid for (_, rid), n in zip(items, sizes, strict=True) for _ in range(n)]
            try:
                self.pred_logger.log(frame, labels, proba, request_ids=ids, timestamps=[time.time()] * total)
            except Exception as e:  # the log must never fail a prediction
                logger.warning("prediction log failed: %s", e)
        out, start = [], 0
        label_list = _plain(labels)
        proba_list = proba.tolist() if proba is not None else None
        for n in sizes:
            out.append({"predictions": label_list[start:start + n],
                        "probabilities": proba_list[start:start + n] if proba_list is not None else None,
                        "batch_size": total})
            start += n
        return out

    def _predict_frame(self, frame: pa.Table) -> tuple[np.ndarray, np.ndarray | None]:
        return self.model.predict_matrix(self.model.features.transform(frame))

    def check_health(self) -> None:
        if self.model is None:  # pragma: no cover - __init__ would have failed
            raise RuntimeError("model not loaded")

    def __del__(self) -> None:
        if getattr(self, "pred_logger", None) is not None:
            try:
                self.pred_logger.close(timeout_s=5.0)
            except Exception:
                pass


def _plain(values: Any) -> Any:
    """numpy values -> plain Python (JSON-safe) values."""
    if values is None:
        return None
    return [v.item() if hasattr(v, "item") else v for v in values]


def model_app(model_name: str, version: str, source: Any, options: dict[str, Any], serve_spec: Any,
              num_replicas: int | None = None, logging_config: dict[str, Any] | None = None) -> Any:
    """The bound Serve application of one model version, with the config's autoscaling and resources."""
    a = serve_spec.autoscaling
    kwargs: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": serve_spec.replica_cpus, "num_gpus": serve_spec.replica_gpus},
        "max_ongoing_requests": max(2 * serve_spec.max_batch_size, 8),
    }
    if logging_config is not None:
        kwargs["logging_config"] = logging_config
    if num_replicas is not None:
        kwargs["num_replicas"] = num_replicas
    else:
        kwargs["autoscaling_config"] = {
            "min_replicas": a.min_replicas, "max_replicas": a.max_replicas,
            "initial_replicas": max(a.min_replicas, 1),
            # The ingress batches the hop, so these replicas count batches in flight, not requests.
            "target_ongoing_requests": max(1.0, a.target_ongoing_requests / serve_spec.max_batch_size),
            "upscale_delay_s": a.upscale_delay_s, "downscale_delay_s": a.downscale_delay_s,
        }
    options = {**options, "max_batch_size": serve_spec.max_batch_size,
               "batch_wait_timeout_s": serve_spec.batch_wait_timeout_s}
    return ModelServer.options(**kwargs).bind(model_name, str(version), source, options)

"""Scoring one batch of rows with a fitted model (Arrow or pandas; what each Ray Data actor runs).

``BatchScorer`` is a callable class so that Ray Data runs it in a pool of actors: the model (given,
shipped as an object ref, or loaded from a URI) is set up once per actor in ``__init__`` and reused for
every batch that actor receives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops_ray.exceptions import ClusterError, DataError

if TYPE_CHECKING:
    from mlops_ray.data.features import FeaturePipeline
    from mlops_ray.tune.fitted import FittedModel

PREDICTION = "prediction"
PROBA_PREFIX = "proba_"
LINEAGE_COLUMNS = ("model_name", "model_version", "model_uri", "scored_at", "batch_run_id")


def proba_column_names(classes: Sequence[Any]) -> list[str]:
    """``proba_<class>`` per class, made safe for Parquet/SQL and unique."""
    names: list[str] = []
    for c in classes:
        base = PROBA_PREFIX + (re.sub(r"\W+", "_", str(c)).strip("_") or "class")
        name, i = base, 1
        while name in names:
            i += 1
            name = f"{base}_{i}"
        names.append(name)
    return names


def output_columns(features: FeaturePipeline, passthrough: Sequence[str]) -> list[str]:
    """The output schema, in order: passthrough columns, prediction, proba_*, lineage."""
    proba = proba_column_names(features.classes or []) if features.task == "classification" else []
    return [*passthrough, PREDICTION, *proba, *LINEAGE_COLUMNS]


def check_input_columns(columns: Sequence[str], features: FeaturePipeline, passthrough: Sequence[str]) -> None:
    """Fail before scoring when the input lacks a model input column or a passthrough column."""
    have = set(columns)
    missing = [c for c in features.input_columns if c not in have]
    if missing:
        raise DataError(
            f"input is missing {len(missing)} column(s) the model needs: {missing}; the model expects "
            f"{features.input_columns}"
        )
    missing_pt = [c for c in passthrough if c not in have]
    if missing_pt:
        raise DataError(f"passthrough/id column(s) {missing_pt} not in the input; it has {sorted(have)}")
    clash = [c for c in passthrough if c == PREDICTION or c.startswith(PROBA_PREFIX) or c in LINEAGE_COLUMNS]
    if clash:
        raise DataError(f"passthrough column(s) {clash} clash with output columns; rename them first")


def _limit_threads(estimator: Any, threads: int | None) -> None:
    # Parallelism comes from the actor pool; an estimator fitted with n_jobs=-1 would oversubscribe.
    if threads is not None and hasattr(estimator, "n_jobs"):
        try:
            estimator.n_jobs = threads
        except (AttributeError, TypeError):  # a read-only property: leave it
            pass


class BatchScorer:
    """Callable class for ``Dataset.map_batches``: load the model once, score each pandas batch."""

    def __init__(
        self,
        model_uri: str | None = None,
        *,
        model: FittedModel | Any | None = None,  # or FittedModelFiles, or an ObjectRef to either
        lineage: dict[str, Any] | None = None,
        passthrough: Sequence[str] = (),
        estimator_threads: int | None = 1,
        tracking_uri: str | None = None,
    ) -> None:
        if model is not None:  # maybe shipped as an object ref, maybe as the folder's bytes
            model = _resolve_model(model)
        if model is None:
            if not model_uri:
                raise ClusterError("BatchScorer needs a model_uri (or a FittedModel for tests)")
            from mlops_ray.registry import load_in_worker

            model = load_in_worker(model_uri, tracking_uri)
        self.model = model
        self.passthrough = list(passthrough)
        lineage = dict(lineage or {})
        self.lineage = {k: lineage.get(k) for k in LINEAGE_COLUMNS}
        if self.lineage["model_uri"] is None:
            self.lineage["model_uri"] = model_uri
        if self.lineage["scored_at"] is None:
            self.lineage["scored_at"] = pd.Timestamp.now(tz="UTC")
        self.lineage["scored_at"] = pd.Timestamp(self.lineage["scored_at"])
        _limit_threads(self.model.estimator, estimator_threads)
        self.device = "cpu"
        self._move_to_device()
        self._proba_names = (
            proba_column_names(self.model.classes or []) if self.model.task == "classification" else []
        )

    def _move_to_device(self) -> None:
        # A torch model runs on the GPU Ray assigned to this actor, and on the CPU when it was assigned
        # none, even on a GPU node (its own "auto" would grab any visible GPU). See devices.py.
        est = self.model.estimator
        net = getattr(est, "model_", None)
        if self.model.kind != "torch_mlp" or net is None or not hasattr(net, "to"):
            return
        from mlops_ray.cluster.devices import torch_device

        device = torch_device()
        est.model_ = net.to(device)
        est.device_ = device
        self.device = device

    def __call__(self, batch: pd.DataFrame | pa.Table) -> pd.DataFrame | pa.Table:
        """Score one batch; an Arrow batch (Ray Data's zero-copy format) gives an Arrow table, pandas gives pandas."""
        arrow = isinstance(batch, pa.Table)
        check_input_columns(batch.column_names if arrow else list(batch.columns), self.model.features, self.passthrough)
        n = batch.num_rows if arrow else len(batch)
        if n == 0:
            empty = pd.DataFrame(columns=output_columns(self.model.features, self.passthrough))
            return pa.Table.from_pandas(empty, preserve_index=False) if arrow else empty
        labels, proba = self.model.predict_matrix(self.model.features.transform(batch))
        out: dict[str, Any] = {col: batch[col] if arrow else batch[col].to_numpy() for col in self.passthrough}
        out[PREDICTION] = np.asarray(labels)
        for j, name in enumerate(self._proba_names):  # null for a classifier without probabilities
            out[name] = proba[:, j] if proba is not None else np.full(n, np.nan)
        for key, value in self.lineage.items():
            out[key] = _constant(value, n, arrow)
        return pa.table(out) if arrow else pd.DataFrame(out, index=pd.RangeIndex(n))


def _constant(value: Any, n: int, arrow: bool) -> Any:
    """A lineage column: the timestamp as UTC, anything else as text (null stays null)."""
    if isinstance(value, pd.Timestamp):
        if not arrow:
            return pd.Series(value, index=pd.RangeIndex(n))
        stamp = np.datetime64(value.tz_convert("UTC").tz_localize(None).as_unit("ns"))
        return pa.array(np.full(n, stamp), type=pa.timestamp("ns", tz="UTC"))
    text = None if value is None else str(value)
    return pa.array([text] * n, type=pa.string()) if arrow else [text] * n


class PartScorer:
    """Callable class for ``Dataset.map_batches`` over part numbers: each call reads, scores and writes a part.

    The model comes as an object ref (a FittedModel, or ``FittedModelFiles`` that this actor deserializes:
    the driver's folder is not on other nodes). A model that does not load fails every call with the
    registry's own error, which reaches the caller as it is (an error in ``__init__`` would only say that
    the actor died).
    """

    def __init__(self, parts: Sequence[Any], *, model: Any, input_path: str, output_path: str,
                 lineage: dict[str, Any], passthrough: Sequence[str], batch_size: int) -> None:
        from mlops_ray.cluster.parts import resolve_filesystem
        from mlops_ray.exceptions import MlopsRayError

        self.parts = {p.index: p for p in parts}
        self.batch_size = batch_size
        self.input_fs, _ = resolve_filesystem(input_path)
        self.output_fs, self.output_dir = resolve_filesystem(output_path)
        self.load_error: MlopsRayError | None = None
        self.scorer: BatchScorer | None = None
        try:
            self.scorer = BatchScorer(model=model, lineage=lineage, passthrough=passthrough)
        except MlopsRayError as e:
            self.load_error = e
            return
        features = self.scorer.model.features
        self.columns = list(dict.fromkeys([*passthrough, *features.input_columns]))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from mlops_ray.cluster.parts import score_part

        if self.scorer is None:
            assert self.load_error is not None
            raise self.load_error
        indexes = [int(i) for i in batch["part"]]
        rows = [score_part(self.parts[i], self.scorer, columns=self.columns, batch_size=self.batch_size,
                           output_dir=self.output_dir, input_fs=self.input_fs, output_fs=self.output_fs)
                for i in indexes]
        return {"part": np.asarray(indexes, dtype=np.int64), "rows": np.asarray(rows, dtype=np.int64)}


def _resolve_model(model: Any) -> Any:
    if type(model).__name__ == "ObjectRef":
        import ray

        model = ray.get(model)
    from mlops_ray.registry.artifacts import FittedModelFiles

    return model.load() if isinstance(model, FittedModelFiles) else model

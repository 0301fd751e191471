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
        model: FittedModel | Any | None = None,  # or an ObjectRef to one
        lineage: dict[str, Any] | None = None,
        passthrough: Sequence[str] = (),
        estimator_threads: int | None = 1,
        tracking_uri: str | None = None,
    ) -> None:
        if model is not None and type(model).__name__ == "ObjectRef":  # shipped by batch_predict
            import ray

            model = ray.get(model)
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
        if proba is not None:
            for j, name in enumerate(self._proba_names):
                out[name] = proba[:, j]
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

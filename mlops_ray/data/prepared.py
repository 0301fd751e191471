"""What the data stage hands to the next stages: the contract between data, tune, registry and monitor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_ray.data.features import FeaturePipeline


@dataclass
class DataReport:
    """Counts that reconcile exactly: ``rows_read == rows_clean + rows_rejected``."""

    rows_read: int
    rows_clean: int
    rows_rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rows_dropped_missing: int = 0  # rows removed by a 'drop' missing strategy (counted as rejected too)
    rows_dropped_outlier: int = 0  # rows removed by a drop_* outlier method (counted as rejected too)
    missing_filled: dict[str, int] = field(default_factory=dict)
    outliers_handled: dict[str, int] = field(default_factory=dict)
    rows_train: int = 0
    rows_holdout: int = 0
    fingerprint: str = ""
    seconds: float = 0.0
    rejects_path: str | None = None
    output_dir: str | None = None
    source: str = ""
    task: str = ""
    columns_ignored: list[str] = field(default_factory=list)  # input columns not in the schema (dropped)
    quantiles_exact: bool = True  # False: quantiles came from merged block summaries (see docs/data.md)
    seconds_by_pass: dict[str, float] = field(default_factory=dict)

    def reconciles(self) -> bool:
        return self.rows_read == self.rows_clean + self.rows_rejected


@dataclass
class PreparedData:
    """The data stage's result, in memory, for tuning, registry and monitoring.

    ``y_*`` are class indices (0..K-1, see ``features.classes``) for classification, floats for regression.
    ``holdout_frame`` holds the holdout rows' raw (cleaned, untransformed) input columns, so that any
    packaged model, with its own features, can be scored on exactly the same rows.
    """

    features: FeaturePipeline
    X_train: np.ndarray
    y_train: np.ndarray
    folds: np.ndarray  # fold id (0..k-1) per training row
    X_holdout: np.ndarray
    y_holdout: np.ndarray
    holdout_frame: pd.DataFrame
    train_frame_sample: pd.DataFrame  # up to a few rows of raw training input, for input examples
    fingerprint: str
    report: DataReport
    reference: dict[str, Any]  # per-feature reference profile of the training data (monitor/)
    output_dir: Path | None = None
    # Content hash (``_row_hash``) of each holdout row, in holdout order: the registry works out which of
    # these rows an earlier model, split with another seed or fraction, was trained on.
    holdout_hashes: np.ndarray | None = None

    @property
    def task(self) -> str:
        return self.features.task

    @property
    def n_folds(self) -> int:
        return int(self.folds.max()) + 1 if len(self.folds) else 0

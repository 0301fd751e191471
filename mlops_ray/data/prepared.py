"""What the data stage hands to the next stages: the contract between data, tune, registry and monitor."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_ray.data.features import FeaturePipeline
from mlops_ray.data.schema import is_saved_index


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
    classes_without_training_rows: list[str] = field(default_factory=list)  # only in the holdout: never predicted

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


def report_dict(report: DataReport) -> dict[str, Any]:
    return asdict(report)


def format_report(report: DataReport) -> str:
    """The summary `mlops-ray data` prints."""
    lines = [
        f"data: {report.source} ({report.task})",
        f"  rows read      {report.rows_read:>12,}",
        f"  clean          {report.rows_clean:>12,}  (train {report.rows_train:,}, holdout {report.rows_holdout:,})",
        f"  rejected       {report.rows_rejected:>12,}  -> {report.rejects_path}",
    ]
    for reason, n in list(report.rejected_by_reason.items())[:15]:
        lines.append(f"    {reason:<40} {n:>10,}")
    if len(report.rejected_by_reason) > 15:
        lines.append(f"    ... {len(report.rejected_by_reason) - 15} more reasons in report.json")
    filled = sum(report.missing_filled.values())
    handled = sum(report.outliers_handled.values())
    lines.append(f"  missing filled {filled:>12,}  in {len(report.missing_filled)} column(s)")
    lines.append(f"  outliers       {handled:>12,}  handled in {len(report.outliers_handled)} column(s)")
    if report.classes_without_training_rows:
        lost = report.classes_without_training_rows
        lines.append(f"  WARNING: {len(lost)} class(es) have no training row (only holdout rows), so no model can "
                     f"predict them: {', '.join(lost[:10])}{' ...' if len(lost) > 10 else ''}")
    if report.columns_ignored:
        names = [f"{c!r} (a saved pandas index?)" if is_saved_index(c) else c for c in report.columns_ignored]
        lines.append(f"  ignored columns (not in the schema): {', '.join(names)}")
    lines.append(f"  fingerprint    {report.fingerprint}")
    passes = ", ".join(f"{k} {v:.1f}s" for k, v in report.seconds_by_pass.items())
    lines.append(f"  time           {report.seconds:.1f}s  ({passes})")
    lines.append(f"  outputs        {report.output_dir}")
    check = "yes" if report.reconciles() else "NO"
    lines.append(f"  reconciles     {check} ({report.rows_read:,} = {report.rows_clean:,} + {report.rows_rejected:,})")
    return "\n".join(lines)

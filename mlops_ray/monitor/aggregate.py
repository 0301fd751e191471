"""What one block of the prediction log contributes to the monitor, and how blocks merge: pure pandas.

``block_summary`` runs inside Ray Data's ``map_batches`` (one call per block): live counts in the
reference's bins, and the rows that have a feedback label (joined by request id). The driver merges
the summaries with ``merge_summaries``; only counts and labelled rows travel, never the whole log.
Also here: the log's schema check and the metric over time for the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_ray.monitor.decision import live_metric
from mlops_ray.monitor.logger import BASE_COLUMNS, feedback_key
from mlops_ray.monitor.profile import LiveCounts, ReferenceProfile, count_frame, empty_counts
from mlops_ray.monitor.stats import Interval

LABELLED_COLUMNS = ("timestamp", "prediction", "label", "label_value", "model_version")


@dataclass
class BlockSummary:
    """Mergeable contribution of some log rows."""

    counts: LiveCounts
    labelled: pd.DataFrame  # LABELLED_COLUMNS, one row per logged row that has feedback
    t_min: pd.Timestamp | None = None
    t_max: pd.Timestamp | None = None
    versions: dict[str, int] = field(default_factory=dict)


def block_summary(batch: pd.DataFrame, profile: ReferenceProfile, feedback: Mapping[str, tuple[str, float]],
                  since: pd.Timestamp | None = None) -> BlockSummary:
    """Counts of one block of log rows, plus its rows joined to ``feedback`` (key -> (label, label_value));
    ``since``: only the rows logged at or after it."""
    if since is not None and "timestamp" in batch.columns:
        batch = batch[batch["timestamp"] >= since]
    pred = batch["prediction"] if "prediction" in batch.columns else None
    counts = count_frame(profile, batch, pred)
    labelled = pd.DataFrame({c: [] for c in LABELLED_COLUMNS})
    if feedback and len(batch):
        rows = batch["row"] if "row" in batch.columns else pd.Series(0, index=batch.index)
        keys = [feedback_key(str(r), int(k)) for r, k in zip(batch["request_id"], rows, strict=True)]
        hit = np.fromiter((k in feedback for k in keys), dtype=bool, count=len(keys))
        if hit.any():
            found = [feedback[k] for k, h in zip(keys, hit, strict=True) if h]
            labelled = pd.DataFrame({
                "timestamp": batch["timestamp"].to_numpy()[hit],
                "prediction": batch["prediction"].to_numpy()[hit] if pred is not None else np.nan,
                "label": [f[0] for f in found],
                "label_value": [f[1] for f in found],
                "model_version": (batch["model_version"].astype(str).to_numpy()[hit] if "model_version" in batch
                                  else ""),
            })
    ts = batch["timestamp"] if "timestamp" in batch.columns and len(batch) else None
    versions = batch["model_version"].astype(str).value_counts().to_dict() if "model_version" in batch else {}
    return BlockSummary(counts, labelled, ts.min() if ts is not None else None, ts.max() if ts is not None else None,
                        {str(k): int(v) for k, v in versions.items()})


def merge_summaries(parts: Iterable[BlockSummary], profile: ReferenceProfile) -> BlockSummary:
    total = BlockSummary(empty_counts(profile), pd.DataFrame({c: [] for c in LABELLED_COLUMNS}))
    labelled = []
    for p in parts:
        total.counts = total.counts + p.counts
        if len(p.labelled):
            labelled.append(p.labelled)
        for attr, pick in (("t_min", min), ("t_max", max)):
            new = getattr(p, attr)
            if new is not None and not pd.isna(new):
                old = getattr(total, attr)
                setattr(total, attr, new if old is None else pick(old, new))
        for v, n in p.versions.items():
            total.versions[v] = total.versions.get(v, 0) + n
    if labelled:
        total.labelled = pd.concat(labelled, ignore_index=True).sort_values("timestamp", kind="stable")
    return total


def feedback_map(feedback: pd.DataFrame) -> dict[str, tuple[str, float]]:
    """request id -> (label, label_value) from ``read_feedback``'s frame."""
    return {str(r): (str(lab), float(v) if pd.notna(v) else float("nan"))
            for r, lab, v in zip(feedback["request_id"], feedback["label"], feedback["label_value"], strict=True)}


# ------------------------------------------------------------------------------------------ schema


@dataclass
class SchemaProblem:
    """A log file whose feature columns differ from the monitored model's."""

    path: str
    versions: list[str]
    missing: list[str]
    extra: list[str]

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"lacks {self.missing}")
        if self.extra:
            parts.append(f"has unexpected {self.extra}")
        who = f" (written by model version {', '.join(self.versions)})" if self.versions else ""
        return f"{self.path}{who} {' and '.join(parts)}"


def feature_columns(columns: Iterable[str]) -> list[str]:
    return [c for c in columns if c not in BASE_COLUMNS and c != "prediction" and not c.startswith("proba_")]


def check_columns(
    path: str, columns: Iterable[str], expected: Iterable[str], versions: list[str]
) -> SchemaProblem | None:
    cols = list(columns)
    expected = list(expected)
    missing = [c for c in expected if c not in cols]
    extra = [c for c in feature_columns(cols) if c not in expected]
    absent_base = [c for c in ("request_id", "timestamp", "prediction") if c not in cols]
    if missing or extra or absent_base:
        return SchemaProblem(path, versions, missing + absent_base, extra)
    return None


# ------------------------------------------------------------------------------------ over time


def metric_over_time(labelled: pd.DataFrame, task: str, metric: str, *, buckets: int = 10,
                     confidence: float = 0.95) -> list[dict[str, object]]:
    """The live metric in up to ``buckets`` consecutive equal-count windows of labelled rows, oldest first."""
    if labelled.empty:
        return []
    df = labelled.sort_values("timestamp", kind="stable").reset_index(drop=True)
    k = max(1, min(buckets, len(df) // 20 or 1))  # at least ~20 labels per point, or one point
    out: list[dict[str, object]] = []
    for idx in np.array_split(np.arange(len(df)), k):
        part = df.iloc[idx]
        y_true = part["label"] if task == "classification" else part["label_value"]
        name, iv = live_metric(task, metric, y_true.to_numpy(), part["prediction"].to_numpy(), confidence=confidence)
        out.append({"start": part["timestamp"].iloc[0], "end": part["timestamp"].iloc[-1], "metric": name,
                    "estimate": iv.estimate, "low": iv.low, "high": iv.high, "n": iv.n})
    return out


def overall_metric(labelled: pd.DataFrame, task: str, metric: str, confidence: float = 0.95) -> tuple[str, Interval]:
    y_true = labelled["label"] if task == "classification" else labelled["label_value"]
    return live_metric(task, metric, y_true.to_numpy(), labelled["prediction"].to_numpy(), confidence=confidence)

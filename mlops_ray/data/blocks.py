"""What each pass does to one block of rows, as pure functions returning mergeable partials. No Ray.

The data stage makes three streaming passes over the input (stage.py runs them with Ray Data):

1. ``scan_block``: validate, hash, split; statistics of the training rows (moments, quantile
   summaries, category counts) and the label counts.
2. ``profile_block``: apply the cleaning plan to the training rows; moments of the cleaned values
   (for scaling), the reference histogram and category counts (for one-hot and monitoring).
3. ``transform_block``: clean and transform every row, returning the tables to write (train,
   holdout, holdout raw, rejects) and the counts that must reconcile.

Every pass re-validates its block (cheap Arrow kernels) instead of keeping the table in memory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_ray.data.clean import CleaningPlan, apply_plan, dropped_reasons
from mlops_ray.data.features import FeaturePipeline
from mlops_ray.data.fitting import bin_counts
from mlops_ray.data.hashing import FingerprintPartial, holdout_mask, row_hashes
from mlops_ray.data.schema import REJECT_REASON, ROW_HASH, Schema, validate_batch
from mlops_ray.data.stats import ColumnStats, Counts, Moments, merge_column_stats, numeric_partial

SAMPLE_ROWS = 5


@dataclass
class Validated:
    clean: pa.Table
    rejects: pa.Table
    h0: np.ndarray
    h1: np.ndarray
    holdout: np.ndarray


def validate_and_split(batch: pa.Table, schema: Schema, seed: int, fraction: float) -> Validated:
    clean, rejects = validate_batch(batch, schema)
    # By name, not position: the same rows with their columns in another order are the same data (and split).
    h0, h1 = row_hashes(clean, sorted(schema.names))
    return Validated(clean, rejects, h0, h1, holdout_mask(h0, seed, fraction))


def _floats(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if col.null_count:
        col = pc.fill_null(col, np.nan)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def arrow_counts(col: pa.ChunkedArray | pa.Array) -> Counts:
    """Exact value counts of one column (missing apart), with Arrow's kernel."""
    vc = pc.value_counts(col)
    values = vc.field("values").to_pylist()
    counts = vc.field("counts").to_pylist()
    out = {v: int(c) for v, c in zip(values, counts, strict=True) if v is not None}
    return Counts(out, int(col.null_count))


def merge_counter(parts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for p in parts:
        total.update(p)
    return dict(total)


# --------------------------------------------------------------------------------------------- pass 1


@dataclass
class ScanPartial:
    rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    train_rows: int = 0
    numeric: dict[str, ColumnStats] = field(default_factory=dict)
    categorical: dict[str, Counts] = field(default_factory=dict)
    labels: Counts = field(default_factory=Counts)  # target values of every clean row (train and holdout)


def scan_block(batch: pa.Table, schema: Schema, seed: int, fraction: float) -> ScanPartial:
    v = validate_and_split(batch, schema, seed, fraction)
    train = v.clean.filter(pa.array(~v.holdout))
    out = ScanPartial(rows=batch.num_rows, train_rows=train.num_rows,
                      rejected=dict(Counter(v.rejects.column(REJECT_REASON).to_pylist())))
    for col in schema.features:
        if col.is_numeric:
            out.numeric[col.name] = numeric_partial(_floats(train.column(col.name)))
        else:
            out.categorical[col.name] = arrow_counts(train.column(col.name))
    out.labels = arrow_counts(v.clean.column(schema.target))
    return out


def merge_scans(parts: list[ScanPartial]) -> ScanPartial:
    out = ScanPartial(rows=sum(p.rows for p in parts), train_rows=sum(p.train_rows for p in parts),
                      rejected=merge_counter([p.rejected for p in parts]))
    names = {k for p in parts for k in p.numeric}
    out.numeric = {k: merge_column_stats([p.numeric[k] for p in parts if k in p.numeric]) for k in names}
    for p in parts:
        for k, c in p.categorical.items():
            out.categorical[k] = out.categorical.get(k, Counts()).merge(c)
        out.labels = out.labels.merge(p.labels)
    return out


# --------------------------------------------------------------------------------------------- pass 2


@dataclass
class ProfilePartial:
    train_rows: int = 0  # training rows kept by the cleaning plan
    cleaned: dict[str, Moments] = field(default_factory=dict)  # numeric, after fill and clip
    categories: dict[str, Counts] = field(default_factory=dict)  # categorical, after fill
    hist: dict[str, np.ndarray] = field(default_factory=dict)  # raw values in the reference bins
    raw_missing: dict[str, int] = field(default_factory=dict)
    raw_categorical: dict[str, Counts] = field(default_factory=dict)  # before fill, for the reference
    target: Any = None  # Counts (classification) or ColumnStats (regression) of kept training labels


def profile_block(batch: pa.Table, schema: Schema, plan: CleaningPlan, seed: int, fraction: float,
                  edges: dict[str, np.ndarray], classification: bool) -> ProfilePartial:
    v = validate_and_split(batch, schema, seed, fraction)
    train = v.clean.filter(pa.array(~v.holdout))
    res = apply_plan(train, plan)
    kept_raw = train.filter(pa.array(res.keep)) if not res.keep.all() else train
    kept = res.table.filter(pa.array(res.keep)) if not res.keep.all() else res.table
    out = ProfilePartial(train_rows=kept.num_rows)
    for col in schema.features:
        if col.is_numeric:
            out.cleaned[col.name] = Moments.of(_floats(kept.column(col.name)))
            raw = _floats(kept_raw.column(col.name))
            out.hist[col.name] = bin_counts(raw, edges[col.name])
            out.raw_missing[col.name] = int(np.isnan(raw).sum())
        else:
            out.categories[col.name] = arrow_counts(kept.column(col.name))
            out.raw_categorical[col.name] = arrow_counts(kept_raw.column(col.name))
    y = kept.column(schema.target)
    out.target = arrow_counts(y) if classification else numeric_partial(_floats(y))
    return out


def merge_profiles(parts: list[ProfilePartial]) -> ProfilePartial:
    out = ProfilePartial(train_rows=sum(p.train_rows for p in parts))
    for p in parts:
        for k, m in p.cleaned.items():
            out.cleaned[k] = out.cleaned.get(k, Moments()).merge(m)
        for k, h in p.hist.items():
            out.hist[k] = out.hist[k] + h if k in out.hist else h.copy()
        for k, n in p.raw_missing.items():
            out.raw_missing[k] = out.raw_missing.get(k, 0) + n
        for k, c in p.categories.items():
            out.categories[k] = out.categories.get(k, Counts()).merge(c)
        for k, c in p.raw_categorical.items():
            out.raw_categorical[k] = out.raw_categorical.get(k, Counts()).merge(c)
    targets = [p.target for p in parts if p.target is not None]
    if targets and isinstance(targets[0], Counts):
        total = Counts()
        for t in targets:
            total = total.merge(t)
        out.target = total
    elif targets:
        out.target = merge_column_stats(targets)
    return out


# --------------------------------------------------------------------------------------------- pass 3


@dataclass
class WritePartial:
    rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # validation and cleaning drops, by reason
    dropped_missing: int = 0
    dropped_outlier: int = 0
    missing_filled: dict[str, int] = field(default_factory=dict)
    outliers_handled: dict[str, int] = field(default_factory=dict)
    train_rows: int = 0
    holdout_rows: int = 0
    fingerprint: FingerprintPartial = field(default_factory=FingerprintPartial)
    sample: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (row hash, raw cleaned row)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())


@dataclass
class BlockOutput:
    partial: WritePartial
    train: pa.Table
    holdout: pa.Table
    holdout_raw: pa.Table
    rejects: pa.Table


def _features(features: FeaturePipeline, cleaned: pa.Table) -> dict[str, np.ndarray]:
    inputs: dict[str, Any] = {f.name: _floats(cleaned.column(f.name)) for f in features.numeric}
    inputs.update({c.name: cleaned.column(c.name) for c in features.categorical})
    return features.transform_columns(inputs)


def _split_table(cols: dict[str, np.ndarray], mask: np.ndarray, target: pa.ChunkedArray, h0: np.ndarray,
                 target_name: str) -> pa.Table:
    out: dict[str, Any] = {name: values[mask] for name, values in cols.items()}
    out[target_name] = target.filter(pa.array(mask))
    out[ROW_HASH] = pa.array(h0[mask], pa.uint64())
    return pa.table(out)


def transform_block(batch: pa.Table, schema: Schema, plan: CleaningPlan, features: FeaturePipeline,
                    seed: int, fraction: float) -> BlockOutput:
    v = validate_and_split(batch, schema, seed, fraction)
    res = apply_plan(v.clean, plan)
    part = WritePartial(rows=batch.num_rows, missing_filled=res.missing_filled,
                        outliers_handled=res.outliers_handled)
    reasons = Counter(v.rejects.column(REJECT_REASON).to_pylist()) if v.rejects.num_rows else Counter()
    rejects = [v.rejects] if v.rejects.num_rows else []
    keep = res.keep
    if keep.all():
        kept_raw, cleaned = v.clean, res.table
        h0, h1, hold = v.h0, v.h1, v.holdout
    else:
        # Rows a drop rule removed go to the rejects too, as the text they were read as.
        dropped = v.clean.filter(pa.array(~keep))
        why = dropped_reasons(res)
        reasons.update(why.to_pylist())
        part.dropped_missing = int(pc.sum(pc.starts_with(why, "dropped_missing")).as_py() or 0)
        part.dropped_outlier = int(pc.sum(pc.starts_with(why, "dropped_outlier")).as_py() or 0)
        text = pa.table({n: (dropped.column(n) if pa.types.is_string(dropped.column(n).type)
                             else pc.cast(dropped.column(n), pa.string())) for n in dropped.column_names})
        rejects.append(text.append_column(REJECT_REASON, why))
        keep_arr = pa.array(keep)
        kept_raw, cleaned = v.clean.filter(keep_arr), res.table.filter(keep_arr)
        h0, h1, hold = v.h0[keep], v.h1[keep], v.holdout[keep]
    part.rejected = dict(reasons)
    part.fingerprint = FingerprintPartial.of(h0, h1)
    part.train_rows = int((~hold).sum())
    part.holdout_rows = int(hold.sum())
    # Transform all kept rows once, then split the arrays (cheaper than filtering the table twice).
    cols = _features(features, cleaned)
    target = cleaned.column(schema.target)
    train = _split_table(cols, ~hold, target, h0, schema.target)
    holdout = _split_table(cols, hold, target, h0, schema.target)
    hold_idx = np.nonzero(hold)[0]
    holdout_raw = cleaned.take(pa.array(hold_idx)).append_column(ROW_HASH, pa.array(h0[hold_idx], pa.uint64()))
    if part.train_rows:
        # A few raw training rows for input examples: those with the smallest hashes, order-independent.
        train_idx = np.nonzero(~hold)[0]
        pick = train_idx[np.argsort(h0[train_idx], kind="stable")[:SAMPLE_ROWS]]
        rows = kept_raw.take(pa.array(pick)).to_pylist()
        part.sample = [(int(h0[i]), r) for i, r in zip(pick, rows, strict=True)]
    all_rejects = pa.concat_tables(rejects, promote_options="permissive") if rejects else v.rejects
    return BlockOutput(part, train, holdout, holdout_raw, all_rejects)


def merge_writes(parts: list[WritePartial]) -> WritePartial:
    out = WritePartial(
        rows=sum(p.rows for p in parts), rejected=merge_counter([p.rejected for p in parts]),
        dropped_missing=sum(p.dropped_missing for p in parts), dropped_outlier=sum(p.dropped_outlier for p in parts),
        missing_filled=merge_counter([p.missing_filled for p in parts]),
        outliers_handled=merge_counter([p.outliers_handled for p in parts]),
        train_rows=sum(p.train_rows for p in parts), holdout_rows=sum(p.holdout_rows for p in parts),
    )
    fp = FingerprintPartial()
    for p in parts:
        fp = fp.merge(p.fingerprint)
    out.fingerprint = fp
    out.sample = sorted((s for p in parts for s in p.sample), key=lambda t: t[0])[:SAMPLE_ROWS]
    return out

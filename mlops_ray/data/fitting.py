"""Fit the FeaturePipeline and the monitoring reference profile from merged statistics. Pure numpy.

The reference profile follows ``mlops_ray.monitor.profile`` (format ``mlops_ray.reference/1``):
numeric columns get right-closed quantile bins (first edge just below the minimum, last at the
maximum, so the outer bins are empty in the reference), categorical columns value counts; missing
values are counted apart. See docs/data.md for the full format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from mlops_ray.config import CategoricalTransform, FeaturesSpec, NumericTransform
from mlops_ray.data.clean import CleaningPlan
from mlops_ray.data.features import CategoricalFeature, FeaturePipeline, NumericFeature, scale_params
from mlops_ray.data.schema import Schema
from mlops_ray.data.stats import (
    ColumnStats,
    Counts,
    Moments,
    QuantileSummary,
    merge_column_stats,
    numeric_partial,
    quantiles,
)
from mlops_ray.exceptions import SchemaError

PROFILE_FORMAT = "mlops_ray.reference/1"
REFERENCE_BINS = 20
_PROFILE_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def check_feature_spec(schema: Schema, spec: FeaturesSpec) -> None:
    """Refuse ``data.features.columns`` entries that name no feature or give a column the wrong transform kind."""
    features = {c.name: c for c in schema.features}
    unknown = sorted(set(spec.columns) - set(features))
    if unknown:
        raise SchemaError(f"data.features.columns names {unknown}, which are not feature columns (features: "
                          f"{', '.join(features)}); fix the names")
    for name, transform in spec.columns.items():
        numeric = features[name].is_numeric
        allowed = get_args(NumericTransform) if numeric else get_args(CategoricalTransform)
        if transform not in allowed:
            kind = "numeric" if numeric else "categorical"
            raise SchemaError(f"data.features.columns.{name}: {transform!r} does not apply to {kind} column "
                              f"{name!r}; use one of {', '.join(allowed)}")


def fit_features(
    schema: Schema,
    plan: CleaningPlan,
    cleaned: dict[str, Moments],
    raw: dict[str, ColumnStats],
    categories: dict[str, Counts],
    spec: FeaturesSpec,
    task: Literal["classification", "regression"],
    classes: list[Any] | None,
) -> FeaturePipeline:
    """The fitted pipeline: fills and bounds from the plan, scales from the cleaned training values."""
    numeric: list[NumericFeature] = []
    rules = {r.name: r for r in plan.numeric}
    for col in schema.features:
        if not col.is_numeric:
            continue
        r = rules[col.name]
        transform = spec.columns.get(col.name, spec.numeric)
        if transform not in ("standard", "minmax", "robust", "none"):
            transform = spec.numeric
        m = cleaned[col.name]
        st = raw[col.name]
        center, scale = scale_params(transform, {
            "mean": m.mean, "std": m.std, "min": m.min, "max": m.max,
            "median": st.quantile(0.5), "q25": st.quantile(0.25), "q75": st.quantile(0.75),
        }) if m.n else (0.0, 1.0)
        clip = not r.drop_outliers  # dropped outliers were removed in training; served rows are not dropped
        numeric.append(NumericFeature(
            name=col.name, fill=r.fill,
            clip_low=r.low if clip else None, clip_high=r.high if clip else None,
            transform=transform, center=center, scale=scale, raw_type=col.type,
        ))
    categorical: list[CategoricalFeature] = []
    crules = {r.name: r for r in plan.categorical}
    for col in schema.features:
        if col.is_numeric:
            continue
        transform = spec.columns.get(col.name, spec.categorical)
        if transform not in ("onehot", "ordinal"):
            transform = spec.categorical
        ranked = [str(v) for v, _ in categories[col.name].ranked()]
        kept = ranked[: spec.max_categories]
        categorical.append(CategoricalFeature(
            name=col.name, fill=crules[col.name].fill, categories=kept, transform=transform,
            has_other=len(ranked) > len(kept),
        ))
    return FeaturePipeline(numeric=numeric, categorical=categorical, target=schema.target, task=task,
                           classes=classes, input_order=[c.name for c in schema.features])


# --------------------------------------------------------------------------------- reference profile


def reference_edges(st: ColumnStats, bins: int = REFERENCE_BINS) -> np.ndarray:
    """Bin edges of one numeric column: just below the minimum, inner quantiles, the maximum."""
    if st.moments.n == 0:
        return np.empty(0)
    lo, hi = st.moments.min, st.moments.max
    inner = quantiles(st.summary, np.linspace(0, 1, bins + 1)[1:-1], method="lower") if bins > 1 else []
    return np.unique(np.concatenate([[np.nextafter(lo, -np.inf)], inner, [hi]]))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of finite values in the right-closed bins of ``edges`` (len(edges) + 1 bins)."""
    finite = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(edges, finite, side="left"), minlength=edges.size + 1).astype(np.int64)


def summary_bin_counts(summary: QuantileSummary, edges: np.ndarray) -> np.ndarray:
    """Bin counts from a quantile summary: exact for an exact summary, interpolated otherwise."""
    if summary.n == 0:
        return np.zeros(edges.size + 1, dtype=np.int64)
    if summary.exact:
        below = np.searchsorted(summary.points, edges, side="right")
    else:
        below = np.rint(summary.n * np.interp(edges, summary.points, summary.cdf_levels(), left=0.0, right=1.0))
    return np.diff(np.concatenate([[0], below, [summary.n]])).astype(np.int64)


def numeric_entry(st: ColumnStats, edges: np.ndarray, counts: np.ndarray, missing: int) -> dict[str, Any]:
    m = st.moments
    qs = quantiles(st.summary, _PROFILE_QUANTILES) if m.n else [None] * len(_PROFILE_QUANTILES)
    return {
        "kind": "numeric", "edges": [float(e) for e in edges], "counts": [int(c) for c in counts],
        "missing": int(missing), "n": int(m.n), "mean": m.mean if m.n else None, "std": m.std if m.n else None,
        "min": m.min if m.n else None, "max": m.max if m.n else None,
        "quantiles": {str(q): (None if v is None else float(v)) for q, v in zip(_PROFILE_QUANTILES, qs, strict=True)},
    }


def categorical_entry(c: Counts) -> dict[str, Any]:
    return {"kind": "categorical", "counts": {str(k): int(v) for k, v in c.ranked()}, "missing": int(c.missing)}


def build_reference(
    n_rows: int,
    numeric: dict[str, tuple[ColumnStats, np.ndarray, np.ndarray, int]],
    categorical: dict[str, Counts],
    order: Sequence[str],
    target: tuple[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The profile dict; ``numeric`` maps a column to (stats, edges, counts, missing)."""
    columns: dict[str, Any] = {}
    for name in order:
        if name in numeric:
            columns[name] = numeric_entry(*numeric[name])
        elif name in categorical:
            columns[name] = categorical_entry(categorical[name])
    out: dict[str, Any] = {"format": PROFILE_FORMAT, "n_rows": int(n_rows), "columns": columns}
    if target is not None:
        out["target"] = {"name": target[0], **target[1]}
    return out


def compute_reference_profile(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    target: str | None = None,
    target_kind: Literal["numeric", "categorical"] = "categorical",
    bins: int = REFERENCE_BINS,
) -> dict[str, Any]:
    """The reference profile of an in-memory frame (the same numbers the distributed path produces)."""
    num: dict[str, tuple[ColumnStats, np.ndarray, np.ndarray, int]] = {}
    for name in numeric:
        x = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        st = merge_column_stats([numeric_partial(x)])
        edges = reference_edges(st, bins)
        num[name] = (st, edges, bin_counts(x, edges), int((~np.isfinite(x)).sum()))
    cat = {name: series_counts(frame[name]) for name in categorical}
    tgt = None
    if target is not None:
        if target_kind == "categorical":
            tgt = (target, categorical_entry(series_counts(frame[target])))
        else:
            y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            st = merge_column_stats([numeric_partial(y)])
            edges = reference_edges(st, bins)
            tgt = (target, numeric_entry(st, edges, bin_counts(y, edges), int((~np.isfinite(y)).sum())))
    return build_reference(len(frame), num, cat, [*numeric, *categorical], tgt)


def series_counts(s: pd.Series) -> Counts:
    vc = s.dropna().astype(str).value_counts()
    return Counts({str(k): int(v) for k, v in vc.items()}, int(s.isna().sum()))

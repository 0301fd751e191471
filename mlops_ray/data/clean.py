"""Cleaning decided from training statistics: missing values and outliers, per column. Pure numpy/pyarrow.

``make_plan`` turns the config and the merged pass-1 statistics into fill values and bounds;
``apply_plan`` applies them to one batch and says which rows a ``drop`` rule removes (and why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_ray.config import CleanSpec, MissingSpec, OutlierSpec
from mlops_ray.data.schema import Schema
from mlops_ray.data.stats import ColumnStats, Counts
from mlops_ray.exceptions import ConfigError, DataError


@dataclass(frozen=True)
class NumericRule:
    name: str
    fill: float | None  # None: missing values are not filled (strategy drop or none)
    drop_missing: bool
    low: float | None = None
    high: float | None = None
    drop_outliers: bool = False  # True: rows outside [low, high] are dropped; False: values are clipped


@dataclass(frozen=True)
class CategoricalRule:
    name: str
    fill: str | None
    drop_missing: bool


@dataclass
class CleaningPlan:
    numeric: list[NumericRule]
    categorical: list[CategoricalRule]

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": [r.__dict__ for r in self.numeric], "categorical": [r.__dict__ for r in self.categorical]}


def dropped_reasons(result: CleanResult) -> pa.Array:
    """The reason text of every dropped row, in row order."""
    codes = result.drop_codes[~result.keep]
    return pc.take(pa.array(result.drop_labels, pa.string()), pa.array(codes))


@dataclass
class CleanResult:
    """One cleaned batch: the kept rows, why the others were dropped, and what was changed."""

    table: pa.Table
    keep: np.ndarray
    drop_codes: np.ndarray  # 0: kept; i > 0: dropped for drop_labels[i]
    drop_labels: list[str]
    missing_filled: dict[str, int] = field(default_factory=dict)
    outliers_handled: dict[str, int] = field(default_factory=dict)


def _missing_spec(spec: CleanSpec, name: str, numeric: bool) -> MissingSpec:
    return spec.missing.get(name) or (spec.numeric_missing if numeric else spec.categorical_missing)


def check_overrides(spec: CleanSpec, schema: Schema) -> None:
    """Per-column settings must name feature columns (a typo would otherwise be silently ignored)."""
    names = {c.name for c in schema.features}
    numeric = {c.name for c in schema.features if c.is_numeric}
    for key in spec.missing:
        if key not in names:
            raise ConfigError(f"data.clean.missing names column {key!r}, which is not a feature; "
                              f"features: {sorted(names)}")
    for key in spec.column_outliers:
        if key not in numeric:
            raise ConfigError(f"data.clean.column_outliers names {key!r}, which is not a numeric feature; "
                              f"numeric features: {sorted(numeric)}")
    for key, m in spec.missing.items():
        if m.strategy in ("median", "mean") and key not in numeric:
            raise ConfigError(f"data.clean.missing.{key}: strategy {m.strategy!r} needs a numeric column; "
                              "use most_frequent, constant, drop or none")


def _numeric_fill(m: MissingSpec, st: ColumnStats, name: str) -> float | None:
    if m.strategy in ("drop", "none"):
        return None
    if st.moments.n == 0:
        raise DataError(f"column {name!r} has no non-missing training values, so strategy {m.strategy!r} "
                        "has nothing to compute from; use strategy constant or drop the column")
    if m.strategy == "median":
        return st.quantile(0.5)
    if m.strategy == "mean":
        return st.moments.mean
    if m.strategy == "most_frequent":
        values, counts = np.unique(st.summary.points, return_counts=True)  # exact up to EXACT_LIMIT values
        return float(values[np.argmax(counts)])
    try:
        return float(m.value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data.clean: constant {m.value!r} for numeric column {name!r} is not a number") from e


def _bounds(o: OutlierSpec, st: ColumnStats) -> tuple[float | None, float | None]:
    if o.method == "none" or st.moments.n == 0:
        return None, None
    if o.method in ("clip_quantile", "drop_quantile"):
        return st.quantile(o.lower), st.quantile(o.upper)
    q1, q3 = st.quantile(0.25), st.quantile(0.75)
    iqr = q3 - q1
    return q1 - o.iqr_factor * iqr, q3 + o.iqr_factor * iqr


def make_plan(
    schema: Schema, spec: CleanSpec, numeric: dict[str, ColumnStats], categorical: dict[str, Counts]
) -> CleaningPlan:
    """Fill values and bounds for every feature column, from training statistics."""
    check_overrides(spec, schema)
    empty = [c.name for c in schema.features if (numeric[c.name].moments.n == 0 if c.is_numeric
                                                  else categorical[c.name].most_frequent() is None)]
    if empty:  # nothing to learn from, and every fill strategy would be made up (or drop every row)
        where = "data.schema.columns" if not schema.inferred else "the input (or declare data.schema.columns)"
        raise DataError(f"feature column(s) {empty} have no value in any training row (absent from the files, or "
                        f"all missing); remove them from {where}")
    nrules: list[NumericRule] = []
    crules: list[CategoricalRule] = []
    for col in schema.features:
        m = _missing_spec(spec, col.name, col.is_numeric)
        if col.is_numeric:
            st = numeric[col.name]
            o = spec.column_outliers.get(col.name) or spec.outliers
            low, high = _bounds(o, st)
            nrules.append(NumericRule(col.name, _numeric_fill(m, st, col.name), m.strategy in ("drop", "none"),
                                      low, high, o.method.startswith("drop_")))
        else:
            fill: str | None = None
            if m.strategy == "most_frequent":
                top = categorical[col.name].most_frequent()
                fill = None if top is None else str(top)
            elif m.strategy == "constant":
                fill = str(m.value)
            elif m.strategy in ("median", "mean"):
                raise ConfigError(f"column {col.name!r} is categorical: missing strategy {m.strategy!r} needs "
                                  "numbers; use most_frequent, constant, drop or none")
            crules.append(CategoricalRule(col.name, fill, m.strategy in ("drop", "none") or fill is None))
    return CleaningPlan(nrules, crules)


def apply_plan(table: pa.Table, plan: CleaningPlan) -> CleanResult:
    """Fill, clip or drop per the plan; ``table`` holds validated, typed rows (float64 / string)."""
    n = table.num_rows
    keep = np.ones(n, dtype=bool)
    codes = np.zeros(n, dtype=np.int32)
    labels: list[str] = [""]
    filled: dict[str, int] = {}
    handled: dict[str, int] = {}
    cols: dict[str, pa.Array] = {name: table.column(name) for name in table.column_names}

    def drop(mask: np.ndarray, label: str) -> None:
        hit = mask & keep
        if hit.any():
            labels.append(label)
            codes[hit] = len(labels) - 1
            keep[hit] = False

    for r in plan.numeric:
        col = cols[r.name]
        x = np.asarray((pc.fill_null(col, np.nan) if col.null_count else col).to_numpy(zero_copy_only=False),
                       dtype=np.float64)
        missing = np.isnan(x)
        n_missing = int(missing.sum())
        if n_missing:
            if r.drop_missing:
                drop(missing, f"dropped_missing:{r.name}")
            else:
                x = np.where(missing, r.fill, x)
                filled[r.name] = n_missing
        if r.low is not None or r.high is not None:
            low = -np.inf if r.low is None else r.low
            high = np.inf if r.high is None else r.high
            out = (x < low) | (x > high)
            n_out = int(out.sum())
            if n_out:
                if r.drop_outliers:
                    drop(out, f"dropped_outlier:{r.name}")
                else:
                    x = np.clip(x, low, high)
                handled[r.name] = n_out
        cols[r.name] = pa.array(x, pa.float64())
    for c in plan.categorical:
        arr = cols[c.name]
        if arr.null_count:
            missing = np.asarray(pc.is_null(arr))
            if c.drop_missing:
                drop(missing, f"dropped_missing:{c.name}")
            else:
                cols[c.name] = pc.fill_null(arr, c.fill)
                filled[c.name] = int(missing.sum())
    return CleanResult(pa.table(cols), keep, codes, labels, filled, handled)

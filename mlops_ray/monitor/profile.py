"""The reference profile (training-time statistics per feature) and live counts in the same bins.

A profile is plain JSON::

    {"format": "mlops_ray.reference/1", "n_rows": 455,
     "columns": {
        "age":   {"kind": "numeric", "edges": [17.99, 25.0, ...], "counts": [0, 46, ..., 0], "missing": 0},
        "color": {"kind": "categorical", "counts": {"red": 300, "blue": 155}, "missing": 2}},
     "prediction": {...one column entry, optional...}}

Numeric bins are right-closed: bin 0 is ``x <= edges[0]``, bin i is ``edges[i-1] < x <= edges[i]``, the last
is ``x > edges[-1]``, so ``len(counts) == len(edges) + 1``. The edges are the reference's quantiles, plus
a first edge just below its minimum and a last edge at its maximum: the two outer bins are empty in the
reference and catch live values outside the training range. Live counts are made with exactly these
bins (``count_frame``), merge by addition (``merge_counts``), and that is what Ray Data blocks return.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops_ray.exceptions import MonitorError

PROFILE_FORMAT = "mlops_ray.reference/1"
DEFAULT_BINS = 20
MISSING = "__missing__"


@dataclass
class ColumnProfile:
    """One column of the reference: bin edges and counts (numeric) or category counts (categorical)."""

    name: str
    kind: Literal["numeric", "categorical"]
    counts: np.ndarray  # numeric: len(edges) + 1 bins; categorical: one per entry of ``categories``
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    categories: list[str] = field(default_factory=list)
    missing: int = 0

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "numeric":
            return {"kind": "numeric", "edges": [float(e) for e in self.edges],
                    "counts": [int(c) for c in self.counts], "missing": int(self.missing)}
        return {"kind": "categorical", "counts": {c: int(v) for c, v in zip(self.categories, self.counts, strict=True)},
                "missing": int(self.missing)}

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> ColumnProfile:
        kind = d.get("kind")
        try:
            if kind == "numeric":
                edges = np.asarray(d["edges"], dtype=np.float64)
                counts = np.asarray(d["counts"], dtype=np.float64)
                if counts.size != edges.size + 1 or np.any(np.diff(edges) <= 0):
                    raise ValueError(f"{edges.size} increasing edges need {edges.size + 1} counts, got {counts.size}")
                return cls(name, "numeric", counts, edges=edges, missing=int(d.get("missing", 0)))
            if kind == "categorical":
                cats = {str(k): float(v) for k, v in dict(d["counts"]).items()}
                return cls(name, "categorical", np.asarray(list(cats.values()), dtype=np.float64),
                           categories=list(cats), missing=int(d.get("missing", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise MonitorError(f"reference profile column {name!r} is malformed: {e}") from e
        raise MonitorError(f"reference profile column {name!r}: kind {kind!r} is not 'numeric' or 'categorical'")


@dataclass
class ReferenceProfile:
    """Per-column reference statistics of the training data (and, optionally, of the model's predictions)."""

    columns: dict[str, ColumnProfile]
    n_rows: int
    prediction: ColumnProfile | None = None
    target: ColumnProfile | None = None  # the training labels (the data stage's ``target`` entry), if saved

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": PROFILE_FORMAT, "n_rows": int(self.n_rows),
                               "columns": {k: c.to_dict() for k, c in self.columns.items()}}
        if self.prediction is not None:
            out["prediction"] = self.prediction.to_dict()
        if self.target is not None:
            out["target"] = {"name": self.target.name, **self.target.to_dict()}
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def numeric_profile(
    name: str, values: Sequence[float] | np.ndarray | pd.Series, bins: int = DEFAULT_BINS
) -> ColumnProfile:
    """Quantile bins of one numeric column (missing values counted apart)."""
    x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = x[np.isfinite(x)]
    missing = int(x.size - finite.size)
    if finite.size == 0:
        return ColumnProfile(name, "numeric", np.zeros(1), edges=np.empty(0), missing=missing)
    lo, hi = float(finite.min()), float(finite.max())
    inner = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1], method="lower") if bins > 1 else []
    # "lower" keeps edges at observed values, so ties fall on one side of an edge, the same for live data.
    edges = np.unique(np.concatenate([[np.nextafter(lo, -np.inf)], inner, [hi]]))
    return ColumnProfile(name, "numeric", bin_counts(finite, edges), edges=edges, missing=missing)


def categorical_profile(name: str, values: Sequence[Any] | pd.Series) -> ColumnProfile:
    """Category frequencies of one column (values compared as strings; missing counted apart)."""
    s = pd.Series(values)
    missing = int(s.isna().sum())
    vc = s.dropna().astype(str).value_counts(sort=True)
    return ColumnProfile(name, "categorical", vc.to_numpy(dtype=np.float64), categories=[str(c) for c in vc.index],
                         missing=missing)


def is_numeric_series(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def profile_from_frame(
    df: pd.DataFrame,
    columns: Iterable[str] | None = None,
    *,
    categorical: Iterable[str] = (),
    bins: int = DEFAULT_BINS,
    prediction: Sequence[Any] | np.ndarray | None = None,
    prediction_kind: Literal["numeric", "categorical"] | None = None,
) -> ReferenceProfile:
    """Profile ``columns`` of ``df`` (numeric dtype -> quantile bins, else categories); optional predictions."""
    cols = list(df.columns if columns is None else columns)
    missing_cols = [c for c in cols if c not in df.columns]
    if missing_cols:
        raise MonitorError(f"profile_from_frame: columns {missing_cols} not in the frame (has {list(df.columns)})")
    forced = set(categorical)
    out: dict[str, ColumnProfile] = {}
    for c in cols:
        if c not in forced and is_numeric_series(df[c]):
            out[c] = numeric_profile(c, df[c], bins)
        else:
            out[c] = categorical_profile(c, df[c])
    pred = None
    if prediction is not None:
        ps = pd.Series(np.asarray(prediction))
        kind = prediction_kind or ("numeric" if is_numeric_series(ps) and ps.nunique() > 20 else "categorical")
        pred = numeric_profile("prediction", ps, bins) if kind == "numeric" else categorical_profile("prediction", ps)
    return ReferenceProfile(out, len(df), pred)


def load_profile(source: ReferenceProfile | Mapping[str, Any] | str | Path) -> ReferenceProfile:
    """A profile from a dict, a JSON file, or an already loaded profile."""
    if isinstance(source, ReferenceProfile):
        return source
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            source = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise MonitorError(f"cannot read the reference profile {path}: {e}") from e
    if not isinstance(source, Mapping) or not isinstance(source.get("columns"), Mapping):
        keys = list(source)[:8] if isinstance(source, Mapping) else "-"
        raise MonitorError(
            "a reference profile must be a mapping with a 'columns' mapping (format "
            f"{PROFILE_FORMAT!r}); got {type(source).__name__} with keys {keys}"
        )
    fmt = source.get("format", PROFILE_FORMAT)
    if fmt != PROFILE_FORMAT:
        raise MonitorError(f"reference profile format {fmt!r} is not supported; expected {PROFILE_FORMAT!r}")
    cols = {str(k): ColumnProfile.from_dict(str(k), v) for k, v in source["columns"].items()}
    pred = ColumnProfile.from_dict("prediction", source["prediction"]) if source.get("prediction") else None
    tgt = source.get("target")
    target = ColumnProfile.from_dict(str(tgt.get("name", "target")), tgt) if isinstance(tgt, Mapping) else None
    return ReferenceProfile(cols, int(source.get("n_rows", 0)), pred, target)


# ------------------------------------------------------------------------------------- live counts


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of finite ``values`` in the right-closed bins defined by ``edges`` (len(edges) + 1 bins)."""
    idx = np.searchsorted(edges, values, side="left")
    return np.bincount(idx, minlength=edges.size + 1).astype(np.float64)


def count_column(col: ColumnProfile, values: pd.Series) -> tuple[np.ndarray, dict[str, float], int]:
    """(bin counts, counts of categories the reference never saw, missing) for one live column."""
    if col.kind == "numeric":
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(x)
        return bin_counts(x[finite], col.edges), {}, int((~finite).sum())
    missing = int(values.isna().sum())
    vc = values.dropna().astype(str).value_counts()
    known = np.array([float(vc.get(c, 0)) for c in col.categories])
    new = {str(k): float(v) for k, v in vc.items() if k not in set(col.categories)}
    return known, new, missing


@dataclass
class LiveCounts:
    """Live counts per column in the reference's bins; merge partial counts from many blocks with ``+``."""

    counts: dict[str, np.ndarray]
    new_categories: dict[str, dict[str, float]]
    missing: dict[str, int]
    n_rows: int

    def __add__(self, other: LiveCounts) -> LiveCounts:
        counts = {k: self.counts.get(k, 0) + other.counts.get(k, 0) for k in self.counts | other.counts}
        new: dict[str, dict[str, float]] = {k: dict(v) for k, v in self.new_categories.items()}
        for k, v in other.new_categories.items():
            for cat, n in v.items():
                new.setdefault(k, {})[cat] = new.get(k, {}).get(cat, 0.0) + n
        missing = {k: self.missing.get(k, 0) + other.missing.get(k, 0) for k in self.missing | other.missing}
        return LiveCounts(counts, new, missing, self.n_rows + other.n_rows)


def count_frame(profile: ReferenceProfile, df: pd.DataFrame, prediction: pd.Series | None = None) -> LiveCounts:
    """Live counts of every profiled column of ``df`` (and of ``prediction`` under the key 'prediction')."""
    absent = [c for c in profile.columns if c not in df.columns]
    if absent:
        raise MonitorError(f"live data lacks profiled columns {absent}; it has {list(df.columns)}")
    counts: dict[str, np.ndarray] = {}
    new: dict[str, dict[str, float]] = {}
    missing: dict[str, int] = {}
    items = [(name, col, df[name]) for name, col in profile.columns.items()]
    if profile.prediction is not None and prediction is not None:
        items.append(("prediction", profile.prediction, prediction))
    for name, col, values in items:
        counts[name], found, missing[name] = count_column(col, values.reset_index(drop=True))
        if found:
            new[name] = found
    return LiveCounts(counts, new, missing, len(df))


def empty_counts(profile: ReferenceProfile) -> LiveCounts:
    cols = dict(profile.columns)
    if profile.prediction is not None:
        cols["prediction"] = profile.prediction
    return LiveCounts({k: np.zeros_like(c.counts) for k, c in cols.items()}, {}, dict.fromkeys(cols, 0), 0)


def merge_counts(parts: Iterable[LiveCounts], profile: ReferenceProfile) -> LiveCounts:
    total = empty_counts(profile)
    for p in parts:
        total = total + p
    return total

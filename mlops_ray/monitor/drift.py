"""Per-feature drift against the reference profile, and one family-level decision: pure functions on counts.

Numeric features get a binned two-sample KS test and PSI, categorical ones a chi-square test and PSI.
The p-values of all features are adjusted together (``drift.correction``) so the whole family of tests
raises a false alarm with probability at most ``drift.alpha``. A feature *drifted* when its adjusted
p-value is at most alpha; its drift is *material* when, in addition, its PSI reaches ``psi_threshold``:
with large logs a test finds shifts too small to matter, and the retrain rule counts only material ones.
The predictions get the same treatment as a separate check at level alpha.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlops_ray.config import DriftSpec
from mlops_ray.monitor.profile import ColumnProfile, LiveCounts, ReferenceProfile
from mlops_ray.monitor.stats import adjust_pvalues, chi2_homogeneity, ks_binned, psi


@dataclass
class FeatureDrift:
    """The drift result of one column (a feature, or the predictions)."""

    name: str
    kind: str
    test: str
    statistic: float
    p_value: float
    psi: float
    n_ref: int
    n_live: int
    p_adjusted: float = float("nan")
    drifted: bool = False  # significant after the correction
    material: bool = False  # drifted and PSI >= psi_threshold
    missing_rate_ref: float = 0.0
    missing_rate_live: float = 0.0
    new_categories: dict[str, float] = field(default_factory=dict)
    # For plots: the bins (labels) with reference and live proportions.
    labels: list[str] = field(default_factory=list)
    ref_share: list[float] = field(default_factory=list)
    live_share: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftResult:
    """Every feature's result and the family-level decision."""

    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    alpha: float
    correction: str
    psi_threshold: float
    n_live: int
    min_rows: int

    @property
    def enough_data(self) -> bool:
        return self.n_live >= self.min_rows

    @property
    def drift_detected(self) -> bool:
        """Family-level decision: at least one feature rejected after the correction."""
        return self.enough_data and any(f.drifted for f in self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def material_features(self) -> list[str]:
        return [f.name for f in self.features if f.material]

    @property
    def material_fraction(self) -> float:
        return len(self.material_features) / len(self.features) if self.features else 0.0

    @property
    def prediction_drift(self) -> bool:
        return self.enough_data and self.prediction is not None and self.prediction.material

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha, "correction": self.correction, "psi_threshold": self.psi_threshold,
            "n_live": self.n_live, "min_rows": self.min_rows, "enough_data": self.enough_data,
            "drift_detected": self.drift_detected, "drifted_features": self.drifted_features,
            "material_features": self.material_features, "material_fraction": self.material_fraction,
            "prediction_drift": self.prediction_drift,
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction else None,
        }


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def _bin_labels(col: ColumnProfile) -> list[str]:
    e = col.edges
    if e.size == 0:
        return ["all"]
    # The profile's first edge is the float just below the reference's minimum: "x <= e0" is "x < min",
    # written with the minimum (not -4.941e-324 for a minimum of 0), and the next bin starts at it.
    lo = float(np.nextafter(e[0], np.inf)) + 0.0  # + 0.0: -0.0 reads as 0
    inner = [f"({a:.4g}, {b:.4g}]" for a, b in itertools.pairwise(e)]
    if inner:
        inner[0] = f"[{lo:.4g}, {e[1]:.4g}]"
    return [f"<{lo:.4g}", *inner, f">{e[-1]:.4g}"]


def column_drift(col: ColumnProfile, live: np.ndarray, new: dict[str, float] | None = None,
                 live_missing: int = 0) -> FeatureDrift:
    """Test one column's live counts against its reference counts (categories the reference lacks included)."""
    ref = np.asarray(col.counts, dtype=np.float64)
    live = np.asarray(live, dtype=np.float64)
    new = dict(new or {})
    if col.kind == "numeric":
        result = ks_binned(ref, live)
        labels = _bin_labels(col)
    else:
        # Categories seen only live count against a reference count of zero.
        ref = np.concatenate([ref, np.zeros(len(new))])
        live = np.concatenate([live, np.asarray(list(new.values()), dtype=np.float64)])
        result = chi2_homogeneity(ref, live)
        labels = [*col.categories, *new]
    n_ref, n_live = float(ref.sum()), float(live.sum())
    return FeatureDrift(
        name=col.name, kind=col.kind, test=result.test, statistic=result.statistic, p_value=result.p_value,
        psi=psi(ref, live), n_ref=int(n_ref), n_live=int(n_live),
        missing_rate_ref=col.missing / (n_ref + col.missing) if n_ref + col.missing else 0.0,
        missing_rate_live=live_missing / (n_live + live_missing) if n_live + live_missing else 0.0,
        new_categories=new, labels=labels, ref_share=_shares(ref), live_share=_shares(live),
    )


def compute_drift(profile: ReferenceProfile, live: LiveCounts, spec: DriftSpec) -> DriftResult:
    """Per-feature tests, the multiple-testing correction, and the prediction check."""
    feats = [
        column_drift(col, live.counts[name], live.new_categories.get(name), live.missing.get(name, 0))
        for name, col in profile.columns.items()
    ]
    if feats:
        adjusted = adjust_pvalues([f.p_value for f in feats], spec.correction)
        for f, p in zip(feats, adjusted, strict=True):
            f.p_adjusted = float(p)
            f.drifted = bool(p <= spec.alpha)
            f.material = f.drifted and f.psi >= spec.psi_threshold
    pred = None
    if profile.prediction is not None and "prediction" in live.counts:
        pred = column_drift(profile.prediction, live.counts["prediction"], live.new_categories.get("prediction"),
                            live.missing.get("prediction", 0))
        pred.p_adjusted = pred.p_value
        pred.drifted = pred.p_value <= spec.alpha
        pred.material = pred.drifted and pred.psi >= spec.psi_threshold
    return DriftResult(feats, pred, spec.alpha, spec.correction, spec.psi_threshold, live.n_rows, spec.min_rows)

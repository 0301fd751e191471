"""MonitorReport: what one monitor run found and decided (plain data, printable, JSON-able)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_ray.monitor.decision import Decision, Performance
from mlops_ray.monitor.drift import DriftResult


@dataclass
class MonitorReport:
    """Drift per feature, live performance, the retrain decision and where the report files are."""

    model_name: str
    version: str
    generated_at: str
    n_rows: int
    n_files: int
    n_feedback: int  # labels received for this model (all versions)
    n_labelled: int  # logged rows of this version joined to a label
    time_range: tuple[Any, Any]
    drift: DriftResult
    performance: Performance
    decision: Decision
    metric_over_time: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report_dir: str | None = None
    html_path: str | None = None
    mlflow_run_id: str | None = None

    @property
    def retrain(self) -> bool:
        return self.decision.retrain

    def summary_dict(self) -> dict[str, Any]:
        live = self.performance.live
        return {
            "model": self.model_name, "version": self.version, "generated_at": self.generated_at,
            "rows": self.n_rows, "files": self.n_files, "labelled_rows": self.n_labelled,
            "feedback_labels": self.n_feedback, "time_range": [str(t) for t in self.time_range],
            "drift_detected": self.drift.drift_detected, "drifted_features": self.drift.drifted_features,
            "material_features": self.drift.material_features, "prediction_drift": self.drift.prediction_drift,
            "metric": self.performance.metric, "live_metric": live.estimate if live else None,
            "live_ci": [live.low, live.high] if live else None, "baseline": self.performance.baseline,
            "performance": self.performance.status, "retrain": self.decision.retrain,
            "reasons": self.decision.reasons, "notes": [*self.decision.notes, *self.notes],
            "report": self.html_path, "mlflow_run_id": self.mlflow_run_id,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary_dict(), "drift": self.drift.to_dict(), "performance_detail": self.performance.to_dict(),
                "metric_over_time": self.metric_over_time}

    def summary(self) -> str:
        """A few lines for the terminal."""
        d, p = self.drift, self.performance
        lines = [f"monitor {self.model_name} v{self.version}: {self.n_rows} logged rows, "
                 f"{self.n_labelled} with labels ({self.time_range[0]} .. {self.time_range[1]})"]
        if d.enough_data:
            lines.append(f"  drift ({d.correction}, alpha {d.alpha}): "
                         + (f"{len(d.drifted_features)}/{len(d.features)} features drifted "
                            f"[{', '.join(d.drifted_features)}], material: [{', '.join(d.material_features)}]"
                            if d.drift_detected else f"none in {len(d.features)} features"))
            if d.prediction is not None:
                mark = " DRIFT" if d.prediction_drift else (
                    f" drifted, not material (PSI < {d.psi_threshold})" if d.prediction.drifted else "")
                lines.append(f"  predictions: PSI {d.prediction.psi:.3f}, p={d.prediction.p_value:.3g}{mark}")
        else:
            lines.append(f"  drift: not judged ({d.n_live} rows < min_rows {d.min_rows})")
        if p.live is not None and p.live.n:
            base = f" vs holdout {p.baseline:.4f}" if p.baseline is not None else ""
            lines.append(f"  live {p.metric}: {p.live.estimate:.4f} [{p.live.low:.4f}, {p.live.high:.4f}] "
                         f"n={p.live.n}{base} -> {p.status}")
        else:
            lines.append(f"  live {p.metric}: unknown ({p.note})")
        lines.append(f"  decision: {'RETRAIN' if self.decision.retrain else 'no action'}")
        lines += [f"    - {r}" for r in self.decision.reasons]
        lines += [f"    note: {n}" for n in [*self.decision.notes, *self.notes]]
        if self.html_path:
            lines.append(f"  report: {self.html_path}")
        return "\n".join(lines)

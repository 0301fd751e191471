"""The monitoring stage: prediction log, feedback labels, drift, live accuracy, reports, retraining.

- ``PredictionLogger(directory, sample_rate, flush_rows, flush_interval_s, model_name, version)``: the
  buffered Parquet log a Serve replica writes after each batch (``.log(...)``, ``.close()``).
- ``record_feedback(directory, request_ids, labels, model_name=...) -> FeedbackResult``.
- ``run_monitor(cfg, runtime, name, version=None) -> MonitorReport``: drift per feature (KS/chi-square
  + PSI, multiple-testing corrected), prediction drift, live accuracy with its interval, the retrain
  decision; HTML/PNG report logged to MLflow. Computed with Ray Data over the logs.
- ``retrain(cfg, runtime, ...) -> RetrainResult``: training data + labelled logged rows, through the
  same pipeline (data, tune, gate, canary).
- Pure pieces, usable alone: ``profile_from_frame``, ``compute_drift``, ``decide_retrain`` and the tests
  in ``mlops_ray.monitor.stats``.

Heavy modules load on first use of a name, not at import.
"""

from __future__ import annotations

from mlops_ray._lazy import lazy_exports

_EXPORTS = {
    "PredictionLogger": "mlops_ray.monitor.logger",
    "record_feedback": "mlops_ray.monitor.feedback",
    "read_feedback": "mlops_ray.monitor.feedback",
    "FeedbackResult": "mlops_ray.monitor.feedback",
    "ReferenceProfile": "mlops_ray.monitor.profile",
    "profile_from_frame": "mlops_ray.monitor.profile",
    "load_profile": "mlops_ray.monitor.profile",
    "compute_drift": "mlops_ray.monitor.drift",
    "DriftResult": "mlops_ray.monitor.drift",
    "FeatureDrift": "mlops_ray.monitor.drift",
    "decide_retrain": "mlops_ray.monitor.decision",
    "Decision": "mlops_ray.monitor.decision",
    "Performance": "mlops_ray.monitor.decision",
    "MonitorReport": "mlops_ray.monitor.result",
    "run_monitor": "mlops_ray.monitor.run",
    "predictions_dir": "mlops_ray.monitor.run",
    "log_reference": "mlops_ray.monitor.run",
    "retrain": "mlops_ray.monitor.retrain",
    "RetrainResult": "mlops_ray.monitor.retrain",
    "build_retrain_data": "mlops_ray.monitor.retrain",
    "attach_reference": "mlops_ray.monitor.retrain",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

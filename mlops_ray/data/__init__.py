"""The data stage: files or a bundled set -> validated, cleaned, split, featurised data on Ray Data.

Public API (imported lazily, so that ``import mlops_ray.data`` does not import Ray):

* ``prepare(cfg, runtime, *, materialize=True) -> PreparedData``: the whole stage (Ray connected by the caller).
* ``check_input(cfg)``: the input files exist (call before starting Ray: a wrong path fails at once).
* ``format_report(report) -> str``: the summary `mlops-ray data` prints.
* ``load_bundled(name) -> pandas.DataFrame``: a scikit-learn bundled set, label in column ``target``.
* ``compute_reference_profile(frame, numeric, categorical, *, target=None, ...) -> dict``: the monitoring
  reference profile (format ``mlops_ray.reference/1``) of an in-memory frame.
* ``generate_table(path, rows, *, seed, fmt, files) -> GenerateSummary``: the synthetic table generator.
* ``FeaturePipeline``, ``PreparedData``, ``DataReport``: the stage's handoff types.
"""

from __future__ import annotations

from mlops_ray._lazy import lazy_exports

_EXPORTS = {
    "prepare": "mlops_ray.data.stage",
    "check_input": "mlops_ray.data.stage",
    "format_report": "mlops_ray.data.prepared",
    "load_bundled": "mlops_ray.data.sources",
    "compute_reference_profile": "mlops_ray.data.fitting",
    "generate_table": "mlops_ray.data.generate",
    "GenerateSummary": "mlops_ray.data.generate",
    "FeaturePipeline": "mlops_ray.data.features",
    "PreparedData": "mlops_ray.data.prepared",
    "DataReport": "mlops_ray.data.prepared",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

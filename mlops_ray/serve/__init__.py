"""Serving: a FastAPI ingress on Ray Serve in front of one autoscaled, batched application per model version.

Public API (heavy modules load on first use)::

    deploy(cfg, runtime, *, model=None, version=None, alias=None, source=None, canary_pct=None) -> Deployment
    rollback(runtime, model) / promote(runtime, model) / status(runtime) / shutdown(runtime)
    predict(runtime, model, rows) -> dict          # HTTP client of a running endpoint
    ensure_local_head(runtime) -> address          # a detached Ray head that outlives the CLI
    deploy_from_pipeline(cfg, runtime, registration), format_deployment(dep), format_status(status)
    pipeline_target(registration) -> version    # what the deploy step serves: the champion after the gate
    build_app(args) -> serve.Application         # the builder of `serve deploy` configs (cluster/serve_config.yaml)

Pure logic (no Ray): ``rollout.Rollout`` (the state machine), ``analysis.analyze`` (canary verdict),
``traffic.WeightedRouter``, ``validation`` / ``protocols`` (request checks), ``auth``, ``metrics``.
"""

from __future__ import annotations

from mlops_ray._lazy import lazy_exports

_MODULES = {
    "deploy": "controller", "rollback": "controller", "promote": "controller", "status": "controller",
    "shutdown": "controller", "deploy_from_pipeline": "controller", "Deployment": "controller",
    "pipeline_target": "controller",
    "predict": "client", "format_deployment": "client", "format_status": "client",
    "ensure_local_head": "head", "stop_local_head": "head",
    "Rollout": "rollout", "Decision": "rollout", "analyze": "analysis", "Thresholds": "analysis",
    "WindowStats": "analysis", "InputSchema": "validation", "RequestError": "validation",
    "WeightedRouter": "traffic", "build_app": "app",
}

_EXPORTS = {name: f"mlops_ray.serve.{mod}" for name, mod in _MODULES.items()}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

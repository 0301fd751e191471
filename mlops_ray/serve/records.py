"""Rollout decisions recorded outside Serve: tags in MLflow, and the registry's champion alias kept in step."""

from __future__ import annotations

import json
import logging
from typing import Any

from mlops_ray.serve.rollout import Decision

TAG = "mlops_ray.serve."
logger = logging.getLogger("ray.serve")


def record_decision(settings: dict[str, Any], model: str, d: Decision, stable: str | None, source: str) -> None:
    """Tag the model version (and its run) with the decision; point the champion alias at what now serves.

    Only versions that came from the registry (source ``models:/...``) are tagged; a version served from
    a local folder has no registry entry, and its decisions live in the serving state only.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = settings["tracking_uri"]
    if not source.startswith("models:/"):
        return
    cl = MlflowClient(tracking_uri=uri, registry_uri=uri)
    record = json.dumps({"action": d.action, "reason": d.reason, "at": d.at, "traffic": d.traffic,
                         "metrics": d.metrics}, default=str)[:5000]
    try:
        mv = cl.get_model_version(model, d.version)
        cl.set_model_version_tag(model, d.version, TAG + "decision", d.action)
        cl.set_model_version_tag(model, d.version, TAG + "reason", d.reason[:5000])
        if mv.run_id:
            cl.set_tag(mv.run_id, TAG + d.action, record)
    except MlflowException as e:
        logger.warning("could not tag %s v%s with the %s decision: %s", model, d.version, d.action, e)
        return
    if stable is not None:  # whichever way traffic moved, the champion is what serves
        restore_champion(settings, model, stable, d.reason, d.action.replace("manual_", ""))


def restore_champion(settings: dict[str, Any], model: str, stable: str, reason: str,
                     action: str = "rollback") -> str | None:
    """Point the registry's champion alias at the version that now serves; returns what moved (None: nothing)."""
    from mlops_ray.runtime import resolve_runtime

    try:
        from mlops_ray import registry
    except ImportError:
        return None
    promote = getattr(registry, "promote", None)
    if promote is None:
        return None
    from mlflow import MlflowClient

    uri = settings["tracking_uri"]
    cl = MlflowClient(tracking_uri=uri, registry_uri=uri)
    aliases = dict(cl.get_registered_model(model).aliases or {})
    if str(aliases.get("champion")) == str(stable):
        return None
    rt = resolve_runtime(None, workdir=settings["workdir"], tracking_uri=uri)
    # The serving side acts for whoever (or whatever) triggered it: recorded as "serve", not "$USER" of a replica.
    promote(rt, model, str(stable), f"serving {action}: {reason}", actor="serve")
    return f"champion -> v{stable} (was v{aliases.get('champion')})"

"""The Serve application builder for ``serve run`` / ``serve deploy`` / a RayService (``import_path`` + ``args``).

``mlops-ray deploy`` (controller.deploy) runs each model version as its own Serve application next to the
ingress application, so versions come and go without restarting the ingress. A Serve config file declares
applications instead, so here ONE application holds both: the same ``Ingress`` deployment, bound to the same
``ModelServer`` deployment (built by ``model_server.model_app`` with the config's autoscaling and resources)
for the version the args name. Routes, auth, validation, batching and prediction logging are the same.
A later ``mlops-ray deploy --address ...`` against the cluster adds a canary version as its own application,
as usual; the version inside this application is never deleted alone (it goes when the application does).

Args (``applications[].args`` of the config): ``config`` (the pipeline YAML, relative to the working
directory), ``alias`` (default ``champion``) or ``version``, optional ``workdir`` and ``tracking_uri``
(default: the runtime's, i.e. ``MLOPS_RAY_WORKDIR`` / ``MLFLOW_TRACKING_URI`` of the app's runtime_env).
The HTTP host and port come from the Serve config's ``http_options``, not from the pipeline's ``serve``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ray import serve

from mlops_ray.exceptions import ServeError

logger = logging.getLogger("ray.serve")
ARGS = ("config", "alias", "version", "workdir", "tracking_uri")


def build_app(args: dict[str, Any]) -> serve.Application:
    """The ingress bound to the model-version deployment named by ``args`` (see the module docstring)."""
    from mlops_ray.config import load_config
    from mlops_ray.runtime import env, resolve_runtime
    from mlops_ray.serve.auth import load_or_create_tokens
    from mlops_ray.serve.controller import STATE_FILE, _logging, _settings, model_options, resolve_source
    from mlops_ray.serve.ingress import Ingress
    from mlops_ray.serve.model_server import model_app

    args = _check_args(args)
    cfg = load_config(_config_path(str(args["config"])))
    runtime = resolve_runtime(cfg, workdir=args.get("workdir"), tracking_uri=args.get("tracking_uri"))
    runtime.serve_dir.mkdir(parents=True, exist_ok=True)
    version = str(args["version"]) if args.get("version") is not None else None
    source, version = resolve_source(runtime, cfg.model_name, version, args.get("alias"))
    a = cfg.serve.auth
    tokens = load_or_create_tokens(runtime.serve_dir, enabled=a.enabled, token_env=a.token_env,
                                   admin_token_env=a.admin_token_env, env=env)
    if tokens.created:  # never logged: only where to find them
        logger.info("serve tokens generated into %s (set %s / %s to choose them)",
                    runtime.serve_dir / "tokens.json", a.token_env, a.admin_token_env)
    logs = _logging(cfg)
    server = model_app(cfg.model_name, version, source, model_options(cfg, runtime), cfg.serve, logging_config=logs)
    settings = _settings(cfg, runtime, tokens)
    settings["initial"] = {"model": cfg.model_name, "version": version, "source": source,
                           "steps": list(cfg.serve.canary.steps)}
    (runtime.serve_dir / STATE_FILE).unlink(missing_ok=True)  # a (re)built ingress starts from nothing
    return Ingress.options(logging_config=logs).bind(settings, server)


def _config_path(path: str) -> Path:
    """The pipeline YAML: as given, else relative to the checkout this package runs from (a cluster's /app)."""
    given = Path(path).expanduser()
    root = Path(__file__).resolve().parents[2]
    tried = [given] if given.is_absolute() else list(dict.fromkeys([Path.cwd() / given, root / given]))
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise ServeError(f"pipeline config {path!r} not found (tried {', '.join(map(str, tried))}); give args.config "
                     "as an absolute path or relative to the working directory")


def _check_args(args: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise ServeError(f"build_app takes a dict of args, got {type(args).__name__}")
    unknown = sorted(set(args) - set(ARGS))
    if unknown:
        raise ServeError(f"unknown build_app args {unknown}; allowed: {list(ARGS)}")
    if not args.get("config"):
        raise ServeError("build_app needs args.config: the pipeline YAML path (e.g. examples/breast_cancer.yaml)")
    if args.get("alias") and args.get("version") is not None:
        raise ServeError(f"give args.alias ({args['alias']!r}) or args.version ({args['version']!r}), not both")
    return dict(args)

"""`mlops-ray deploy | rollback | status | predict | shutdown`: the serving commands.

Promoting a canary early is the admin route ``POST /admin/models/{name}/promote`` (or
``mlops_ray.serve.promote``); `mlops-ray promote` belongs to the registry (it moves the champion alias).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlops_ray.cli._common import add_runtime_args, parse_overrides, print_json


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("deploy", help="serve a registered model version (a canary when another version serves)")
    d.add_argument("name", help="registered model name")
    which = d.add_mutually_exclusive_group()
    which.add_argument("--version", help="model version (default: the alias, champion)")
    which.add_argument("--alias", help="registry alias to deploy, e.g. champion or challenger")
    d.add_argument("--source", help="deploy from a model folder (save_fitted_model / MLflow model) instead; "
                   "needs --version as its label")
    d.add_argument("--canary", type=float, metavar="PCT",
                   help="first canary traffic share; 100 switches at once (default: the config's first step)")
    d.add_argument("--replicas", type=int, help="fixed replica count instead of autoscaling")
    d.add_argument("--config", help="pipeline YAML whose serve: section applies (default: built-in settings)")
    d.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set serve.port=8001")
    d.add_argument("--default-proxy", action="store_true",
                   help="start the local Ray head without the HAProxy / throughput-optimized Serve mode")
    add_runtime_args(d)
    d.set_defaults(func=_deploy)

    r = sub.add_parser("rollback", help="flip traffic back to the warm previous version (or drop the canary)")
    r.add_argument("name", help="the served model's name")
    r.add_argument("--reason", default="rolled back with `mlops-ray rollback`",
                   help="recorded with the decision and the registry's alias move")
    add_runtime_args(r)
    r.set_defaults(func=_rollback)

    s = sub.add_parser("status", help="versions, traffic shares, replicas, rollout state, recent decisions")
    s.add_argument("--json", action="store_true", help="print JSON")
    add_runtime_args(s)
    s.set_defaults(func=_status)

    q = sub.add_parser("predict", help="send rows to a deployed model over HTTP")
    q.add_argument("name", help="the served model's name")
    q.add_argument("--json", dest="rows", required=True, help="rows as JSON (a list of objects), or @FILE")
    q.add_argument("--url", help="endpoint (default: the one recorded at deploy)")
    q.add_argument("--token", help="bearer token (default: $MLOPS_RAY_TOKEN, else the stored one)")
    add_runtime_args(q)
    q.set_defaults(func=_predict)

    x = sub.add_parser("shutdown", help="delete the Serve applications and stop the Ray head `deploy` started")
    x.add_argument("--keep-head", action="store_true", help="leave the local Ray head running")
    add_runtime_args(x)
    x.set_defaults(func=_shutdown)


def _config(args: argparse.Namespace) -> Any:
    from mlops_ray.config import load_config, parse_config
    from mlops_ray.runtime import resolve_runtime

    overrides = parse_overrides(args.overrides)
    if args.config:
        cfg = load_config(args.config, overrides)
    else:  # serving needs only the serve section: the data source below is never read
        import re

        from mlops_ray.config import NAME_PATTERN, _set_dotted
        from mlops_ray.exceptions import ConfigError

        if not re.fullmatch(NAME_PATTERN, args.name):
            raise ConfigError(f"model name {args.name!r}: use letters, digits and _.- (a model's name names its "
                              "log folders and Serve applications)")
        from mlops_ray.serve.controller import running_endpoint_settings

        data: dict[str, Any] = {"name": args.name, "data": {"source": {"bundled": "iris"}}}
        for key, value in overrides.items():
            _set_dotted(data, key, value)
        cfg = parse_config(data)
        rt = resolve_runtime(cfg, workdir=args.workdir, address=args.address)  # serve.* never moves the workdir
        # Without a config, add to the endpoint this workdir already serves (its port, app, token names)
        # rather than ask for the built-in defaults; --set still wins.
        wanted = {k: v for k, v in running_endpoint_settings(rt).items() if k not in overrides}
        if wanted:
            for key, value in wanted.items():
                _set_dotted(data, key, value)
            cfg = parse_config(data)
        return cfg, rt
    return cfg, resolve_runtime(cfg, workdir=args.workdir, address=args.address)


def _deploy(args: argparse.Namespace) -> int:
    from mlops_ray.exceptions import ServeError
    from mlops_ray.serve import deploy, format_deployment

    if args.source and not args.version:
        raise ServeError("--source needs --version, the label this version serves under")
    cfg, rt = _config(args)
    dep = deploy(cfg, rt, model=args.name, version=args.version, alias=args.alias, source=args.source,
                 canary_pct=args.canary, num_replicas=args.replicas, fast_mode=not args.default_proxy)
    print(format_deployment(dep))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from mlops_ray.cli._common import runtime_only
    from mlops_ray.serve import rollback

    out = rollback(runtime_only(args), args.name, args.reason)
    d = out["decision"]
    print(f"{d['action']}: {d['reason']}")
    print(f"traffic now: {out['status']['traffic']} (flipped in {out['flip_seconds'] * 1e3:.2f} ms inside the "
          f"ingress; {out['call_seconds'] * 1e3:.0f} ms control call)")
    if out.get("registry"):
        print(f"registry: {out['registry']}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from mlops_ray.cli._common import runtime_only
    from mlops_ray.serve import format_status, status

    st = status(runtime_only(args))
    if args.json:
        print_json(st)
    else:
        print(format_status(st))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlops_ray.cli._common import runtime_only
    from mlops_ray.exceptions import ServeError
    from mlops_ray.serve import predict

    if args.rows.startswith("@"):
        try:
            text = Path(args.rows[1:]).read_text()
        except OSError as e:
            raise ServeError(f"--json {args.rows}: cannot read {args.rows[1:]!r} ({e.strerror or e})") from e
    else:
        text = args.rows
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise ServeError(f"--json is not valid JSON: {e}") from e
    if isinstance(rows, dict):
        rows = rows.get("rows", [rows])
    print_json(predict(runtime_only(args), args.name, rows, url=args.url, token=args.token))
    return 0


def _shutdown(args: argparse.Namespace) -> int:
    from mlops_ray.cli._common import runtime_only
    from mlops_ray.serve import shutdown

    out = shutdown(runtime_only(args), stop_head=not args.keep_head)
    print(f"deleted applications: {', '.join(out['deleted']) or 'none'}; "
          f"local Ray head stopped: {'yes' if out['head_stopped'] else 'no (none started here)'}")
    return 0

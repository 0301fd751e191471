"""`mlops-ray run | tune | register CONFIG`: the pipeline, whole or up to a step."""

from __future__ import annotations

import argparse

from mlops_ray.cli._common import add_config_arg, add_runtime_args, load


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the pipeline's steps (data -> tune -> register -> deploy)")
    add_config_arg(p)
    add_runtime_args(p)
    p.add_argument("--steps", help="comma-separated subset of data,tune,register,deploy (default: the config's)")
    p.add_argument("--no-cache", action="store_true", help="rerun tune+register even if an identical run exists")
    p.add_argument("--canary", type=float, metavar="PCT", help="first canary traffic share when a model serves")
    p.set_defaults(func=_run)

    t = sub.add_parser("tune", help="data + hyperparameter search (k-fold CV on Ray Tune), no registration")
    add_config_arg(t)
    add_runtime_args(t)
    t.set_defaults(func=_run, steps="data,tune", no_cache=True, canary=None)

    r = sub.add_parser("register", help="data + search + register the winner through the promotion gate")
    add_config_arg(r)
    add_runtime_args(r)
    r.add_argument("--no-cache", action="store_true", help="rerun tune+register even if an identical run exists")
    r.set_defaults(func=_run, steps="data,tune,register", canary=None)


def _run(args: argparse.Namespace) -> int:
    from mlops_ray.pipeline import run_pipeline

    cfg, rt = load(args)
    steps = [s.strip() for s in args.steps.split(",")] if args.steps else None
    result = run_pipeline(cfg, rt, steps=steps, use_cache=not args.no_cache, canary_pct=args.canary)
    print(f"pipeline {cfg.name}: steps {', '.join(result.steps)} finished; outputs under {rt.workdir}")
    print(f"MLflow UI: mlflow ui --backend-store-uri {rt.tracking_uri}")
    return 0

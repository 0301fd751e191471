"""`mlops-ray run | tune | register CONFIG`: the pipeline, whole or up to a step."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import TYPE_CHECKING, Any

from mlops_ray.cli._common import add_config_arg, add_runtime_args, load, parse_steps
from mlops_ray.runtime import env, resolve_runtime

if TYPE_CHECKING:
    from pathlib import Path

    from mlops_ray.runtime import Runtime


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the pipeline's steps (data -> tune -> register -> deploy)")
    add_config_arg(p)
    add_runtime_args(p)
    p.add_argument("--steps", help="comma-separated subset of data,tune,register,deploy (default: the config's)")
    p.add_argument("--no-cache", action="store_true", help="rerun tune+register even if an identical run exists")
    p.add_argument("--canary", type=float, metavar="PCT", help="first canary traffic share when a model serves")
    _add_resume(p)
    p.set_defaults(func=_run)

    t = sub.add_parser("tune", help="data + hyperparameter search (k-fold CV on Ray Tune), no registration")
    add_config_arg(t)
    add_runtime_args(t)
    _add_resume(t)
    t.set_defaults(func=_run, steps="data,tune", no_cache=True, canary=None)

    r = sub.add_parser("register", help="data + search + register the winner through the promotion gate")
    add_config_arg(r)
    add_runtime_args(r)
    r.add_argument("--no-cache", action="store_true", help="rerun tune+register even if an identical run exists")
    _add_resume(r)
    r.set_defaults(func=_run, steps="data,tune,register", canary=None)


def _add_resume(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted search (same config and data) without rerunning finished trials")


def _run(args: argparse.Namespace) -> int:
    from mlops_ray.pipeline import run_pipeline
    from mlops_ray.serve.rollout import check_canary_pct

    check_canary_pct(args.canary, "--canary")  # before the data and tune steps, not after them
    steps = parse_steps(args.steps)
    cfg, rt = load(args)
    result = run_pipeline(cfg, rt, steps=steps, use_cache=not args.no_cache, canary_pct=args.canary,
                          resume=args.resume)
    print(f"\npipeline {cfg.name}: steps {', '.join(result.steps)} finished; outputs under {rt.workdir}")
    _print_mlflow(result, rt)
    if result.deployment is not None:
        _print_endpoint(result, rt)
    return 0


def _print_mlflow(result: Any, rt: Runtime) -> None:
    run_id = getattr(result.registration, "run_id", None) or getattr(result.search, "parent_run_id", None)
    exp_id = getattr(result.search, "experiment_id", None)
    print(f"MLflow UI:  mlflow ui --backend-store-uri {rt.tracking_uri} --port 5000")
    if run_id and exp_id:
        print(f"  then open http://127.0.0.1:5000/#/experiments/{exp_id}/runs/{run_id}")
    elif run_id:
        print(f"  the run: {run_id}")


def token_hint(new: str | None, stored: Any, token_env: str, path: Path) -> tuple[list[str], str]:
    """The summary's token lines and the curl header: the token itself only when this run created it."""
    if new:  # shown this once: a rerun's log (a CI log) must not carry it again
        return [f"token:      {new}   (printed once)"], f"-H 'Authorization: Bearer {new}' "
    if not stored.token:
        return ["token:      none (serve.auth.enabled: false)"], ""
    header = f'-H "Authorization: Bearer ${token_env}" '
    if stored.source == "env":
        return [f"token:      unchanged, in ${token_env}; `mlops-ray predict` finds it"], header
    return [f"token:      unchanged, in {path} (mode 0600); `mlops-ray predict` finds it",
            f"  export {token_env}=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"token\"])' "
            f"{shlex.quote(str(path))})"], header


def _print_endpoint(result: Any, rt: Runtime) -> None:
    """A real request against the live endpoint, and what the user needs to send their own."""
    from mlops_ray.serve import predict
    from mlops_ray.serve.auth import read_tokens
    from mlops_ray.serve.client import endpoint

    dep = result.deployment
    ep = endpoint(rt)
    token_env = ep.get("token_env", "MLOPS_RAY_TOKEN")
    stored = read_tokens(rt.serve_dir, token_env=token_env,
                         admin_token_env=ep.get("admin_token_env", "MLOPS_RAY_ADMIN_TOKEN"), env=env)
    token = dep.token or stored.token
    row = json.loads(result.prepared.holdout_frame.head(1).to_json(orient="records"))
    answer = predict(rt, dep.model, row, url=dep.url, token=token)
    url = f"{dep.url}/v1/models/{dep.model}/predict"
    print(f"\nendpoint:   {url}   (OpenAPI: {dep.url}/docs; KServe v2: {dep.url}/v2/models/{dep.model}/infer)")
    lines, header = token_hint(dep.token, stored, token_env, rt.serve_dir / "tokens.json")
    print("\n".join(lines))
    print(f"sample request (one holdout row):\n  curl -s {header}"
          f"-H 'Content-Type: application/json' -d '{json.dumps({'rows': row})}' {url}")
    print(f"answer:\n  {json.dumps(answer)}")
    # The workdir that a bare `mlops-ray shutdown` would use may not be this one (--workdir, the config's).
    same = resolve_runtime(None).workdir.resolve() == rt.workdir.resolve()
    where = "" if same else f" --workdir {shlex.quote(str(rt.workdir))}"
    print(f"the endpoint keeps running on a local Ray head; stop it with:  mlops-ray shutdown{where}")

"""`mlops-ray submit CONFIG --address URL` and `mlops-ray job status|logs|stop|list`: the Ray Jobs API."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

from mlops_ray.cli._common import print_json


def _add_address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="Ray dashboard address, e.g. http://HEAD:8265 "
                   "(default: $RAY_API_SERVER_ADDRESS, then $RAY_ADDRESS)")
    p.add_argument("--token-file", help="file holding the cluster's auth token (default: $RAY_AUTH_TOKEN, "
                   "$RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)")


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("submit", help="submit a pipeline job (train, deploy, ...) to a Ray cluster (Jobs API)",
                       description="Submit jobs/<JOB>.py --config CONFIG with the working directory uploaded. "
                       "Arguments after `--` go to the job, e.g. -- --steps data,tune.")
    s.add_argument("config", help="pipeline spec (YAML) inside the working directory")
    _add_address(s)
    s.add_argument("--job", default="train", help="train (default), deploy, retrain, monitor or batch_predict")
    s.add_argument("--working-dir", default=".", help="folder uploaded as the job's working_dir (default: .)")
    s.add_argument("--follow", action="store_true", help="stream the job's logs until it ends; exit 1 if it fails")
    s.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="env var for the job")
    s.add_argument("--tracking-uri", help="MLFLOW_TRACKING_URI for the job (a server the cluster can reach)")
    s.add_argument("--workdir", help="MLOPS_RAY_WORKDIR for the job (shared storage on a multi-node cluster)")
    s.add_argument("--pip", action="append", default=[], metavar="PACKAGE", help="extra pip package for the job")
    s.add_argument("--submission-id", help="job id (default: mlops-ray-<job>-<pipeline>-<time>-<random>)")
    s.add_argument("--entrypoint-num-cpus", type=float, help="CPUs reserved for the job's driver")
    s.add_argument("--entrypoint-num-gpus", type=float, help="GPUs reserved for the job's driver")
    s.add_argument("--dry-run", action="store_true", help="print the submission (and `ray job submit` line) only")
    s.add_argument("rest", nargs=argparse.REMAINDER, metavar="[OPTIONS] [-- JOB_ARGS]",
                   help="options may follow CONFIG; arguments after `--` are passed to the job")
    s.set_defaults(func=_submit, _parser=s)

    j = sub.add_parser("job", help="status, logs, stop or list Ray jobs on a cluster")
    jsub = j.add_subparsers(dest="job_command", metavar="ACTION", required=True)
    for name, helptext in (("status", "a job's status"), ("logs", "a job's logs (--follow to stream)"),
                           ("stop", "stop a running job")):
        a = jsub.add_parser(name, help=helptext)
        a.add_argument("job_id", help="submission id, as printed by `mlops-ray submit`")
        _add_address(a)
        if name == "logs":
            a.add_argument("--follow", action="store_true", help="stream until the job ends")
        a.set_defaults(func=_job)
    lst = jsub.add_parser("list", help="all jobs on the cluster")
    _add_address(lst)
    lst.set_defaults(func=_job, job_id=None)


def _address(args: argparse.Namespace) -> str:
    from mlops_ray.exceptions import ClusterError
    from mlops_ray.runtime import env

    address = args.address or env("RAY_API_SERVER_ADDRESS") or env("RAY_ADDRESS")
    if not address or address == "auto":
        raise ClusterError("no cluster address: pass --address http://HEAD:8265 (the Ray dashboard) "
                           "or export RAY_API_SERVER_ADDRESS")
    return address


def _this_machines_workdir(cfg: Any, address: str | None, env_vars: dict[str, str]) -> str | None:
    """The local working directory, absolute, for a job submitted to a Ray on this machine without --workdir.

    The job runs in Ray's temporary copy of the upload: a relative ``./work`` there (the MLflow store, the
    models) would vanish with it, and the next job would start from an empty registry. On this machine the
    job can simply use the same directory as the local CLI.
    """
    from urllib.parse import urlparse

    from mlops_ray.runtime import env, resolve_runtime

    if "MLOPS_RAY_WORKDIR" in env_vars or not address:
        return None
    host = urlparse(address if "://" in address else f"http://{address}").hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1", socket.gethostname()):
        return None
    if env("MLOPS_RAY_WORKDIR") is None and cfg.workdir is not None and Path(cfg.workdir).is_absolute():
        return None  # the config names an absolute place already
    return str(resolve_runtime(cfg).workdir.resolve())


def _split_rest(args: argparse.Namespace) -> list[str]:
    """argparse hands everything after CONFIG to ``rest``: options before ``--`` are ours, the rest the job's."""
    rest = list(args.rest)
    cut = rest.index("--") if "--" in rest else len(rest)
    if rest[:cut]:
        args.rest = []
        args._parser.parse_args([*rest[:cut], args.config], namespace=args)
    return rest[cut + 1:]


def _submit(args: argparse.Namespace) -> int:
    from mlops_ray.cluster.jobs import JobClient
    from mlops_ray.cluster.spec import build_submission, parse_env_pairs
    from mlops_ray.config import load_config
    from mlops_ray.runtime import code_version, env

    job_args = _split_rest(args)
    cfg = load_config(args.config)  # validate here: a typo should fail now, not after the upload
    env_vars = parse_env_pairs(args.env)
    if args.tracking_uri:
        env_vars["MLFLOW_TRACKING_URI"] = args.tracking_uri
    if args.workdir:
        env_vars["MLOPS_RAY_WORKDIR"] = args.workdir
    address = args.address or env("RAY_API_SERVER_ADDRESS") or env("RAY_ADDRESS")
    shared = _this_machines_workdir(cfg, address, env_vars)
    if shared is not None:
        env_vars["MLOPS_RAY_WORKDIR"] = shared
    spec = build_submission(
        args.job.replace("-", "_"), args.config, args.working_dir, name=cfg.name, job_args=job_args,
        env_vars=env_vars or None, pip=args.pip or None, submission_id=args.submission_id,
        entrypoint_num_cpus=args.entrypoint_num_cpus, entrypoint_num_gpus=args.entrypoint_num_gpus,
        code_version=code_version(args.working_dir),
    )
    if args.dry_run:
        print_json({**spec.submit_kwargs(), "ray_job_submit": spec.ray_job_submit_command(
            args.address or "$RAY_ADDRESS")})
        return 0
    client = JobClient(_address(args), token_file=args.token_file)
    job_id = client.submit(spec)
    print(f"submitted {spec.job} job {job_id} to {client.address}")
    if shared is not None:
        print(f"  workdir: {shared} (this machine's, shared with the local CLI; --workdir to choose another)")
    print(f"  status: mlops-ray job status {job_id} --address {client.address}")
    print(f"  logs:   mlops-ray job logs {job_id} --address {client.address} --follow")
    if not args.follow:
        return 0
    state = client.follow(job_id)
    print(f"job {job_id} {state.status}" + (f": {state.message}" if state.message else ""))
    return 0 if state.status == "SUCCEEDED" else 1


def _job(args: argparse.Namespace) -> int:
    from mlops_ray.cluster.jobs import JobClient

    client = JobClient(_address(args), token_file=args.token_file)
    if args.job_command == "list":
        print_json([s.to_dict() for s in client.list()])
        return 0
    if args.job_command == "status":
        print_json(client.status(args.job_id).to_dict())
        return 0
    if args.job_command == "stop":
        stopped = client.stop(args.job_id)
        print(f"job {args.job_id}: " + ("stop requested" if stopped else "was not running"))
        return 0
    if args.follow:
        state = client.follow(args.job_id)
        return 0 if state.status == "SUCCEEDED" else 1
    print(client.logs(args.job_id), end="")
    return 0

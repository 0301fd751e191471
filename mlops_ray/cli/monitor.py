"""`mlops-ray monitor NAME` and `mlops-ray retrain CONFIG`: drift / live accuracy reports and the retrain trigger."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from mlops_ray.cli._common import add_config_arg, add_runtime_args, parse_overrides, print_json

EXIT_RETRAIN = 3  # with --fail-on-retrain: lets cron / CI act on the decision


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("monitor", help="drift, live accuracy and the retrain decision for a served model's log")
    m.add_argument("name", help="registered model name (the folder under <workdir>/monitor/)")
    m.add_argument("--config", help="pipeline spec (YAML): monitor thresholds, experiment, task (default: defaults)")
    m.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set monitor.drift.alpha=0.01")
    m.add_argument("--version", help="model version (default: the champion, else the newest logged version)")
    m.add_argument("--reference", help="reference profile JSON (default: the one logged with the model)")
    m.add_argument("--all-versions", action="store_true", help="scan the logs of every version (one schema)")
    m.add_argument("--since", metavar="WHEN", help="judge only the rows logged since WHEN: a duration before now "
                   "(24h, 30m, 7d; with --every, counted from each run) or an ISO time (2026-11-27T10:00Z)")
    m.add_argument("--every", type=float, nargs="?", const=-1.0, metavar="SECONDS",
                   help="repeat every SECONDS (alone: the config's monitor.schedule_s); Ctrl-C stops")
    m.add_argument("--engine", choices=["auto", "ray", "local"], default="auto",
                   help="scan with Ray Data (ray), in this process (local), or by log size (auto, default)")
    m.add_argument("--count", type=int, metavar="N", help="with --every: stop after N runs (default: until Ctrl-C)")
    m.add_argument("--no-mlflow", action="store_true", help="write the report files but log nothing to MLflow")
    m.add_argument("--json", action="store_true",
                   help="print the whole report as JSON (what summary.json holds: per feature too)")
    m.add_argument("--fail-on-retrain", action="store_true", help=f"exit {EXIT_RETRAIN} when retraining is advised")
    add_runtime_args(m)
    m.set_defaults(func=_monitor)

    r = sub.add_parser("retrain", help="retrain on the training data + labelled logged rows if the monitor says so")
    add_config_arg(r)
    add_runtime_args(r)
    r.add_argument("--force", action="store_true", help="retrain without asking the monitor")
    r.add_argument("--version", help="model version the monitor judges (default: the champion)")
    r.add_argument("--since", metavar="WHEN", help="the monitor judges only the rows logged since WHEN (as for "
                   "monitor --since; the retrain itself uses every labelled row)")
    r.add_argument("--steps", help="pipeline steps for the retrained model (default: the config's)")
    r.add_argument("--no-cache", action="store_true", help="rerun tune+register even if an identical run exists")
    r.set_defaults(func=_retrain)


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from mlops_ray.config import load_config
    from mlops_ray.runtime import resolve_runtime

    cfg = load_config(args.config, parse_overrides(args.overrides)) if args.config else None
    rt = resolve_runtime(cfg, workdir=args.workdir, address=args.address)
    return cfg, rt


def _monitor(args: argparse.Namespace) -> int:
    from mlops_ray.exceptions import ConfigError, MonitorError
    from mlops_ray.monitor.run import run_monitor
    from mlops_ray.monitor.window import parse_since

    if args.name.endswith((".yaml", ".yml")) and os.path.isfile(args.name):
        raise ConfigError(f"monitor takes the registered model's name, not a config file: mlops-ray monitor NAME "
                          f"--config {args.name} (the model name is the config's registry.model_name or name)")
    cfg, rt = _load(args)
    every = args.every
    if every is not None and every <= 0 and every != -1.0:  # -1: --every given without SECONDS
        raise ConfigError(f"--every SECONDS must be positive, got {every:g}")
    if every is not None and every < 0:
        every = cfg.monitor.schedule_s if cfg is not None else None
        if every is None:
            raise ConfigError("--every without SECONDS needs --config with monitor.schedule_s set")
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count N must be at least 1, got {args.count}")
    if args.count is not None and every is None:
        raise ConfigError("--count counts the runs of a schedule: add --every SECONDS")
    if args.since is not None:
        parse_since(args.since)  # a typo fails now, not at each run of a schedule
    runs = 0
    advised = False  # any run of a --count schedule advised retraining: cron/CI must hear of it
    while True:
        runs += 1
        try:
            rep = run_monitor(cfg, rt, args.name, args.version, reference=args.reference,
                              all_versions=args.all_versions, engine=args.engine,
                              log_to_mlflow=not args.no_mlflow,
                              since=parse_since(args.since) if args.since is not None else None)
        except MonitorError as e:
            if every is None:
                raise
            print(f"error: {e}", file=sys.stderr)  # on a schedule: logs may simply not be there yet
            rep = None
        if rep is not None:
            advised = advised or rep.retrain
            if args.json and every is not None:  # one line per run: a JSON Lines stream for a schedule
                print(json.dumps(rep.to_dict(), default=str))
            else:
                print_json(rep.to_dict()) if args.json else print(rep.summary())
        if every is None or (args.count is not None and runs >= args.count):
            if rep is None:
                return 1  # the last run failed (its error is printed above)
            return EXIT_RETRAIN if args.fail_on_retrain and advised else 0
        sys.stdout.flush()
        time.sleep(every)


def _retrain(args: argparse.Namespace) -> int:
    from mlops_ray.cli._common import load
    from mlops_ray.monitor.retrain import retrain

    cfg, rt = load(args)
    from mlops_ray.cli._common import parse_steps
    from mlops_ray.monitor.window import parse_since

    steps = parse_steps(args.steps)
    since = parse_since(args.since) if args.since is not None else None
    result = retrain(cfg, rt, force=args.force, version=args.version, steps=steps, use_cache=not args.no_cache,
                     since=since)
    if result.monitor is not None:
        print(result.monitor.summary())
    print(result.summary())
    return 0

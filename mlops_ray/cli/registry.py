"""`mlops-ray promote NAME VERSION` and `mlops-ray models [NAME]`: the model registry from the shell."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from mlops_ray.cli._common import print_json


def _runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", help="outputs root holding the default SQLite store (default: $MLOPS_RAY_WORKDIR, "
                                     "./work)")
    p.add_argument("--tracking-uri", help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI, else the "
                                          "workdir's sqlite:///.../mlflow.db)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("promote", help="make a registered version the champion (the old one becomes 'previous')")
    p.add_argument("name", help="registered model name")
    p.add_argument("version", help="version number to promote")
    p.add_argument("--reason", default="manual promotion", help="why (recorded on the version and the model)")
    p.add_argument("--actor", help="who (default: $MLOPS_RAY_ACTOR, else $USER)")
    _runtime_args(p)
    p.set_defaults(func=_promote)

    m = sub.add_parser("models", help="list registered models, or one model's versions, aliases and gate decisions")
    m.add_argument("name", nargs="?", help="a registered model name (omit to list all models)")
    m.add_argument("--history", action="store_true", help="also print every alias move (who, why, when)")
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _runtime_args(m)
    m.set_defaults(func=_models)


def _runtime(args: argparse.Namespace) -> Any:
    from mlops_ray.runtime import resolve_runtime

    return resolve_runtime(None, workdir=args.workdir, tracking_uri=args.tracking_uri)


def _promote(args: argparse.Namespace) -> int:
    from mlops_ray.exceptions import RegistryError
    from mlops_ray.registry import promote
    from mlops_ray.registry.store import missing_local_store, resolve_version

    rt = _runtime(args)
    if (missing := missing_local_store(rt)) is not None:
        raise RegistryError(f"no MLflow store at {missing}: nothing to promote; check --workdir or --tracking-uri")
    moves = promote(rt, args.name, args.version, reason=args.reason, actor=args.actor)
    if not moves:
        print(f"{args.name} v{args.version} is already the champion; nothing moved")
    for m in moves:
        print(f"{args.name}: alias {m.describe()} by {m.actor} at {m.at} ({m.reason})")
    tags = resolve_version(rt, args.name, args.version).tags if moves else {}
    if tags.get("mlops_ray.gate.decision") == "rejected":  # allowed (that is what promote is for), but say so
        was = next((m.replaced for m in moves if m.alias == "champion" and m.replaced), None)
        where = "".join(f" --{flag.replace('_', '-')} {shlex.quote(str(getattr(args, flag)))}"
                        for flag in ("workdir", "tracking_uri") if getattr(args, flag))
        undo = f"; `mlops-ray promote {args.name} {was}{where}` undoes it" if was else ""
        print(f"note: the promotion gate rejected v{args.version} when it was registered "
              f"({tags.get('mlops_ray.gate.reason', 'no reason recorded')}); it is the champion because you "
              f"promoted it{undo}")
    from mlops_ray.serve.head import read_head

    if moves and read_head(rt) is not None:  # a server runs from this workdir: it does not follow the alias
        print(f"note: this moves the registry's alias only; what serves is unchanged. To serve v{args.version}: "
              f"`mlops-ray deploy {args.name} --version {args.version}` (a canary; or POST "
              f"/admin/models/{args.name}/promote when it already is one)")
    return 0


def _models(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mlops_ray.registry import list_models, list_versions
    from mlops_ray.registry.store import alias_history, client, missing_local_store

    rt = _runtime(args)
    missing = missing_local_store(rt)
    if missing is not None:
        if args.name is not None:
            from mlops_ray.exceptions import RegistryError

            raise RegistryError(f"no MLflow store at {missing}: nothing is registered there yet; check --workdir "
                                "or --tracking-uri")
        if args.json:
            print_json([])
        else:
            print(f"no registered models: no MLflow store at {missing} yet")
        return 0
    if args.name is None:
        models = list_models(rt)
        if args.json:
            print_json(models)
        elif not models:
            print(f"no registered models in {rt.tracking_uri}")
        for md in [] if args.json else models:
            aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(md["aliases"].items())) or "no aliases"
            print(f"{md['name']}  latest v{md['latest_version']}  {aliases}")
        return 0
    versions = list_versions(rt, args.name)
    history = alias_history(client(rt), args.name) if args.history or args.json else []  # --json: everything
    if args.json:
        print_json({"name": args.name, "versions": [asdict(v) for v in versions],
                    "history": [asdict(h) for h in history]})
        return 0
    print(f"{'version':>7}  {'aliases':<20} {'gate':<9} {'metric':<22} {'created':<20} reason")
    for v in versions:
        g = v.gate
        score = f"{g.get('metric', '-')}={g.get('challenger_score', '-')}"
        print(f"{v.version:>7}  {','.join(v.aliases) or '-':<20} {g.get('decision', '-'):<9} {score:<22} "
              f"{v.created_at[:19]:<20} {g.get('reason', '')[:100]}")
    for h in history:
        print(f"{h.at}  {h.describe():<32} by {h.actor}: {h.reason[:100]}")
    return 0

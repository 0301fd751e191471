"""Shared argument helpers for the CLI command modules."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mlops_ray.config import PipelineConfig
    from mlops_ray.runtime import Runtime


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="pipeline spec (YAML), e.g. examples/breast_cancer.yaml")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field, e.g. --set tune.num_samples=4 (value parsed as YAML)",
    )


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", help="outputs root (default: $MLOPS_RAY_WORKDIR, the config's workdir, ./work)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    from mlops_ray.exceptions import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. tune.num_samples=4")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw)
    return out


def parse_steps(text: str | None) -> list[str] | None:
    """``--steps a,b`` -> ["a", "b"]; absent -> None (the config's). An empty list is an error: it must not
    mean "every step, deploy included"."""
    if text is None:
        return None
    steps = [s.strip() for s in text.split(",") if s.strip()]
    if not steps:
        from mlops_ray.exceptions import ConfigError

        raise ConfigError("--steps is empty; name one or more of data,tune,register,deploy, or leave it out for "
                          "the config's steps")
    return steps


def load(args: argparse.Namespace) -> tuple[PipelineConfig, Runtime]:
    """The config and the resolved runtime for a command's arguments."""
    from mlops_ray.config import load_config
    from mlops_ray.runtime import resolve_runtime

    cfg = load_config(args.config, parse_overrides(getattr(args, "overrides", [])))
    rt = resolve_runtime(cfg, workdir=getattr(args, "workdir", None), address=getattr(args, "address", None))
    return cfg, rt


def runtime_only(args: argparse.Namespace) -> Runtime:
    from mlops_ray.runtime import resolve_runtime

    return resolve_runtime(None, workdir=getattr(args, "workdir", None), address=getattr(args, "address", None))


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))

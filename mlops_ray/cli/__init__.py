"""The `mlops-ray` command line: parses arguments and calls the library; no logic of its own.

Heavy libraries (ray, mlflow, torch, sklearn) are imported inside the command handlers, never at
start-up, so `mlops-ray --help` answers at once (tests/unit/test_cli_startup.py checks it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlops_ray.exceptions import MlopsRayError

# One module per stage; each has `register(subparsers)` adding its commands with `func=handler`.
COMMAND_MODULES: tuple[str, ...] = (
    "mlops_ray.cli.run",
    "mlops_ray.cli.data",
    "mlops_ray.cli.cluster",
    "mlops_ray.cli.monitor",
    "mlops_ray.cli.registry",
    "mlops_ray.cli.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops-ray",
        description="The ML lifecycle on Ray: data -> tune -> register -> deploy -> monitor.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlops-ray")
    except PackageNotFoundError:
        return "unknown"


def os_error_text(e: OSError) -> str:
    """One line for a file-system or network error the user can act on."""
    if e.strerror and e.filename:
        return f"{e.strerror}: {e.filename}"
    if isinstance(e, FileNotFoundError):  # raised without strerror (e.g. by pyarrow): a file that vanished
        return f"file not found: {e} (moved or deleted while the command ran? run it again)"
    return f"{type(e).__name__}: {e}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except MlopsRayError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a path the user gave (a file where a folder should be, no permission...): one line
        if args.debug:
            raise
        print(f"error: {os_error_text(e)} (--debug shows where)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run the same command again (a search that was under way continues with --resume; "
              "`mlops-ray status` shows what serves)", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""`mlops-ray data CONFIG` (the data stage alone) and `mlops-ray data generate` (a synthetic table)."""

from __future__ import annotations

import argparse

from mlops_ray.cli._common import add_config_arg, add_runtime_args, load, print_json

GENERATE = "generate"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="run the data stage alone (or `data generate` for a synthetic table)",
        description="Run the data stage of CONFIG: read, validate, clean, split, fit features, fingerprint, "
                    "profile; prints the summary. `mlops-ray data generate --rows N --out PATH` writes a "
                    "synthetic table with categorical columns, missing values, outliers and malformed rows.",
        usage="mlops-ray data CONFIG [--set KEY=VALUE] [--workdir DIR] [--address ADDR] [--json]\n"
              "       mlops-ray data generate --rows N --out PATH [--seed S] [--format parquet|csv] [--files K]",
    )
    add_config_arg(p)
    add_runtime_args(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")
    g = p.add_argument_group("generate (mlops-ray data generate ...)")
    g.add_argument("--rows", type=int, help="rows to generate")
    g.add_argument("--out", help="output file (one file) or folder (--files K > 1, or a path with no extension)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--format", dest="fmt", choices=("parquet", "csv"), default="parquet", help="file format")
    g.add_argument("--files", type=int, default=1, help="number of files to split the rows into (default 1)")
    p.set_defaults(func=_data)


def _data(args: argparse.Namespace) -> int:
    if args.config == GENERATE:
        return _generate(args)
    from mlops_ray.data import check_input, format_report, prepare
    from mlops_ray.data.prepared import report_dict
    from mlops_ray.runtime import connect_ray

    cfg, rt = load(args)
    check_input(cfg)
    rt.ensure_dirs()
    connect_ray(rt)
    prepared = prepare(cfg, rt, materialize=False)
    if args.json:
        print_json(report_dict(prepared.report))
    else:
        print(format_report(prepared.report))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from mlops_ray.exceptions import ConfigError

    if args.rows is None or args.out is None:
        raise ConfigError("mlops-ray data generate needs --rows N and --out PATH, "
                          "e.g. mlops-ray data generate --rows 200000 --out work/generated/synthetic --files 4")
    import time

    from mlops_ray.data.generate import generate_table

    t0 = time.perf_counter()
    s = generate_table(args.out, args.rows, seed=args.seed, fmt=args.fmt, files=args.files)
    print(f"wrote {s.rows:,} rows in {len(s.files)} {args.fmt} file(s) under {s.path} "
          f"({s.bytes / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f}s")
    print("injected faults (reject reason -> rows): " + ", ".join(f"{k} {v}" for k, v in sorted(s.faults.items())))
    print(f"missing values: {sum(s.missing.values()):,}; outliers: {sum(s.outliers.values()):,}")
    return 0

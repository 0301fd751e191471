"""A synthetic classification table with faults at known rates, written in chunks (20M rows fit anywhere).

Columns (what ``examples/synthetic.yaml`` declares):

* ``num_0`` .. ``num_9``: float; ``num_1`` is non-negative (exponential), the others normal with
  different means and scales. Each has ``MISSING_RATE`` (5%) missing values and ``OUTLIER_RATE``
  (0.5%) outliers (20 to 50 standard deviations out; positive for ``num_1``).
* ``cat_0`` (5 regions), ``cat_1`` (20 products, skewed), ``cat_2`` (3 channels): text, with
  ``CAT_MISSING_RATE`` (2%) missing.
* ``label``: 0/1 from a logistic model of num_0, num_1, num_2, num_5 and cat_0, cat_2 (real signal:
  a good model reaches about 0.8 ROC AUC).

Malformed rows, ``MALFORMED_RATE`` (0.2%) of rows, each with exactly one fault, in equal shares:
``inf`` in num_0 (rejected ``non_finite:num_0``), a negative num_1 (``below_min:num_1``), an unknown
region in cat_0 (``unknown_category:cat_0``) and a missing label (``missing_target:label``). The
summary says how many of each were injected, so a run of the data stage can be checked exactly.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from mlops_ray.exceptions import DataError

NUMERIC = [f"num_{i}" for i in range(10)]
CATEGORICAL = ["cat_0", "cat_1", "cat_2"]
TARGET = "label"
REGIONS = ["north", "south", "east", "west", "central"]
PRODUCTS = [f"p{i:02d}" for i in range(20)]
CHANNELS = ["web", "store", "phone"]
MISSING_RATE = 0.05
CAT_MISSING_RATE = 0.02
OUTLIER_RATE = 0.005
MALFORMED_RATE = 0.002
FAULTS = ("non_finite:num_0", "below_min:num_1", "unknown_category:cat_0", "missing_target:label")
CHUNK_ROWS = 250_000
_MEANS = np.array([0.0, 0.0, 10.0, -5.0, 100.0, 1.0, 0.0, 50.0, 3.0, -1.0])
_SCALES = np.array([1.0, 1.0, 2.0, 0.5, 15.0, 1.0, 3.0, 10.0, 0.2, 4.0])


@dataclass
class GenerateSummary:
    path: str
    rows: int
    files: list[str]
    bytes: int = 0
    faults: dict[str, int] = field(default_factory=dict)  # reject reason the data stage should give -> rows
    missing: dict[str, int] = field(default_factory=dict)  # column -> missing values injected
    outliers: dict[str, int] = field(default_factory=dict)  # column -> outliers injected


def _chunk(rng: np.random.Generator, n: int, summary: GenerateSummary, malformed: bool = True) -> pa.Table:
    x = rng.normal(_MEANS, _SCALES, size=(n, len(NUMERIC)))
    x[:, 1] = rng.exponential(2.0, size=n)
    region = rng.integers(0, len(REGIONS), n)
    product = np.minimum(rng.zipf(1.6, n) - 1, len(PRODUCTS) - 1)
    channel = rng.choice(len(CHANNELS), n, p=[0.5, 0.3, 0.2])
    z = (1.2 * x[:, 0] - 0.6 * (x[:, 1] - 2.0) + 0.4 * (x[:, 2] - 10.0) / 2.0 + 0.8 * x[:, 5]
         + np.array([0.8, -0.4, 0.0, 0.3, -0.7])[region] + np.array([0.0, 0.5, -0.5])[channel] - 0.8)
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)

    cols: dict[str, pa.Array] = {}
    for j, name in enumerate(NUMERIC):
        col = x[:, j]
        out = rng.random(n) < OUTLIER_RATE
        sign = np.ones(n) if j == 1 else rng.choice([-1.0, 1.0], n)
        col = np.where(out, _MEANS[j] + sign * rng.uniform(20, 50, n) * _SCALES[j] + (10.0 if j == 1 else 0.0), col)
        miss = rng.random(n) < MISSING_RATE
        summary.outliers[name] = summary.outliers.get(name, 0) + int((out & ~miss).sum())
        summary.missing[name] = summary.missing.get(name, 0) + int(miss.sum())
        x[:, j] = col
        cols[name] = pa.array(col, mask=miss)
    for name, codes, values in (("cat_0", region, REGIONS), ("cat_1", product, PRODUCTS), ("cat_2", channel, CHANNELS)):
        miss = rng.random(n) < CAT_MISSING_RATE
        summary.missing[name] = summary.missing.get(name, 0) + int(miss.sum())
        cols[name] = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=miss), pa.array(values))
    cols[TARGET] = pa.array(label)

    # Malformed rows: one fault each, chosen after the rest so that the counts are exact.
    bad = np.nonzero(rng.random(n) < (MALFORMED_RATE if malformed else 0.0))[0]
    kinds = rng.permutation(np.arange(bad.size) % len(FAULTS))  # equal shares exactly (small tables too)
    counts = Counter(FAULTS[k] for k in kinds)
    for reason, c in counts.items():
        summary.faults[reason] = summary.faults.get(reason, 0) + c
    if bad.size:
        num0 = np.asarray(cols["num_0"].to_numpy(zero_copy_only=False), dtype=np.float64)
        num0[bad[kinds == 0]] = np.inf
        cols["num_0"] = pa.array(num0, mask=np.isnan(num0))
        num1 = np.asarray(cols["num_1"].to_numpy(zero_copy_only=False), dtype=np.float64)
        num1[bad[kinds == 1]] = -rng.uniform(1, 5, int((kinds == 1).sum()))
        cols["num_1"] = pa.array(num1, mask=np.isnan(num1))
        region_text = [*REGIONS, "atlantis"]
        codes0 = np.where(np.isin(np.arange(n), bad[kinds == 2]), len(REGIONS), region)
        miss0 = np.asarray(cols["cat_0"].is_null()) & (codes0 != len(REGIONS))
        cols["cat_0"] = pa.DictionaryArray.from_arrays(pa.array(codes0.astype(np.int32), mask=miss0),
                                                       pa.array(region_text))
        lab_miss = np.zeros(n, dtype=bool)
        lab_miss[bad[kinds == 3]] = True
        cols[TARGET] = pa.array(label, mask=lab_miss)
    return pa.table(cols)


def generate_table(
    path: str | Path,
    rows: int,
    *,
    seed: int = 0,
    fmt: Literal["parquet", "csv"] = "parquet",
    files: int = 1,
    chunk_rows: int = CHUNK_ROWS,
    malformed: bool = True,
) -> GenerateSummary:
    """Write ``rows`` rows to ``path``: one file, or a folder of ``files`` files (part-00000.parquet, ...).

    ``malformed=False`` leaves out the malformed rows (the benchmark's peers do not validate).
    """
    if rows < 1 or files < 1 or files > rows:
        raise DataError(f"generate: need rows >= files >= 1, got rows={rows}, files={files}")
    if fmt not in ("parquet", "csv"):
        raise DataError(f"generate: format must be parquet or csv, got {fmt!r}")
    path = Path(path)
    if files == 1 and path.suffix:
        targets = [path]
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob(f"part-*.{fmt}"):
            old.unlink()
        targets = [path / f"part-{i:05d}.{fmt}" for i in range(files)]
    summary = GenerateSummary(str(path), rows, [str(t) for t in targets])
    per_file = [rows // files + (1 if i < rows % files else 0) for i in range(files)]
    for i, (target, n_file) in enumerate(zip(targets, per_file, strict=True)):
        _write_file(target, n_file, seed, i, fmt, chunk_rows, summary, malformed)
    summary.bytes = sum(os.path.getsize(t) for t in targets)
    return summary


def _write_file(target: Path, n_rows: int, seed: int, index: int, fmt: str, chunk_rows: int,
                summary: GenerateSummary, malformed: bool = True) -> None:
    writer = None
    done, chunk_no = 0, 0
    try:
        while done < n_rows:
            n = min(chunk_rows, n_rows - done)
            rng = np.random.default_rng([seed, index, chunk_no])
            table = _chunk(rng, n, summary, malformed)
            if fmt == "parquet":
                import pyarrow.parquet as pq

                if writer is None:
                    writer = pq.ParquetWriter(target, table.schema)
                writer.write_table(table, row_group_size=chunk_rows)
            else:
                import pyarrow.csv as pacsv

                plain = pa.table({n_: (c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c)
                                  for n_, c in zip(table.column_names, table.columns, strict=True)})
                if writer is None:
                    writer = pacsv.CSVWriter(target, plain.schema)
                writer.write_table(plain)
            done += n
            chunk_no += 1
    finally:
        if writer is not None:
            writer.close()

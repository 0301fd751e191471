"""The three passes on blocks, run without Ray: any split into blocks gives the same answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ray.config import CleanSpec, FeaturesSpec
from mlops_ray.data import blocks
from mlops_ray.data.clean import make_plan
from mlops_ray.data.fitting import fit_features, reference_edges
from mlops_ray.data.generate import FAULTS, generate_table
from mlops_ray.data.schema import Column, Schema

SCHEMA = Schema((Column("x", "float", min=0), Column("c", "category", allowed=("a", "b")),
                 Column("y", "int", nullable=False)), "y")


def _run(parts: list[pa.Table], schema: Schema = SCHEMA, seed: int = 0, frac: float = 0.3):
    scan = blocks.merge_scans([blocks.scan_block(p, schema, seed, frac) for p in parts])
    plan = make_plan(schema, CleanSpec(), scan.numeric, scan.categorical)
    edges = {k: reference_edges(v) for k, v in scan.numeric.items()}
    prof = blocks.merge_profiles([blocks.profile_block(p, schema, plan, seed, frac, edges, True) for p in parts])
    fp = fit_features(schema, plan, prof.cleaned, scan.numeric, prof.categories, FeaturesSpec(),
                      "classification", sorted(scan.labels.counts))
    outs = [blocks.transform_block(p, schema, plan, fp, seed, frac) for p in parts]
    return scan, plan, fp, blocks.merge_writes([o.partial for o in outs]), outs


def _three_rows() -> pa.Table:
    return pa.table({"x": ["1.5", "-2", None], "c": ["a", "b", "zzz"], "y": ["0", "1", "1"]})


def test_three_rows_reconcile_with_reasons() -> None:
    _, _, _, wrote, outs = _run([_three_rows()], frac=0.01)
    assert wrote.rows == 3 and wrote.train_rows + wrote.holdout_rows + wrote.rows_rejected == 3
    assert wrote.rejected == {"below_min:x": 1, "unknown_category:c": 1}
    assert outs[0].rejects.column("_reject_reason").to_pylist() == ["below_min:x", "unknown_category:c"]
    assert outs[0].train.column_names == ["x", "c=a", "y", blocks.ROW_HASH]


def _table(n: int) -> pa.Table:
    rng = np.random.default_rng(3)
    x = rng.normal(5, 2, n)
    x[::17] = np.nan
    return pa.table({"x": pa.array(x, mask=np.isnan(x)), "c": rng.choice(["a", "b"], n), "y": rng.integers(0, 2, n)})


def test_block_split_and_order_do_not_change_the_result() -> None:
    t = _table(600)
    _scan1, plan1, fp1, w1, _ = _run([t])
    perm = pa.array(np.random.default_rng(1).permutation(600))
    shuffled = t.take(perm)
    _scan2, plan2, fp2, w2, _ = _run([shuffled.slice(0, 250), shuffled.slice(250, 100), shuffled.slice(350)])
    assert plan1 == plan2
    assert w1.fingerprint == w2.fingerprint
    assert (w1.train_rows, w1.holdout_rows) == (w2.train_rows, w2.holdout_rows)
    assert fp1.numeric[0].center == pytest.approx(fp2.numeric[0].center)
    assert fp1.numeric[0].scale == pytest.approx(fp2.numeric[0].scale)
    assert w1.missing_filled == w2.missing_filled and w1.outliers_handled == w2.outliers_handled
    assert [h for h, _ in w1.sample] == [h for h, _ in w2.sample]


def test_statistics_come_from_the_training_split_only() -> None:
    t = _table(400)
    scan, _plan, _, wrote, _ = _run([t], frac=0.5)
    assert scan.numeric["x"].moments.n + scan.numeric["x"].missing == scan.train_rows < 400
    assert wrote.train_rows == scan.train_rows


def test_generated_faults_are_rejected_exactly(tmp_path: Path) -> None:
    s = generate_table(tmp_path / "g.parquet", 5000, seed=3, chunk_rows=1200)
    assert set(s.faults) <= set(FAULTS) and sum(s.faults.values()) > 0
    from mlops_ray.config import parse_config
    from mlops_ray.data.schema import schema_from_spec

    cfg = parse_config({"name": "g", "data": {"source": {"path": "x"}, "target": "label", "schema": {"columns": [
        *[{"name": f"num_{i}", "type": "float", **({"min": 0} if i == 1 else {})} for i in range(10)],
        {"name": "cat_0", "type": "category", "allowed": ["north", "south", "east", "west", "central"]},
        {"name": "cat_1", "type": "category"}, {"name": "cat_2", "type": "category"},
        {"name": "label", "type": "int", "nullable": False}]}}})
    table = pq.read_table(tmp_path / "g.parquet")
    schema = schema_from_spec(cfg.data, table.schema, "g.parquet")
    scan = blocks.merge_scans([blocks.scan_block(b, schema, 0, 0.2) for b in table.to_batches(max_chunksize=2000)
                               for b in [pa.Table.from_batches([b])]])
    assert scan.rows == 5000 and scan.rejected == s.faults

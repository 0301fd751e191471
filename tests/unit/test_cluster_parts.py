"""Cutting a Parquet input into parts, and reading/scoring/writing one part (pyarrow only, no Ray)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from mlops_ray.cluster.parts import Part, Segment, inspect_input, plan_parts, score_part, target_part_rows
from mlops_ray.exceptions import DataError


def _shape(parts: list[Part]) -> list[list[tuple[str, tuple[int, ...], int]]]:
    return [[(s.path, s.row_groups, s.rows) for s in p.segments] for p in parts]


def test_plan_parts_cuts_big_files_at_row_groups() -> None:
    parts = plan_parts(["a", "b"], [[100, 100, 100, 50], [400, 0, 30]], target_rows=200)
    assert _shape(parts) == [
        [("a", (0, 1), 200)],
        [("a", (2, 3), 150), ("b", (0,), 400)],  # a row group is never split, so a part may run over
        [("b", (2,), 30)],  # the last part may be short; empty row groups are skipped
    ]
    assert [p.index for p in parts] == [0, 1, 2]
    assert sum(p.rows for p in parts) == 100 * 3 + 50 + 400 + 30


def test_plan_parts_packs_small_files_together() -> None:
    files = [f"f{i}" for i in range(1000)]
    parts = plan_parts(files, [[10]] * 1000, target_rows=2500)
    assert len(parts) == 4 and [p.rows for p in parts] == [2500, 2500, 2500, 2500]
    assert [s.path for p in parts for s in p.segments] == files  # every file once, in order
    assert plan_parts(["e"], [[]], 10) == []  # an empty file has nothing to score


def test_target_part_rows() -> None:
    assert target_part_rows(5_000_000, workers=2, batch_size=65_536) == 156_250  # sixteen parts per actor
    assert target_part_rows(1_000, workers=2, batch_size=256) == 256  # never below one batch
    assert target_part_rows(0, workers=4, batch_size=1) == 1


def _write(folder: Path, name: str, df: pd.DataFrame, row_group_size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / name, row_group_size=row_group_size)


def test_inspect_input_reads_footers_only(tmp_path: Path) -> None:
    df = pd.DataFrame({"row_id": np.arange(250), "x": np.linspace(0, 1, 250)})
    _write(tmp_path / "in", "b.parquet", df.iloc[100:], row_group_size=100)
    _write(tmp_path / "in", "a.parquet", df.iloc[:100], row_group_size=64)
    (tmp_path / "in" / "_SUCCESS").write_text("")  # written by Spark and friends: skipped, as are .hidden files
    inp = inspect_input(str(tmp_path / "in"))
    assert [Path(f).name for f in inp.files] == ["a.parquet", "b.parquet"]
    assert inp.row_group_rows == [[64, 36], [100, 50]] and inp.rows == 250
    assert inp.columns == ["row_id", "x"]
    assert inspect_input(str(tmp_path / "in" / "a.parquet")).rows == 100  # a single file works too


def test_inspect_input_bad_inputs_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no such file or folder: .*nowhere"):
        inspect_input(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Parquet files"):
        inspect_input(str(tmp_path / "empty"))
    _write(tmp_path / "mixed", "a.parquet", pd.DataFrame({"x": [1.0]}), 10)
    (tmp_path / "mixed" / "notes.csv").write_text("x\n1\n")
    with pytest.raises(DataError, match=r"notes\.csv"):
        inspect_input(str(tmp_path / "mixed"))


def _add_score(table: pa.Table) -> pa.Table:
    return table.append_column("score", pa.compute.multiply(table["x"], 2.0))


def test_score_part_writes_one_whole_file(tmp_path: Path) -> None:
    df = pd.DataFrame({"row_id": np.arange(300), "x": np.arange(300, dtype=float), "extra": "unused"})
    _write(tmp_path / "in", "a.parquet", df, row_group_size=100)
    fs = pafs.LocalFileSystem()
    out = tmp_path / "out"
    out.mkdir()
    part = Part(index=7, segments=(Segment(str(tmp_path / "in" / "a.parquet"), (1, 2), 200),))
    n = score_part(part, _add_score, columns=["row_id", "x"], batch_size=64, output_dir=str(out),
                   input_fs=fs, output_fs=fs)
    assert n == 200
    assert sorted(p.name for p in out.iterdir()) == ["part-00007.parquet"]  # no temporary file left
    got = pd.read_parquet(out / "part-00007.parquet")
    assert list(got.columns) == ["row_id", "x", "score"]  # only the columns asked for are read
    assert got["row_id"].tolist() == list(range(100, 300))
    assert (got["score"] == got["x"] * 2).all()


def test_a_failing_part_leaves_no_file(tmp_path: Path) -> None:
    df = pd.DataFrame({"row_id": np.arange(300), "x": np.arange(300, dtype=float)})
    _write(tmp_path / "in", "a.parquet", df, row_group_size=100)
    fs = pafs.LocalFileSystem()
    out = tmp_path / "out"
    out.mkdir()
    calls = []

    def fail_on_second(table: pa.Table) -> pa.Table:
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise DataError("bad batch")
        return _add_score(table)

    part = Part(index=0, segments=(Segment(str(tmp_path / "in" / "a.parquet"), (0, 1, 2), 300),))
    with pytest.raises(DataError, match="bad batch"):
        score_part(part, fail_on_second, columns=["row_id", "x"], batch_size=100, output_dir=str(out),
                   input_fs=fs, output_fs=fs)
    assert list(out.iterdir()) == []  # the first batch was written to a hidden file, now gone

    _write(tmp_path / "in2", "b.parquet", df.drop(columns=["x"]), 100)
    with pytest.raises(DataError, match=r"b\.parquet lacks column\(s\) \['x'\]"):
        score_part(Part(1, (Segment(str(tmp_path / "in2" / "b.parquet"), (0,), 100),)), _add_score,
                   columns=["row_id", "x"], batch_size=100, output_dir=str(out), input_fs=fs, output_fs=fs)
    assert list(out.iterdir()) == []


def test_a_part_spanning_files_conforms_small_type_differences(tmp_path: Path) -> None:
    a = pd.DataFrame({"row_id": np.arange(5, dtype=np.int64), "x": np.ones(5)})
    b = pd.DataFrame({"row_id": np.arange(5, 8, dtype=np.int32), "x": np.ones(3)})  # another writer's ints
    c = pd.DataFrame({"row_id": ["z"], "x": [1.0]})  # not a number at all
    for name, df in (("a", a), ("b", b), ("c", c)):
        _write(tmp_path / "in", f"{name}.parquet", df, 100)
    fs = pafs.LocalFileSystem()
    out = tmp_path / "out"
    out.mkdir()
    seg = {n: Segment(str(tmp_path / "in" / f"{n}.parquet"), (0,), r) for n, r in (("a", 5), ("b", 3), ("c", 1))}
    n = score_part(Part(0, (seg["a"], seg["b"])), _add_score, columns=["row_id", "x"], batch_size=10,
                   output_dir=str(out), input_fs=fs, output_fs=fs)
    got = pd.read_parquet(out / "part-00000.parquet")
    assert n == 8 and got["row_id"].tolist() == list(range(8)) and str(got["row_id"].dtype) == "int64"
    with pytest.raises(DataError, match=r"c\.parquet: its columns do not match"):
        score_part(Part(1, (seg["a"], seg["c"])), _add_score, columns=["row_id", "x"], batch_size=10,
                   output_dir=str(out), input_fs=fs, output_fs=fs)
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet"]

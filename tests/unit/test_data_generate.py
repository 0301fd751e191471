"""The synthetic table generator: sizes, formats, chunking, determinism, a real signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_ray.cli import main
from mlops_ray.data.generate import CATEGORICAL, MISSING_RATE, NUMERIC, TARGET, generate_table
from mlops_ray.exceptions import DataError


def test_files_and_formats(tmp_path: Path) -> None:
    s = generate_table(tmp_path / "pq", 3001, seed=1, files=3, chunk_rows=700)
    assert [Path(f).name for f in s.files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert sum(pq.read_metadata(f).num_rows for f in s.files) == 3001
    df = pd.read_parquet(tmp_path / "pq")
    assert list(df.columns) == [*NUMERIC, *CATEGORICAL, TARGET]
    assert abs(df["num_3"].isna().mean() - MISSING_RATE) < 0.015
    c = generate_table(tmp_path / "t.csv", 500, seed=1, fmt="csv")
    assert len(pd.read_csv(c.files[0])) == 500


def test_deterministic_and_has_signal(tmp_path: Path) -> None:
    a = generate_table(tmp_path / "a.parquet", 4000, seed=5)
    b = generate_table(tmp_path / "b.parquet", 4000, seed=5)
    assert a.faults == b.faults
    assert len(a.faults) == 4 and max(a.faults.values()) - min(a.faults.values()) <= 1  # equal shares, exactly
    da, db = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(da, db)
    d = da.dropna(subset=["num_0", TARGET])
    d = d[np.isfinite(d["num_0"]) & (d["num_0"].abs() < 5)]
    assert np.corrcoef(d["num_0"], d[TARGET])[0, 1] > 0.2


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="rows >= files"):
        generate_table(tmp_path / "x", 2, files=3)


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    assert main(["data", "generate", "--rows", "1000", "--out", str(out), "--files", "2", "--format", "csv"]) == 0
    assert "wrote 1,000 rows in 2 csv file(s)" in capsys.readouterr().out
    assert len(list(out.glob("*.csv"))) == 2
    assert main(["data", "generate", "--rows", "10"]) == 1
    assert "--out PATH" in capsys.readouterr().err

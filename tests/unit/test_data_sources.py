"""Which files a data source names, and their one format (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_ray.data.sources import resolve_files
from mlops_ray.exceptions import DataError


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "mixed"
    d.mkdir()
    pd.DataFrame({"x": [1, 2]}).to_csv(d / "good.csv", index=False)
    pd.DataFrame({"x": [3]}).to_parquet(d / "a.parquet")
    (d / "_SUCCESS").write_text("")
    return d


def test_formats_are_never_mixed(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    with pytest.raises(DataError, match="mixes CSV and Parquet"):
        resolve_files(str(d))
    # An explicit format does not read the other format's files as its own (a .parquet parsed as CSV).
    with pytest.raises(DataError, match=r"format is csv but .* extension says otherwise.*a\.parquet"):
        resolve_files(str(d), "csv")
    (d / "a.parquet").unlink()
    (d / "part-0000").write_text("x\n5\n")  # no extension: the explicit format decides
    files, fmt = resolve_files(str(d), "csv")
    assert fmt == "csv" and [Path(f).name for f in files] == ["good.csv", "part-0000"]
    assert resolve_files(str(d / "good.csv")) == ([str(d / "good.csv")], "csv")

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


def test_a_column_empty_in_one_file_takes_the_type_of_the_others() -> None:
    import pyarrow as pa

    from mlops_ray.data.sources import widest_type

    # Whatever the files' order: the empty file's column was left out when it came first.
    assert widest_type([pa.null(), pa.int64()]) == widest_type([pa.int64(), pa.null()]) == pa.int64()
    assert widest_type([pa.null(), pa.int64(), pa.float64()]) == pa.float64()
    assert widest_type([pa.null(), pa.null()]) == pa.null()


def test_label_codes_in_one_file_and_names_in_another_are_refused(tmp_path: Path) -> None:
    from mlops_ray.data.sources import check_consistent_kinds, resolve_source
    from mlops_ray.exceptions import SchemaError

    d = tmp_path / "parts"
    d.mkdir()
    pd.DataFrame({"x": [1.0, 2.0], "color": ["red", "blue"], "y": [0, 1]}).to_parquet(d / "part-0.parquet")
    pd.DataFrame({"x": [3.0], "color": [2], "y": [1]}).to_parquet(d / "part-1.parquet")
    pd.DataFrame({"x": [4.0], "color": [None], "y": [0]}).to_parquet(d / "part-2.parquet")  # all empty: no kind
    source = resolve_source(None, str(d), "auto")
    assert source.text_and_numbers() == {"color": ([str(d / "part-0.parquet")], [str(d / "part-1.parquet")])}
    with pytest.raises(SchemaError, match=r"column 'color' is text in part-0\.parquet but numbers in "
                                          r"part-1\.parquet: .*declare the column in data\.schema\.columns"):
        check_consistent_kinds(source)
    (d / "part-1.parquet").unlink()
    check_consistent_kinds(resolve_source(None, str(d), "auto"))  # text and empty agree

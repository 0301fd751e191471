"""CSV reading without Ray: lines of the wrong field count become rows of their own, or an error."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pytest

from mlops_ray.data.csv_reader import FILE, RAW_LINE, read_csv_file
from mlops_ray.data.schema import REJECT_REASON, Column, Schema, validate_batch
from mlops_ray.exceptions import DataError

TEXT = 'a,b,c\n1,2,3\n4,5\n"x,y",1,2\n6,7,8,9\n10,11,12\n'


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_malformed_lines_are_rows_of_their_own(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(TEXT.encode()) if name.endswith(".gz") else TEXT.encode())
    t = pa.concat_tables(read_csv_file(str(path), ["a", "b", "c"], "reject"))
    assert t.num_rows == 5 and t.schema.names == ["a", "b", "c", RAW_LINE, FILE]
    good = t.filter(pa.compute.is_null(t.column(RAW_LINE)))
    assert good.column("a").to_pylist() == ["1", "x,y", "10"]  # a quoted comma is one field, not a bad line
    bad = t.filter(pa.compute.is_valid(t.column(RAW_LINE)))
    assert bad.column(RAW_LINE).to_pylist() == ["4,5", "6,7,8,9"]
    assert bad.column(FILE).to_pylist() == [str(path)] * 2 and bad.column("a").null_count == 2

    schema = Schema((Column("a", "str"), Column("b", "int"), Column("c", "int")), target="c")
    clean, rejects = validate_batch(t, schema)
    assert clean.num_rows == 3 and rejects.column(REJECT_REASON).to_pylist() == ["malformed_line"] * 2


def test_error_mode_names_the_file_and_quotes_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(TEXT)
    with pytest.raises(DataError, match=r"t\.csv cannot be read: .*Expected 3 columns, got 2: 4,5.*malformed_lines"):
        list(read_csv_file(str(path), ["a", "b", "c"], "error"))

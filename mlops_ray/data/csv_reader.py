"""Reading CSV files as text batches, with lines of the wrong field count kept as rejects, not errors.

Ray Data's ``read_csv`` either fails the whole file on such a line or (with an invalid-row handler)
drops it without a trace. Here each file is read by one task that streams it with pyarrow and turns
every skipped line into a row of its own: the input columns null, ``_raw_line`` holding the line's
text and ``_file`` the file. Validation rejects those rows as ``malformed_line`` (schema.py), so they
are counted, reconciled and written to ``rejects.parquet`` like any other bad row (Spark's
PERMISSIVE mode, without guessing which field is which).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from mlops_ray.exceptions import DataError

if TYPE_CHECKING:
    import ray.data

RAW_LINE = "_raw_line"
FILE = "_file"
MalformedLines = Literal["reject", "error"]

# Arrow reads only an empty field as missing: its default list ("NA", "null", "n/a", "nan", ...) would turn a
# category "NA" into a missing value. Number columns take pandas' null words as missing (schema.NULL_WORDS).
CSV_NULL_VALUES = [""]


def _with_line_columns(table: pa.Table, raw: pa.Array, file: pa.Array) -> pa.Table:
    return table.append_column(RAW_LINE, raw).append_column(FILE, file)


def malformed_rows(names: list[str], lines: list[str], path: str) -> pa.Table:
    """One row per malformed line: every input column null, the line's text and its file."""
    n = len(lines)
    table = pa.table({name: pa.nulls(n, pa.string()) for name in names})
    return _with_line_columns(table, pa.array(lines, pa.string()), pa.array([path] * n, pa.string()))


def read_csv_file(path: str, columns: list[str], malformed: MalformedLines, delimiter: str = ",") -> Iterator[pa.Table]:
    """Stream one CSV file as tables of text columns; malformed lines as rows of their own (or an error)."""
    import pyarrow.csv as pacsv

    bad: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        if malformed == "error":
            return "error"
        bad.append(row.text)
        return "skip"

    text = {name: pa.string() for name in columns}
    try:
        parse = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid)
        reader = pacsv.open_csv(path, parse_options=parse,
                                convert_options=pacsv.ConvertOptions(column_types=text, strings_can_be_null=True,
                                                                     null_values=CSV_NULL_VALUES))
        names = reader.schema.names
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            n = batch.num_rows
            yield _with_line_columns(pa.Table.from_batches([batch]), pa.nulls(n, pa.string()),
                                     pa.nulls(n, pa.string()))
            if bad:  # the lines the parser skipped while producing this batch (and any it read ahead)
                lines = bad.copy()
                del bad[:len(lines)]  # the reader's thread may append meanwhile: remove only what was taken
                yield malformed_rows(names, lines, path)
        if bad:
            yield malformed_rows(names, bad, path)
    except (pa.ArrowInvalid, OSError) as e:
        hint = (" (data.schema.malformed_lines: error; set it to reject to quarantine such lines instead)"
                if malformed == "error" else "")
        raise DataError(f"CSV file {path} cannot be read: {e}{hint}") from e


def _read_files(batch: pa.Table, columns: list[str], malformed: MalformedLines, delimiter: str) -> Iterator[pa.Table]:
    for path in batch.column("path").to_pylist():
        yield from read_csv_file(path, columns, malformed, delimiter)


def read_csv_dataset(files: list[str], columns: list[str], malformed: MalformedLines,
                     delimiter: str = ",") -> ray.data.Dataset:
    """A Dataset of the files' rows as text, one read task per file (fused with the map that follows)."""
    import ray.data

    paths = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
    return paths.map_batches(_read_files, batch_format="pyarrow", batch_size=1,
                             fn_kwargs={"columns": columns, "malformed": malformed, "delimiter": delimiter})


__all__ = ["FILE", "RAW_LINE", "MalformedLines", "malformed_rows", "read_csv_dataset", "read_csv_file"]

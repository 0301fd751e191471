"""Input resolution: bundled scikit-learn sets, and CSV/Parquet files (a file, a folder or a glob).

Everything here runs on the driver before any Ray work: find the files, read each one's header or
footer, and check the declared schema against it, so that a missing column or a corrupt file fails
at once with the file's name.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from mlops_ray.data.csv_reader import CSV_NULL_VALUES
from mlops_ray.data.schema import mostly_numeric
from mlops_ray.exceptions import DataError, SchemaError

Format = Literal["csv", "parquet"]
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
BUNDLED_TARGET = "target"


@dataclass
class Source:
    """Resolved input: a bundled frame, or files of one format with their Arrow schemas."""

    description: str
    format: Literal["bundled", "csv", "parquet"]
    files: list[str] = field(default_factory=list)
    schemas: dict[str, pa.Schema] = field(default_factory=dict)  # file (or bundled name) -> schema
    frame: pd.DataFrame | None = None
    delimiter: str = ","  # CSV only

    @property
    def unified_schema(self) -> pa.Schema:
        """Every file's columns (first-seen order), each with the widest type any file gives it.

        What an undeclared schema is inferred from: whole numbers in one file and decimals in another
        make a float column, whatever the files' order (the first file alone would reject the decimals).
        """
        types: dict[str, list[pa.DataType]] = {}
        for schema in self.schemas.values():
            for f in schema:
                types.setdefault(f.name, []).append(f.type)
        return pa.schema([pa.field(name, widest_type(ts)) for name, ts in types.items()])

    def text_and_numbers(self) -> dict[str, tuple[list[str], list[str]]]:
        """Columns that are text in some files and numbers in others: column -> (text files, number files).

        Inference would read them as text, so ``1`` in one file and ``"red"`` in another become two
        categories; label codes in one file beside names in another are a mistake to show, not to merge.
        """
        kinds: dict[str, tuple[list[str], list[str]]] = {}
        for where, schema in self.schemas.items():
            for f in schema:
                text, numbers = kinds.setdefault(f.name, ([], []))
                if _is_text(f.type):
                    text.append(where)
                elif _is_number(f.type):
                    numbers.append(where)
        return {c: k for c, k in kinds.items() if k[0] and k[1]}

    def all_columns(self) -> list[str]:
        names: list[str] = []
        for s in self.schemas.values():
            names += [n for n in s.names if n not in names]
        return names

    def total_bytes(self) -> int:
        if self.frame is not None:
            return int(self.frame.memory_usage(deep=True).sum())
        return sum(os.path.getsize(f) for f in self.files)


def widest_type(types: list[pa.DataType]) -> pa.DataType:
    """One type that holds every value of ``types``: text over numbers, float over int, int over bool."""
    types = [t for t in types if not pa.types.is_null(t)] or types  # a file where the column is all empty
    if all(t == types[0] for t in types):
        return types[0]
    if any(_is_text(t) for t in types):
        return pa.string()
    if all(pa.types.is_integer(t) or pa.types.is_boolean(t) for t in types):
        return pa.int64()
    if all(_is_number(t) for t in types):
        return pa.float64()
    return types[0]  # e.g. timestamps: inference refuses the type, naming the column


def check_consistent_kinds(source: Source) -> None:
    """An inferred column must be text in every file or numbers in every file (see ``Source.text_and_numbers``)."""
    mixed = source.text_and_numbers()
    if not mixed:
        return
    col, (text, numbers) = next(iter(mixed.items()))
    others = f" (and {len(mixed) - 1} more column(s): {sorted(mixed)[:5]})" if len(mixed) > 1 else ""
    raise SchemaError(
        f"column {col!r} is text in {_files(text)} but numbers in {_files(numbers)}{others}: label codes in "
        "one file and names in another would become different categories. Make the files agree, or declare "
        "the column in data.schema.columns (type: category, or int/float; values that do not fit are rejected)")


def _files(files: list[str]) -> str:
    names = [os.path.basename(f) for f in files]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)


def _is_number(t: pa.DataType) -> bool:
    """A type a float column holds: integers, floats, decimals, booleans."""
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)


def load_bundled(name: str) -> pd.DataFrame:
    """A scikit-learn bundled data set as one frame, its label in column ``target`` (no download)."""
    from sklearn import datasets

    loaders = {"breast_cancer": datasets.load_breast_cancer, "iris": datasets.load_iris,
               "wine": datasets.load_wine, "digits": datasets.load_digits, "diabetes": datasets.load_diabetes}
    if name not in loaders:
        raise DataError(f"unknown bundled data set {name!r}; choose one of {', '.join(loaders)}")
    bunch = loaders[name](as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    if BUNDLED_TARGET not in frame.columns:  # pragma: no cover - every loader above names it "target"
        frame[BUNDLED_TARGET] = bunch.target
    return frame.reset_index(drop=True)


def _format_of(path: str) -> Format | None:
    low = path.lower()
    for ext, fmt in _EXTENSIONS.items():
        if low.endswith(ext):
            return fmt
    return None


def resolve_files(path: str, fmt: Literal["auto", "csv", "parquet"] = "auto") -> tuple[list[str], Format]:
    """The data files that ``path`` names (file, folder, or glob), sorted, and their one format."""
    if any(ch in path for ch in "*?["):
        files = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
        where = f"glob {path!r}"
    elif os.path.isdir(path):
        files = sorted(
            str(p) for p in Path(path).rglob("*")
            if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
            and (fmt != "auto" or _format_of(str(p)) is not None)
        )
        where = f"folder {path}"
    elif os.path.isfile(path):
        files = [path]
        where = f"file {path}"
    else:
        raise DataError(f"data.source.path {path!r} does not exist; give a file, a folder or a glob "
                        "(relative paths resolve against the config file's folder)")
    if not files:
        raise DataError(f"no data files found in {where}; expected .csv or .parquet files")
    if fmt != "auto":
        other = [f for f in files if _format_of(f) not in (None, fmt)]
        if other:  # a .parquet file read as CSV fails with bytes on the terminal; say what is wrong instead
            raise DataError(f"data.source.format is {fmt} but {where} holds {len(other)} file(s) whose extension "
                            f"says otherwise, e.g. {other[:3]}; point data.source.path at one format")
        return files, fmt
    formats = {_format_of(f) for f in files}
    if None in formats:
        unknown = [f for f in files if _format_of(f) is None][:3]
        raise DataError(f"cannot tell the format of {unknown} from the extension; set data.source.format "
                        "to csv or parquet")
    if len(formats) > 1:
        raise DataError(f"{where} mixes CSV and Parquet files; point data.source.path at one format")
    return files, formats.pop()  # type: ignore[return-value]


def _skip(row: object) -> str:
    return "skip"


def read_file_schema(path: str, fmt: Format, delimiter: str = ",") -> pa.Schema:
    """The file's columns and types from its footer (Parquet) or first block (CSV)."""
    if os.path.getsize(path) == 0:
        raise DataError(f"file {path} is empty (0 bytes, not even a header); remove it or regenerate it")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.read_metadata(path)
            schema = meta.schema.to_arrow_schema()
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"Parquet file {path} is corrupt or not Parquet ({e}); remove or rewrite it") from e
        # A column with no value in the whole file reads as Arrow's null type, as an empty CSV column does:
        # the two formats then infer the same schema (the column is ignored and listed, not a feature).
        empty = _all_null_columns(meta)
        return pa.schema([pa.field(f.name, pa.null()) if f.name in empty else f for f in schema])
    import pyarrow.csv as pacsv

    try:
        # Lines of the wrong field count are the data stage's rejects (csv_reader.py), not a header problem.
        reader = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=_skip),
                                convert_options=pacsv.ConvertOptions(null_values=CSV_NULL_VALUES))
        schema = reader.schema
        try:
            first = reader.read_next_batch()
        except StopIteration:
            first = None
        reader.close()
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"CSV file {path} cannot be parsed ({e}); check its header and delimiter") from e
    if first is not None:
        # A stray "?" or "n/a" makes Arrow read a number column as text; one-hot encoding its numbers would
        # be silent nonsense. Mostly numbers: a float column, whose odd values are rejects (wrong_type).
        schema = pa.schema([pa.field(f.name, pa.float64()) if pa.types.is_string(f.type)
                            and mostly_numeric(first.column(i)) else f for i, f in enumerate(schema)])
    # A CSV is text: a date column is a category, as its text (Arrow would make it a date32 no model takes).
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_temporal(f.type) else f for f in schema])


def _all_null_columns(meta: Any) -> set[str]:
    """Top-level columns whose footer statistics say every row is null (unknown without statistics: kept)."""
    if meta.num_rows == 0 or meta.num_row_groups == 0:
        return set()
    out = set()
    for j in range(meta.num_columns):
        name = meta.schema.column(j).path
        if "." in name:  # a nested field: not a tabular feature anyway
            continue
        nulls = []
        for i in range(meta.num_row_groups):
            col = meta.row_group(i).column(j)
            stats = col.statistics
            if stats is None or not stats.has_null_count:
                break
            nulls.append(stats.null_count == meta.row_group(i).num_rows)
        else:
            if all(nulls):
                out.add(name)
    return out


def _check_names(path: str, schema: pa.Schema) -> None:
    dup = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if dup:
        raise DataError(f"{path} has the column name(s) {dup} more than once; rename them in the file")


def resolve_source(bundled: str | None, path: str | None, fmt: Literal["auto", "csv", "parquet"],
                   delimiter: str = ",") -> Source:
    """Find and inspect the input: nothing is read beyond headers and footers."""
    if bundled is not None:
        frame = load_bundled(bundled)
        schema = pa.Schema.from_pandas(frame, preserve_index=False)
        return Source(f"bundled:{bundled}", "bundled", schemas={f"bundled:{bundled}": schema}, frame=frame)
    if path is None:
        raise DataError("data.source needs 'bundled' or 'path'")
    files, resolved = resolve_files(path, fmt)
    schemas = {f: read_file_schema(f, resolved, delimiter) for f in files}
    for f, schema in schemas.items():
        _check_names(f, schema)
    return Source(path, resolved, files=files, schemas=schemas, delimiter=delimiter)

"""The resolved schema and row validation: pure pyarrow, no Ray.

``validate_batch`` splits one batch of raw rows into typed clean rows and rejected rows, each rejected
row carrying the first reason found (``<check>:<column>``, e.g. ``wrong_type:age``), so that
``len(batch) == len(clean) + len(rejected)`` always holds and reasons can be counted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_ray.data.csv_reader import FILE, RAW_LINE
from mlops_ray.exceptions import SchemaError

REJECT_REASON = "_reject_reason"
MALFORMED_LINE = "malformed_line"
ROW_HASH = "_row_hash"
# Names the stage's outputs use: an input column of the same name would be overwritten or misread.
RESERVED_COLUMNS = (REJECT_REASON, ROW_HASH, RAW_LINE, FILE)
NUMERIC_SHARE = 0.95  # text columns whose values are at least this share numbers are numbers (inference)
NUMERIC_TYPES = ("float", "int", "bool")
CATEGORICAL_TYPES = ("str", "category")
# Text that parses as a number: decimal, exponent, and the usual spellings of inf/nan.
_NUMBER_RE = r"^[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])$"
_LABEL_TYPES = {"int": pa.int64(), "bool": pa.bool_()}
TRUE_WORDS = ("true", "1", "yes", "t", "y")
FALSE_WORDS = ("false", "0", "no", "f", "n")

ColumnType = Literal["float", "int", "str", "category", "bool"]


@dataclass(frozen=True)
class Column:
    """One column as the stage checks it (declared in the config, or inferred from the data)."""

    name: str
    type: ColumnType = "float"
    required: bool = True
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES


@dataclass(frozen=True)
class Schema:
    """The feature columns and the target, in input order; ``nan`` says what a float NaN means."""

    columns: tuple[Column, ...]
    target: str
    nan: Literal["missing", "reject"] = "missing"
    unknown_columns: Literal["error", "drop"] = "drop"
    inferred: bool = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def features(self) -> list[Column]:
        return [c for c in self.columns if c.name != self.target]

    @property
    def target_column(self) -> Column:
        for c in self.columns:
            if c.name == self.target:
                return c
        raise SchemaError(f"target column {self.target!r} is not in the schema {self.names}")

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def infer_column(name: str, dtype: pa.DataType, *, is_target: bool = False) -> Column:
    """A permissive column spec from an Arrow type (used for bundled sets and undeclared schemas)."""
    if pa.types.is_boolean(dtype):
        kind: ColumnType = "bool"
    elif pa.types.is_integer(dtype):
        kind = "int"
    elif pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        kind = "float"
    elif pa.types.is_dictionary(dtype) or pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        kind = "category"
    elif pa.types.is_null(dtype):
        raise SchemaError(f"column {name!r} has no value in the input (a CSV file with a header but no rows?); "
                          "add rows, or pick another data.target")
    elif pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        raise SchemaError(f"column {name!r} is not UTF-8 text (Arrow read it as {dtype}); re-save the file as "
                          "UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    else:
        raise SchemaError(f"column {name!r} has type {dtype}, which the data stage cannot use; "
                          "declare it in data.schema.columns or drop it from the input")
    return Column(name=name, type=kind, required=True, nullable=not is_target)


# What pandas' read_csv takes for a missing value, less the NaN spellings (a float NaN, which data.schema.nan
# decides on). In a number column these are missing values; in a text column only "" is (a category "NA",
# North America say, stays a category).
NULL_WORDS = ("#N/A", "#N/A N/A", "#NA", "<NA>", "N/A", "NA", "NULL", "None", "n/a", "null")


def mostly_numeric(arr: pa.Array | pa.ChunkedArray) -> bool:
    """True when at least NUMERIC_SHARE of the present text values (not empty, not a null word) are numbers."""
    text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    text = pc.if_else(pc.is_in(text, value_set=pa.array(NULL_WORDS)), pa.scalar("", pa.string()), text)
    present = pc.sum(pc.fill_null(pc.not_equal(text, ""), False)).as_py() or 0
    numbers = pc.sum(pc.fill_null(pc.match_substring_regex(text, _NUMBER_RE), False)).as_py() or 0
    return present > 0 and numbers >= NUMERIC_SHARE * present


def is_saved_index(name: str) -> bool:
    """A pandas index saved with the data: "" (or "Unnamed: 0") in a CSV, ``__index_level_0__`` in Parquet.

    It is the row order the file was written in (often sorted by the label): never a feature.
    """
    return not name.strip() or name.startswith("__index_level_") or name.startswith("Unnamed: ")


def infer_schema(arrow_schema: pa.Schema, target: str, source: str) -> Schema:
    """Every column of ``arrow_schema`` as a permissive column; the target must be there.

    Columns without a name or without any value are left out (listed among the ignored columns).
    """
    if target not in arrow_schema.names:
        hint = "Set data.target to one of them."
        seps = [d for d in (";", "\t", "|") if any(d in n for n in arrow_schema.names)]
        if seps and len(arrow_schema.names) <= 2:  # one column whose name holds the real header
            hint = f"The file looks {seps[0]!r}-separated: set data.source.delimiter: {seps[0]!r}."
        raise SchemaError(f"target column {target!r} not found in {source}; it has {arrow_schema.names}. {hint}")
    # A column with no name (a saved pandas index) or no value in the whole first block (Arrow's null type)
    # is left out and listed among the ignored columns: neither can be a feature.
    cols = tuple(infer_column(f.name, f.type, is_target=f.name == target) for f in arrow_schema
                 if not is_saved_index(f.name) and (f.name == target or not pa.types.is_null(f.type)))
    return Schema(columns=cols, target=target, inferred=True)


def check_columns(schema: Schema, available: list[str], source: str) -> list[str]:
    """Raise SchemaError for a missing required column; returns the input columns the schema ignores."""
    reserved = [c for c in available if c in RESERVED_COLUMNS]
    if reserved:
        raise SchemaError(f"column(s) {reserved} in {source} use names the data stage reserves for its outputs "
                          f"({', '.join(RESERVED_COLUMNS)}); rename them in the input")
    missing = [c.name for c in schema.columns if c.required and c.name not in available]
    if missing:
        raise SchemaError(f"required column(s) {missing} missing in {source}; it has {available}. "
                          "Fix the file, or mark the column required: false in data.schema.")
    extra = [c for c in available if c not in schema.names]
    if extra and schema.unknown_columns == "error":
        raise SchemaError(f"column(s) {extra} in {source} are not declared in data.schema.columns; declare "
                          "them or set data.schema.unknown_columns: drop")
    return extra


# ------------------------------------------------------------------------------------------- parsing


def as_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text values as the data stage reads them: surrounding whitespace dropped, "" a missing value."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    trimmed = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def parse_numeric(arr: pa.Array, kind: str) -> tuple[pa.Array, pa.Array]:
    """(float64 values with nulls for missing, bool mask of values that are present but not numbers)."""
    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        return pc.cast(arr, pa.float64()), pa.array(np.zeros(len(arr), dtype=bool))
    if pa.types.is_boolean(t):
        return pc.cast(pc.cast(arr, pa.int8()), pa.float64()), pa.array(np.zeros(len(arr), dtype=bool))
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.float64()), pa.array(np.zeros(len(arr), dtype=bool))
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)):
        return pa.nulls(len(arr), pa.float64()), pc.is_valid(arr)
    s = as_text(arr)
    s = pc.if_else(pc.is_in(s, value_set=pa.array(NULL_WORDS)), pa.scalar(None, pa.string()), s)
    if kind == "bool":
        low = pc.utf8_lower(s)
        is_true = pc.is_in(low, value_set=pa.array(TRUE_WORDS))
        is_false = pc.is_in(low, value_set=pa.array(FALSE_WORDS))
        ok = pc.or_(is_true, is_false)
        values = pc.if_else(ok, pc.cast(is_true, pa.float64()), pa.scalar(None, pa.float64()))
        # is_in gives False (not null) for a null: a missing value is missing, not a wrong type
        return values, pc.and_(pc.is_valid(s), pc.invert(ok))
    ok = pc.fill_null(pc.match_substring_regex(s, _NUMBER_RE), False)
    try:
        values = pc.cast(pc.if_else(ok, s, pa.scalar(None, pa.string())), pa.float64())
    except pa.ArrowInvalid:  # pragma: no cover - the regex admits only what Arrow parses
        values = pa.array([_to_float(v) for v in s.to_pylist()], pa.float64())
    return values, pc.and_(pc.is_valid(s), pc.invert(ok))


def _to_float(v: str | None) -> float | None:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------- validation


class _Reasons:
    """The first reject reason per row, filled check by check."""

    def __init__(self, n: int) -> None:
        self.codes = np.zeros(n, dtype=np.int32)  # 0: clean so far
        self.labels: list[str] = [""]

    def add(self, mask: pa.Array | np.ndarray, label: str) -> None:
        m = mask if isinstance(mask, np.ndarray) else pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        hit = m & (self.codes == 0)
        if hit.any():
            self.labels.append(label)
            self.codes[hit] = len(self.labels) - 1

    def strings(self, keep: np.ndarray) -> pa.Array:
        dictionary = pa.array(self.labels, pa.string())
        return pc.take(dictionary, pa.array(self.codes[keep]))


def validate_batch(batch: pa.Table, schema: Schema) -> tuple[pa.Table, pa.Table]:
    """(clean rows typed per the schema, rejected rows as text with ``_reject_reason``)."""
    n = batch.num_rows
    reasons = _Reasons(n)
    if RAW_LINE in batch.column_names:  # a CSV line of the wrong field count (csv_reader.py): its columns are null
        reasons.add(pc.is_valid(batch.column(RAW_LINE)), MALFORMED_LINE)
    out: dict[str, pa.Array] = {}
    for col in schema.columns:
        is_target = col.name == schema.target
        if col.name not in batch.column_names:
            # Only optional columns can be absent (required ones fail in check_columns before any work).
            out[col.name] = pa.nulls(n, pa.float64() if col.is_numeric else pa.string())
            if is_target or not col.nullable:
                reasons.add(np.ones(n, dtype=bool), f"missing_value:{col.name}")
            continue
        raw = batch.column(col.name).combine_chunks()
        if col.is_numeric:
            values, wrong = parse_numeric(raw, col.type)
            reasons.add(wrong, f"wrong_type:{col.name}")
            nan = pc.fill_null(pc.is_nan(values), False)
            if schema.nan == "reject":
                reasons.add(nan, f"non_finite:{col.name}")
            values = pc.if_else(nan, pa.scalar(None, pa.float64()), values)
            reasons.add(pc.is_inf(values), f"non_finite:{col.name}")
            if col.type == "int":
                reasons.add(pc.not_equal(values, pc.floor(values)), f"wrong_type:{col.name}")
            if col.min is not None:
                reasons.add(pc.less(values, col.min), f"below_min:{col.name}")
            if col.max is not None:
                reasons.add(pc.greater(values, col.max), f"above_max:{col.name}")
            if col.allowed is not None:
                allowed = pa.array([float(v) for v in col.allowed], pa.float64())
                reasons.add(pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=allowed))),
                            f"unknown_category:{col.name}")
        else:
            values = as_text(raw)
            if col.allowed is not None:
                allowed = pa.array([str(v) for v in col.allowed], pa.string())
                reasons.add(pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=allowed))),
                            f"unknown_category:{col.name}")
        if is_target:
            reasons.add(pc.is_null(values), f"missing_target:{col.name}")
        elif not col.nullable:
            reasons.add(pc.is_null(values), f"missing_value:{col.name}")
        out[col.name] = values
    keep = reasons.codes == 0
    clean = pa.table(out)
    if not keep.all():
        clean = clean.filter(pa.array(keep))
    target = schema.target_column
    if target.type in ("int", "bool"):  # labels keep their type (1, not 1.0) once non-integers are rejected
        idx = clean.column_names.index(target.name)
        clean = clean.set_column(idx, target.name, pc.cast(clean.column(idx), _LABEL_TYPES[target.type]))
    if keep.all():
        return clean, _empty_rejects(batch)
    rejected_idx = pa.array(np.nonzero(~keep)[0])
    rejects = _as_text(batch).take(rejected_idx).append_column(REJECT_REASON, reasons.strings(~keep))
    return clean, rejects


def _as_text(batch: pa.Table) -> pa.Table:
    """Every column as text, so rejects from blocks of different types share one schema."""
    return pa.table({name: _raw_text(batch.column(name).combine_chunks()) for name in batch.column_names})


def _raw_text(arr: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_string(arr.type):
        return arr
    try:
        return pc.cast(arr, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.string())


def _empty_rejects(batch: pa.Table) -> pa.Table:
    fields = [pa.field(name, pa.string()) for name in batch.column_names] + [pa.field(REJECT_REASON, pa.string())]
    return pa.schema(fields).empty_table()


def reject_schema(input_columns: list[str]) -> pa.Schema:
    """The schema of rejects.parquet: every input column as text, plus the reason."""
    return pa.schema([pa.field(c, pa.string()) for c in input_columns] + [pa.field(REJECT_REASON, pa.string())])


def schema_from_spec(spec: Any, arrow_schema: pa.Schema, source: str) -> Schema:
    """The Schema for a ``DataSpec``: its declared columns (plus the target if undeclared), or inferred."""
    declared = spec.schema_.columns
    if not declared:
        inferred = infer_schema(arrow_schema, spec.target, source)
        return Schema(inferred.columns, spec.target, nan=spec.schema_.nan, unknown_columns="drop", inferred=True)
    cols = [Column(name=c.name, type=c.type, required=c.required, nullable=c.nullable, min=c.min, max=c.max,
                   allowed=tuple(c.allowed) if c.allowed is not None else None) for c in declared]
    names = [c.name for c in cols]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise SchemaError(f"data.schema.columns declares {dup} more than once")
    if spec.target not in names:
        if spec.target not in arrow_schema.names:
            raise SchemaError(f"target column {spec.target!r} is neither declared in data.schema.columns nor "
                              f"present in {source} (it has {arrow_schema.names})")
        cols.append(infer_column(spec.target, arrow_schema.field(spec.target).type, is_target=True))
    else:
        cols = [Column(**{**c.__dict__, "required": True, "nullable": False}) if c.name == spec.target else c
                for c in cols]
    return Schema(tuple(cols), spec.target, nan=spec.schema_.nan, unknown_columns=spec.schema_.unknown_columns)

"""Input validation against a model's input schema (pure): every bad request becomes a 4xx naming the field.

The ingress turns rows (any protocol) into columns of checked Python values before a replica sees
them, so a malformed request never reaches, or crashes, a model replica.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_ray.exceptions import ServeError


class RequestError(ServeError):
    """A request the server cannot answer: carries the HTTP status and the offending field, if any."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field, "status": self.status}


@dataclass(frozen=True)
class InputSchema:
    """The raw input columns a model takes: name -> "double" | "string", and which may be null."""

    columns: tuple[str, ...]
    types: dict[str, str]
    nullable: dict[str, bool] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)  # "int" / "bool" numeric columns (as trained); else float

    @classmethod
    def from_features(cls, features: Any) -> InputSchema:
        """From a fitted FeaturePipeline: a column may be null when the pipeline imputes it."""
        types = features.input_types()
        nullable = {f.name: f.fill is not None for f in features.numeric}
        nullable.update({c.name: c.fill is not None for c in features.categorical})
        raw = {f.name: f.raw_type for f in features.numeric if f.raw_type != "float"}
        return cls(columns=tuple(types), types=dict(types), nullable=nullable, raw=raw)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "types": self.types, "nullable": self.nullable, "raw": self.raw}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSchema:
        return cls(columns=tuple(d["columns"]), types=dict(d["types"]), nullable=dict(d.get("nullable", {})),
                   raw=dict(d.get("raw", {})))

    def check(self, v: Any, col: str, row: int) -> Any:
        """One value of column ``col``: checked and converted (a float for numbers), or a 422 naming it."""
        return _check_value(v, col, self.types[col], self.nullable.get(col, False), row, self.raw.get(col, "float"))


Columns = dict[str, list[Any]]


def decode_body(raw: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """The body as sent before ``Content-Encoding`` (gzip or deflate); the size limit holds after inflating."""
    enc = (encoding or "identity").strip().lower()
    if enc == "identity":
        return raw
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise RequestError(415, f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none")
    # A small compressed body can inflate to gigabytes: never inflate past the limit.
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if "gzip" in enc else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as e:
        raise RequestError(400, f"request body is not valid {enc} data: {e}") from e
    if len(out) > max_bytes:
        raise RequestError(413, f"request body inflates to more than {max_bytes} bytes (serve.max_body_bytes): "
                           "split the batch into smaller requests")
    if not inflater.eof:
        raise RequestError(400, f"request body is truncated {enc} data")
    return out


def parse_json(raw: bytes, max_bytes: int) -> Any:
    """The request body as JSON; 413 when over ``max_bytes``, 400 when malformed."""
    if len(raw) > max_bytes:
        raise RequestError(413, f"request body is {len(raw)} bytes; the limit is {max_bytes} "
                           "(serve.max_body_bytes): split the batch into smaller requests")
    if not raw.strip():
        raise RequestError(400, "empty request body: send a JSON object")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as e:
        raise RequestError(400, f"request body is not UTF-8 text: {e}") from e
    except json.JSONDecodeError as e:
        raise RequestError(400, f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    except RecursionError:
        raise RequestError(400, "JSON nested too deeply to read") from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits (Python's int conversion limit)
        detail = str(e).split("; use sys.set_int_max_str_digits")[0]  # Python's advice is not the client's
        raise RequestError(400, f"JSON value cannot be read: {detail}") from e


def _check_count(n: int, max_rows: int) -> None:
    if n == 0:
        raise RequestError(422, "empty batch: send at least one row")
    if n > max_rows:
        raise RequestError(413, f"{n} rows in one request; the limit is {max_rows} (serve.max_rows_per_request)")


def _check_names(names: Any, schema: InputSchema, where: str) -> None:
    got = set(names)
    expected = set(schema.columns)
    if got == expected:
        return
    missing = [c for c in schema.columns if c not in got]
    extra = sorted(str(c) for c in got - expected)
    parts = []
    if missing:
        parts.append(f"missing feature(s) {missing}")
    if extra:
        parts.append(f"unknown feature(s) {extra}")
    raise RequestError(422, f"{where}: {' and '.join(parts)}; the model takes {list(schema.columns)}",
                       field=(missing or extra)[0])


def _check_value(v: Any, col: str, kind: str, nullable: bool, row: int, raw: str = "float") -> Any:
    if kind == "double":
        if raw == "bool" and isinstance(v, bool):  # the MLflow signature's boolean: true/false (or 0/1)
            return float(v)
        if isinstance(v, bool) or not isinstance(v, int | float):
            if v is None:
                if nullable:
                    return math.nan
                raise RequestError(422, f"feature {col!r} (row {row}) is null; this model needs a value", col)
            raise RequestError(422, f"feature {col!r} (row {row}) must be a number, got {v!r}", col)
        try:
            v = float(v)
        except OverflowError:  # a JSON integer beyond float64: bad input, not a server fault
            raise RequestError(422, f"feature {col!r} (row {row}) is an integer too large for a 64-bit float",
                               col) from None
        if not math.isfinite(v):
            if math.isnan(v) and nullable:
                return v
            raise RequestError(422, f"feature {col!r} (row {row}) is {v}; only finite numbers are allowed", col)
        if raw == "int" and not v.is_integer():  # as the data stage rejects it (wrong_type) and MLflow's "long"
            raise RequestError(422, f"feature {col!r} (row {row}) is an integer feature, got {v:g}", col)
        if raw == "bool" and v not in (0.0, 1.0):
            raise RequestError(422, f"feature {col!r} (row {row}) is a boolean feature: send true/false (or 0/1), "
                               f"got {v:g}", col)
        return v
    if isinstance(v, str):
        return v
    if v is None and nullable:
        return None
    if v is None:
        raise RequestError(422, f"feature {col!r} (row {row}) is null; this model needs a value", col)
    raise RequestError(422, f"feature {col!r} (row {row}) must be a string, got {v!r}", col)


def validate_records(records: Any, schema: InputSchema, max_rows: int) -> Columns:
    """Rows as objects ({feature: value}) -> checked columns."""
    if not isinstance(records, list):
        raise RequestError(400, f"expected a list of rows, got {type(records).__name__}")
    _check_count(len(records), max_rows)
    cols: Columns = {c: [] for c in schema.columns}
    expected = set(schema.columns)
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise RequestError(422, f"row {i} is a {type(rec).__name__}; expected an object mapping feature "
                               "names to values")
        if len(rec) != len(expected) or rec.keys() != expected:
            _check_names(rec.keys(), schema, f"row {i}")
        for c in schema.columns:
            cols[c].append(schema.check(rec[c], c, i))
    return cols


def validate_positional(rows: Any, schema: InputSchema, max_rows: int, columns: list[Any] | None = None) -> Columns:
    """Rows as lists, in ``columns`` order (default: the schema's order) -> checked columns."""
    if not isinstance(rows, list):
        raise RequestError(400, f"expected a list of rows, got {type(rows).__name__}")
    names = list(columns) if columns is not None else list(schema.columns)
    if columns is not None:
        if len(set(names)) != len(names):
            raise RequestError(422, f"duplicate column names in {names}")
        _check_names(names, schema, "columns")
    _check_count(len(rows), max_rows)
    cols: Columns = {c: [] for c in schema.columns}
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise RequestError(422, f"row {i} must be a list of {len(names)} values in the order {names}, "
                               f"got {row!r:.200}")
        for c, v in zip(names, row, strict=True):
            cols[c].append(schema.check(v, c, i))
    return cols


def validate_columnar(data: Any, schema: InputSchema, max_rows: int) -> Columns:
    """Columns as {feature: [values]} -> checked columns."""
    if not isinstance(data, dict):
        raise RequestError(400, f"expected an object mapping feature names to lists, got {type(data).__name__}")
    _check_names(data.keys(), schema, "inputs")
    lengths = {c: len(v) if isinstance(v, list) else -1 for c, v in data.items()}
    bad = [c for c, n in lengths.items() if n < 0]
    if bad:
        raise RequestError(422, f"feature {bad[0]!r} must be a list of values", bad[0])
    if len(set(lengths.values())) > 1:
        raise RequestError(422, f"feature columns have different lengths {lengths}")
    _check_count(next(iter(lengths.values()), 0), max_rows)
    return {c: [schema.check(v, c, i)
                for i, v in enumerate(data[c])] for c in schema.columns}


def n_rows(cols: Columns) -> int:
    return len(next(iter(cols.values()))) if cols else 0


def check_labels(labels: list[Any], task: str, classes: Sequence[Any] | None) -> None:
    """Feedback labels must be something the model could have predicted: one of its classes, or a number."""
    for i, lab in enumerate(labels):
        if lab is None:
            raise RequestError(422, f"label {i} is null; send the true label of each request", "labels")
        if task == "classification" and classes is not None:
            from mlops_ray.monitor.logger import label_str  # the monitor's join compares labels this way

            if isinstance(lab, dict | list) or label_str(lab) not in {label_str(c) for c in classes}:
                raise RequestError(422, f"label {i} ({lab!r}) is not one of the model's classes {list(classes)}",
                                   "labels")
        elif task != "classification" and not _finite_number(lab):
            raise RequestError(422, f"label {i} ({lab!r}) must be a finite number for a regression model", "labels")


def _finite_number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False

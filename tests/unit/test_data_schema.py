"""Row validation on three-row tables: every reason, exact reconciliation, schema errors that name things."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from mlops_ray.config import parse_config
from mlops_ray.data.schema import (
    REJECT_REASON,
    Column,
    Schema,
    check_columns,
    infer_schema,
    parse_numeric,
    schema_from_spec,
    validate_batch,
)
from mlops_ray.exceptions import SchemaError


def _schema(nan: str = "missing") -> Schema:
    return Schema(
        columns=(
            Column("x", "float", min=0.0, max=10.0),
            Column("n", "int", nullable=False),
            Column("color", "category", allowed=("red", "blue")),
            Column("y", "int", nullable=False),
        ),
        target="y", nan=nan,  # type: ignore[arg-type]
    )


def _reasons(rejects: pa.Table) -> list[str]:
    return rejects.column(REJECT_REASON).to_pylist()


def test_clean_rows_are_typed_and_kept() -> None:
    batch = pa.table({"x": ["1.5", " 2 ", None], "n": [1, 2, 3], "color": ["red", "blue", None], "y": [0, 1, 1]})
    clean, rejects = validate_batch(batch, _schema())
    assert clean.num_rows == 3 and rejects.num_rows == 0
    assert clean.column("x").to_pylist() == [1.5, 2.0, None]
    assert clean.schema.field("x").type == pa.float64()
    assert clean.column("y").type == pa.int64()  # an int label stays an int


@pytest.mark.parametrize(
    ("column", "values", "reason"),
    [
        ("x", ["1", "abc", "2"], "wrong_type:x"),
        ("x", ["1", "inf", "2"], "non_finite:x"),
        ("x", ["1", "-0.5", "2"], "below_min:x"),
        ("x", ["1", "11", "2"], "above_max:x"),
        ("n", [1.0, 2.5, 3.0], "wrong_type:n"),
        ("n", [1.0, None, 3.0], "missing_value:n"),
        ("color", ["red", "green", "blue"], "unknown_category:color"),
        ("y", [0, None, 1], "missing_target:y"),
    ],
)
def test_each_bad_value_rejects_its_row_with_a_reason(column: str, values: list, reason: str) -> None:
    base = {"x": ["1", "2", "3"], "n": [1, 2, 3], "color": ["red", "blue", "red"], "y": [0, 1, 0]}
    base[column] = values
    clean, rejects = validate_batch(pa.table(base), _schema())
    assert clean.num_rows + rejects.num_rows == 3
    assert rejects.num_rows == 1
    assert _reasons(rejects) == [reason]
    # The rejected row keeps its values as text, so the user sees what was read.
    assert rejects.schema.field(column).type == pa.string()


def test_nan_is_missing_or_rejected_as_configured() -> None:
    batch = pa.table({"x": [1.0, math.nan, 2.0], "n": [1, 2, 3], "color": ["red"] * 3, "y": [0, 1, 0]})
    clean, rejects = validate_batch(batch, _schema("missing"))
    assert clean.num_rows == 3 and clean.column("x").null_count == 1
    clean, rejects = validate_batch(batch, _schema("reject"))
    assert clean.num_rows == 2 and _reasons(rejects) == ["non_finite:x"]


def test_float_inf_is_always_rejected() -> None:
    batch = pa.table({"x": [1.0, -math.inf, 2.0], "n": [1, 2, 3], "color": ["red"] * 3, "y": [0, 1, 0]})
    _, rejects = validate_batch(batch, _schema())
    assert _reasons(rejects) == ["non_finite:x"]


def test_first_reason_wins_so_counts_reconcile() -> None:
    batch = pa.table({"x": ["abc", "1", "2"], "n": [None, 2, 3], "color": ["green", "red", "red"], "y": [0, 1, 0]})
    clean, rejects = validate_batch(batch, _schema())
    assert clean.num_rows == 2 and _reasons(rejects) == ["wrong_type:x"]


def test_parse_numeric_from_text() -> None:
    values, wrong = parse_numeric(pa.array(["1e3", ".5", "-2", "NaN", "x1", "", None]), "float")
    assert values.to_pylist()[:3] == [1000.0, 0.5, -2.0]
    assert math.isnan(values.to_pylist()[3])
    assert wrong.to_pylist() == [False, False, False, False, True, False, False]
    bools, wrong = parse_numeric(pa.array(["true", "No", "maybe"]), "bool")
    assert bools.to_pylist() == [1.0, 0.0, None] and wrong.to_pylist() == [False, False, True]


def test_a_blank_in_a_nullable_bool_column_is_missing_not_a_wrong_type() -> None:
    """Found by review: every row with a blank bool cell was rejected as wrong_type (a float's is missing)."""
    bools, wrong = parse_numeric(pa.array(["yes", None, "NA", "n", "maybe"]), "bool")
    assert bools.to_pylist() == [1.0, None, None, 0.0, None]
    assert wrong.to_pylist() == [False, False, False, False, True]
    schema = Schema(columns=(Column("b", "bool"), Column("y", "int", nullable=False)), target="y")
    clean, rejects = validate_batch(pa.table({"b": ["True", None, "False", "x"], "y": [0, 1, 0, 1]}), schema)
    assert clean.column("b").to_pylist() == [1.0, None, 0.0] and _reasons(rejects) == ["wrong_type:b"]
    strict = Schema(columns=(Column("b", "bool", nullable=False), Column("y", "int", nullable=False)), target="y")
    _, rejects = validate_batch(pa.table({"b": ["True", None], "y": [0, 1]}), strict)
    assert _reasons(rejects) == ["missing_value:b"]


def test_missing_required_column_names_column_and_file() -> None:
    with pytest.raises(SchemaError, match=r"\['n'\] missing in data/part-1\.csv"):
        check_columns(_schema(), ["x", "color", "y"], "data/part-1.csv")


def test_unknown_columns_drop_or_error() -> None:
    assert check_columns(_schema(), ["x", "n", "color", "y", "extra"], "f.csv") == ["extra"]
    strict = Schema(_schema().columns, "y", unknown_columns="error")
    with pytest.raises(SchemaError, match="extra"):
        check_columns(strict, ["x", "n", "color", "y", "extra"], "f.csv")


def test_inferred_schema_and_missing_target() -> None:
    arrow = pa.schema([("a", pa.float64()), ("b", pa.string()), ("t", pa.int64())])
    s = infer_schema(arrow, "t", "f.parquet")
    assert [(c.name, c.type) for c in s.columns] == [("a", "float"), ("b", "category"), ("t", "int")]
    assert not s.target_column.nullable
    with pytest.raises(SchemaError, match=r"target column 'label' not found in f\.parquet"):
        infer_schema(arrow, "label", "f.parquet")


def test_schema_from_spec_adds_undeclared_target() -> None:
    cfg = parse_config({"name": "t", "data": {"source": {"path": "x.csv"}, "target": "t",
                                              "schema": {"columns": [{"name": "a", "type": "float"}]}}})
    s = schema_from_spec(cfg.data, pa.schema([("a", pa.float64()), ("t", pa.string())]), "x.csv")
    assert s.names == ["a", "t"] and s.target_column.type == "category"

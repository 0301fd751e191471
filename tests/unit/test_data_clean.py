"""Cleaning rules from training statistics, on three-row tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mlops_ray.config import CleanSpec
from mlops_ray.data.blocks import arrow_counts
from mlops_ray.data.clean import apply_plan, dropped_reasons, make_plan
from mlops_ray.data.schema import Column, Schema
from mlops_ray.data.stats import merge_column_stats, numeric_partial
from mlops_ray.exceptions import ConfigError

SCHEMA = Schema((Column("x", "float"), Column("c", "category"), Column("y", "int", nullable=False)), "y")


def _train() -> pa.Table:
    return pa.table({"x": [1.0, None, 3.0, 100.0], "c": ["a", None, "a", "b"], "y": [0, 1, 0, 1]})


def _plan(spec: dict) -> object:
    t = _train()
    x = np.asarray(t.column("x").to_numpy(zero_copy_only=False), dtype=float)
    return make_plan(SCHEMA, CleanSpec.model_validate(spec), {"x": merge_column_stats([numeric_partial(x)])},
                     {"c": arrow_counts(t.column("c"))})


@pytest.mark.parametrize(("strategy", "fill"), [("median", 3.0), ("mean", 104 / 3), ("most_frequent", 1.0)])
def test_numeric_fill_values(strategy: str, fill: float) -> None:
    plan = _plan({"numeric_missing": {"strategy": strategy}, "outliers": {"method": "none"}})
    assert plan.numeric[0].fill == pytest.approx(fill)


def test_constant_and_categorical_most_frequent() -> None:
    plan = _plan({"numeric_missing": {"strategy": "constant", "value": -1}, "outliers": {"method": "none"}})
    assert plan.numeric[0].fill == -1.0
    assert plan.categorical[0].fill == "a"
    res = apply_plan(_train(), plan)
    assert res.table.column("x").to_pylist() == [1.0, -1.0, 3.0, 100.0]
    assert res.table.column("c").to_pylist() == ["a", "a", "a", "b"]
    assert res.missing_filled == {"x": 1, "c": 1} and res.keep.all()


def test_quantile_clip_counts_outliers() -> None:
    plan = _plan({"outliers": {"method": "clip_quantile", "lower": 0.0, "upper": 0.5}})
    assert (plan.numeric[0].low, plan.numeric[0].high) == (1.0, 3.0)
    res = apply_plan(_train(), plan)
    assert res.table.column("x").to_pylist() == [1.0, 3.0, 3.0, 3.0]  # filled with the median, 100 clipped
    assert res.outliers_handled == {"x": 1}


def test_iqr_bounds() -> None:
    plan = _plan({"outliers": {"method": "iqr", "iqr_factor": 1.0}})
    q1, q3 = np.quantile([1.0, 3.0, 100.0], [0.25, 0.75])
    assert plan.numeric[0].low == pytest.approx(q1 - (q3 - q1))
    assert plan.numeric[0].high == pytest.approx(q3 + (q3 - q1))


def test_drop_rules_drop_rows_with_reasons() -> None:
    plan = _plan({"numeric_missing": {"strategy": "drop"},
                  "outliers": {"method": "drop_quantile", "lower": 0.0, "upper": 0.5}})
    res = apply_plan(_train(), plan)
    assert res.keep.tolist() == [True, False, True, False]
    assert dropped_reasons(res).to_pylist() == ["dropped_missing:x", "dropped_outlier:x"]


def test_overrides_must_name_features() -> None:
    with pytest.raises(ConfigError, match="'z'"):
        _plan({"missing": {"z": {"strategy": "mean"}}})
    with pytest.raises(ConfigError, match="needs a numeric column"):
        _plan({"missing": {"c": {"strategy": "median"}}})
    with pytest.raises(ConfigError, match="numeric feature"):
        _plan({"column_outliers": {"c": {"method": "iqr"}}})

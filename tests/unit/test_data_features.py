"""The fitted FeaturePipeline: fit from statistics, JSON round trip, arrow path == pandas path, unknowns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops_ray.config import CleanSpec, FeaturesSpec
from mlops_ray.data.blocks import arrow_counts
from mlops_ray.data.clean import apply_plan, make_plan
from mlops_ray.data.features import OTHER, FeaturePipeline
from mlops_ray.data.fitting import fit_features
from mlops_ray.data.schema import Column, Schema
from mlops_ray.data.stats import Moments, merge_column_stats, numeric_partial
from mlops_ray.exceptions import DataError

SCHEMA = Schema((Column("x", "float"), Column("c", "category"), Column("y", "int", nullable=False)), "y")
TRAIN = pa.table({"x": [1.0, None, 4.0], "c": ["a", "b", "a"], "y": [0, 1, 0]})


def _fit(features: dict | None = None) -> FeaturePipeline:
    x = np.asarray(TRAIN.column("x").to_numpy(zero_copy_only=False), dtype=float)
    raw = {"x": merge_column_stats([numeric_partial(x)])}
    plan = make_plan(SCHEMA, CleanSpec.model_validate({"outliers": {"method": "none"}}), raw,
                     {"c": arrow_counts(TRAIN.column("c"))})
    cleaned = apply_plan(TRAIN, plan).table
    moments = {"x": Moments.of(np.asarray(cleaned.column("x").to_numpy()))}
    return fit_features(SCHEMA, plan, moments, raw, {"c": arrow_counts(cleaned.column("c"))},
                        FeaturesSpec.model_validate(features or {}), "classification", [0, 1])


def test_fit_scales_with_training_statistics() -> None:
    fp = _fit()
    x = fp.numeric[0]
    assert x.fill == 2.5  # median of 1 and 4
    assert x.center == pytest.approx(np.mean([1.0, 2.5, 4.0])) and x.scale == pytest.approx(np.std([1.0, 2.5, 4.0]))
    assert fp.feature_names_out == ["x", "c=a", "c=b"]
    assert fp.input_types() == {"x": "double", "c": "string"}


def test_round_trip_and_unknown_categories(tmp_path: Path) -> None:
    fp = _fit()
    loaded = FeaturePipeline.load(fp.save(tmp_path / "features.json"))
    assert loaded == fp
    df = pd.DataFrame({"x": [None, 4.0, 1.0], "c": ["a", "zzz", None]})
    with pytest.raises(DataError, match="not found"):
        FeaturePipeline.load(tmp_path / "nope.json")
    out = loaded.transform(df)
    assert out.shape == (3, 3)
    assert out[1, 1:].tolist() == [0.0, 0.0]  # an unknown category encodes as all zeros
    assert out[2, 1:].tolist() == [1.0, 0.0]  # missing filled with the most frequent value


def test_arrow_path_equals_pandas_path() -> None:
    fp = _fit({"max_categories": 2})
    df = pd.DataFrame({"x": [np.nan, 4.0, -7.0, 2.0], "c": ["a", "zzz", None, "b"]})
    cols = fp.transform_columns({"x": df["x"].to_numpy(), "c": pa.array(["a", "zzz", None, "b"], pa.string())})
    assert np.array_equal(np.column_stack([cols[n] for n in fp.feature_names_out]), fp.transform(df))
    cols_np = fp.transform_columns({"x": df["x"].to_numpy(), "c": np.array(["a", "zzz", None, "b"], dtype=object)})
    assert np.array_equal(np.column_stack([cols_np[n] for n in fp.feature_names_out]), fp.transform(df))


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_transform_of_an_arrow_table_equals_pandas(encoding: str) -> None:
    fp = _fit({"categorical": encoding, "max_categories": 2})
    df = pd.DataFrame({"x": [np.nan, 4.0, -7.0, 2.0], "c": ["a", "zzz", None, "b"]})
    table = pa.table({"c": pa.array(["a", "zzz", None, "b"]), "x": pa.array([None, 4, -7, 2], pa.int64())})
    assert np.array_equal(fp.transform(table), fp.transform(df))
    as_text = pa.table({"x": pa.array(["1.5", "oops", "2"]), "c": pa.array(["a", "b", "a"])})
    assert fp.transform(as_text)[:, 0].tolist() == fp.transform(as_text.to_pandas())[:, 0].tolist()
    with pytest.raises(DataError, match=r"missing feature column\(s\) \['x'\]"):
        fp.transform(pa.table({"c": ["a"]}))


def test_rare_categories_map_to_other_and_ordinal() -> None:
    fp = _fit({"max_categories": 2})
    fp.categorical[0].categories = ["a"]
    fp.categorical[0].has_other = True
    assert fp.feature_names_out == ["x", "c=a", f"c={OTHER}"]
    out = fp.transform(pd.DataFrame({"x": [1.0], "c": ["b"]}))
    assert out[0, 1:].tolist() == [0.0, 1.0]
    ordinal = _fit({"categorical": "ordinal"})
    assert ordinal.transform(pd.DataFrame({"x": [1.0, 1.0], "c": ["b", "q"]}))[:, 1].tolist() == [1.0, -1.0]


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(DataError, match=r"missing feature column\(s\) \['c'\]"):
        _fit().transform(pd.DataFrame({"x": [1.0]}))


def test_serving_reads_categories_as_the_data_stage_did() -> None:
    """The data stage trims text and reads "" as missing; a served ' red ' scored as an unseen value."""
    from mlops_ray.data.features import CategoricalFeature

    fp = FeaturePipeline(numeric=[], categorical=[CategoricalFeature("c", fill="blue", categories=["red", "blue"])],
                         target="y", task="classification", classes=[0, 1])
    frame = pd.DataFrame({"c": [" red ", "", "red", None, "blue\t"]})
    want = [[1, 0], [0, 1], [1, 0], [0, 1], [0, 1]]
    assert fp.transform(frame).tolist() == want
    assert fp.transform(pa.Table.from_pandas(frame)).tolist() == want

"""Request parsing for the three protocols and validation against the model's input schema."""

from __future__ import annotations

import json
import math

import pytest

from mlops_ray.data.features import CategoricalFeature, FeaturePipeline, NumericFeature
from mlops_ray.serve import protocols
from mlops_ray.serve.validation import InputSchema, RequestError, parse_json, validate_records

FP = FeaturePipeline(numeric=[NumericFeature("a", fill=0.0), NumericFeature("b", fill=None)],
                     categorical=[CategoricalFeature("c", fill=None, categories=["x", "y"])],
                     target="t", task="classification", classes=["n", "p"])
SCHEMA = InputSchema.from_features(FP)
ROW = {"a": 1.0, "b": 2, "c": "x"}


def err(fn, *args) -> RequestError:  # type: ignore[no-untyped-def]
    with pytest.raises(RequestError) as info:
        fn(*args)
    return info.value


def test_schema_from_features() -> None:
    assert SCHEMA.columns == ("a", "b", "c")
    assert SCHEMA.types == {"a": "double", "b": "double", "c": "string"}
    assert SCHEMA.nullable == {"a": True, "b": False, "c": False}
    assert InputSchema.from_dict(SCHEMA.to_dict()) == SCHEMA


def test_v1_rows_become_typed_columns() -> None:
    cols = protocols.parse_v1({"rows": [ROW, {"a": None, "b": 3.5, "c": "y"}]}, SCHEMA, 10)
    assert cols["b"] == [2.0, 3.5] and cols["c"] == ["x", "y"] and math.isnan(cols["a"][1])
    assert protocols.parse_v1([ROW], SCHEMA, 10)["a"] == [1.0]
    assert protocols.parse_v1({"instances": [[1, 2, "x"]]}, SCHEMA, 10)["c"] == ["x"]
    with pytest.raises(RequestError, match=r"exactly one of 'rows' or 'instances', got keys \['foo', 'rows'\]"):
        protocols.parse_v1({"rows": [ROW], "foo": 1}, SCHEMA, 10)  # a misspelt key is not silently ignored


@pytest.mark.parametrize(("row", "status", "field", "text"), [
    ({"a": 1.0, "c": "x"}, 422, "b", "missing feature(s) ['b']"),
    ({**ROW, "zzz": 1}, 422, "zzz", "unknown feature(s) ['zzz']"),
    ({**ROW, "b": "two"}, 422, "b", "must be a number, got 'two'"),
    ({**ROW, "b": True}, 422, "b", "must be a number"),
    ({**ROW, "b": None}, 422, "b", "is null"),
    ({**ROW, "b": float("nan")}, 422, "b", "only finite"),
    ({**ROW, "a": float("inf")}, 422, "a", "only finite"),
    ({**ROW, "a": 10 ** 400}, 422, "a", "integer too large for a 64-bit float"),  # JSON allows it; a 4xx, not 503
    ({**ROW, "c": 3}, 422, "c", "must be a string, got 3"),
    ({**ROW, "c": None}, 422, "c", "is null"),
])
def test_bad_values_name_the_field(row: dict, status: int, field: str, text: str) -> None:
    e = err(protocols.parse_v1, {"rows": [ROW, row]}, SCHEMA, 10)
    assert (e.status, e.field) == (status, field) and text in e.message


def test_nan_is_allowed_where_the_pipeline_imputes() -> None:
    cols = protocols.parse_v1({"rows": [{**ROW, "a": float("nan")}]}, SCHEMA, 10)
    assert math.isnan(cols["a"][0])


def test_batch_size_limits() -> None:
    assert err(protocols.parse_v1, {"rows": []}, SCHEMA, 10).status == 422
    e = err(protocols.parse_v1, {"rows": [ROW] * 11}, SCHEMA, 10)
    assert e.status == 413 and "max_rows_per_request" in e.message
    assert err(protocols.parse_v1, {"rows": [ROW, 5]}, SCHEMA, 10).message.startswith("row 1 is a int")
    assert err(protocols.parse_v1, {"data": [ROW]}, SCHEMA, 10).field == "rows"


def test_body_parsing_limits_and_malformed_json() -> None:
    assert parse_json(b'{"rows": []}', 100) == {"rows": []}
    e = err(parse_json, b"x" * 2000, 1024)
    assert e.status == 413 and "max_body_bytes" in e.message
    e = err(parse_json, b'{"rows": [', 1024)
    assert e.status == 400 and "malformed JSON at line 1" in e.message
    assert err(parse_json, b"   ", 1024).status == 400
    assert err(parse_json, b"\xff\xfe", 1024).status == 400


def test_invocations_formats() -> None:
    split = {"dataframe_split": {"columns": ["c", "a", "b"], "data": [["y", 1, 2]]}}
    assert protocols.parse_invocations(split, SCHEMA, 10) == {"a": [1.0], "b": [2.0], "c": ["y"]}
    assert protocols.parse_invocations({"dataframe_records": [ROW]}, SCHEMA, 10)["c"] == ["x"]
    assert protocols.parse_invocations({"instances": [ROW]}, SCHEMA, 10)["a"] == [1.0]
    assert protocols.parse_invocations({"instances": [[1, 2, "x"]]}, SCHEMA, 10)["b"] == [2.0]
    assert protocols.parse_invocations({"inputs": {"a": [1], "b": [2], "c": ["x"]}}, SCHEMA, 10)["c"] == ["x"]
    e = err(protocols.parse_invocations, {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}, SCHEMA, 10)
    assert e.status == 422 and "missing feature(s) ['c']" in e.message
    e = err(protocols.parse_invocations, {"rows": [ROW]}, SCHEMA, 10)
    assert e.status == 400 and "dataframe_split" in e.message
    e = err(protocols.parse_invocations, {"inputs": {"a": [1, 2], "b": [2], "c": ["x"]}}, SCHEMA, 10)
    assert "different lengths" in e.message


def test_v2_per_feature_tensors_and_one_matrix() -> None:
    body = {"id": "abc", "inputs": [
        {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
        {"name": "b", "shape": [2, 1], "datatype": "INT64", "data": [[3], [4]]},
        {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]}]}
    cols, rid = protocols.parse_v2(body, SCHEMA, 10)
    assert rid == "abc" and cols == {"a": [1.0, 2.0], "b": [3.0, 4.0], "c": ["x", "y"]}
    num = InputSchema(columns=("a", "b"), types={"a": "double", "b": "double"}, nullable={})
    cols, _ = protocols.parse_v2({"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP32",
                                              "data": [1, 2, 3, 4]}]}, num, 10)
    assert cols == {"a": [1.0, 3.0], "b": [2.0, 4.0]}


@pytest.mark.parametrize(("inputs", "status", "text"), [
    ([{"name": "a", "shape": [2], "datatype": "FP64", "data": [1]}], 422, "needs 2 values"),
    ([{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["1"]}], 422, "needs a numeric datatype"),
    ([{"name": "a", "shape": [1], "data": [1]}], 400, "missing ['datatype']"),
    ([{"name": "m", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}], 422, "shape [n, 3]"),
    ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
      {"name": "a", "shape": [1], "datatype": "FP64", "data": [2]}], 422, "['a'] appear more than once"),
    ([{"name": "a", "shape": [1, 1, 1], "datatype": "FP64", "data": [1]}], 422, "is [n] or [n, 1]"),
])
def test_v2_errors(inputs: list, status: int, text: str) -> None:
    e = err(protocols.parse_v2, {"inputs": inputs}, SCHEMA, 10)
    assert e.status == status and text in e.message


def test_responses_carry_model_version_and_request_id() -> None:
    v1 = protocols.v1_response("m", "3", "rid", ["p"], [[0.2, 0.8]], ["n", "p"])
    assert v1["model_version"] == "3" and v1["request_id"] == "rid" and v1["classes"] == ["n", "p"]
    v2 = protocols.v2_response("m", "3", "rid", ["p", "n"], [[0.2, 0.8], [0.9, 0.1]], "client-1")
    assert v2["id"] == "client-1" and v2["outputs"][0]["datatype"] == "BYTES"
    assert v2["outputs"][1]["shape"] == [2, 2] and len(v2["outputs"][1]["data"]) == 4
    assert protocols.v2_response("m", "1", "r", [1.5], None, None)["outputs"][0]["datatype"] == "FP64"
    # `outputs` in the request: only those are answered; an unknown name is a 400.
    wanted = protocols.v2_requested_outputs({"inputs": [], "outputs": [{"name": "predictions"}]})
    only = protocols.v2_response("m", "3", "rid", ["p"], [[0.2, 0.8]], None, wanted)
    assert [o["name"] for o in only["outputs"]] == ["predictions"]
    assert protocols.v2_requested_outputs({"inputs": []}) is None
    bad = err(protocols.v2_requested_outputs, {"outputs": [{"name": "logits"}]})
    assert bad.status == 400 and "unknown output(s) ['logits']" in bad.message
    meta = protocols.v2_metadata("m", ["1"], SCHEMA, "classification", ["n", "p"])
    assert [i["datatype"] for i in meta["inputs"]] == ["FP64", "FP64", "BYTES"]
    json.dumps(meta)
    # The metadata declares what infer answers: integer class labels are INT64 in both.
    import numpy as np

    ints = protocols.v2_metadata("m", ["1"], SCHEMA, "classification", [np.int64(0), np.int64(1)])
    assert ints["outputs"][0]["datatype"] == "INT64" == protocols.v2_response(
        "m", "1", "r", [0, 1], [[1.0, 0.0], [0.0, 1.0]], None)["outputs"][0]["datatype"]
    assert meta["outputs"][0]["datatype"] == "BYTES"
    assert protocols.v2_metadata("m", ["1"], SCHEMA, "regression", None)["outputs"][0]["datatype"] == "FP64"


def test_records_fast_path_matches_keys_in_any_order() -> None:
    cols = validate_records([{"c": "x", "b": 1, "a": 2}], SCHEMA, 5)
    assert list(cols) == ["a", "b", "c"]

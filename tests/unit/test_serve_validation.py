"""Request parsing for the three protocols and validation against the model's input schema."""

from __future__ import annotations

import gzip
import json
import math
import zlib

import pytest

from mlops_ray.data.features import CategoricalFeature, FeaturePipeline, NumericFeature
from mlops_ray.serve import protocols
from mlops_ray.serve.validation import InputSchema, RequestError, decode_body, parse_json, validate_records

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


def test_invocations_csv() -> None:
    csv = b"c,a,b\r\ny,1,2.5\nx,,3\n"
    cols = protocols.parse_invocations_csv(csv, SCHEMA, 10)
    assert cols["a"][0] == 1.0 and math.isnan(cols["a"][1]) and cols["b"] == [2.5, 3.0] and cols["c"] == ["y", "x"]
    assert protocols.parse_invocations_csv(b"\xef\xbb\xbfa,b,c\n1,2,x\n", SCHEMA, 10)["c"] == ["x"]  # Excel's BOM
    for raw, status, text in [
        (b"a,b,c\n1,2\n", 422, "CSV line 2 has 2 fields; the header has 3"),
        (b"a,b,c\n1,high,x\n", 422, "feature 'b' (row 0) must be a number, got 'high'"),
        (b"a,b,c\n1,,x\n", 422, "feature 'b' (row 0) is null"),  # b has no imputation
        (b"a,b\n1,2\n", 422, "missing feature(s) ['c']"),
        (b"a,b,c\n", 422, "empty batch"),
        (b"", 400, "empty CSV body"),
        (b"a,b,c\n1,2,\xff\n", 400, "not UTF-8"),
    ]:
        e = err(protocols.parse_invocations_csv, raw, SCHEMA, 10)
        assert e.status == status and text in e.message, (raw, e.message)


def test_compressed_bodies_are_inflated_within_the_limit() -> None:
    body = json.dumps({"rows": [ROW] * 50}).encode()
    assert decode_body(gzip.compress(body), "gzip", 10_000) == body
    assert decode_body(zlib.compress(body), "deflate", 10_000) == body
    assert decode_body(body, None, 10_000) == body
    bomb = gzip.compress(b" " * 1_000_000)  # ~1 kB that inflates to 1 MB
    e = err(decode_body, bomb, "gzip", 10_000)
    assert e.status == 413 and "inflates to more than 10000 bytes" in e.message
    assert err(decode_body, body, "gzip", 10_000).status == 400  # says gzip, is not
    assert "truncated" in err(decode_body, gzip.compress(body)[:-12], "gzip", 10_000).message
    e = err(decode_body, body, "br", 10_000)
    assert e.status == 415 and "send gzip, deflate or none" in e.message


def test_v2_server_metadata() -> None:
    assert protocols.v2_server_metadata("1.2.3") == {"name": "mlops-ray", "version": "1.2.3", "extensions": []}


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


def test_v2_integer_tensors_take_whole_numbers() -> None:
    body = {"inputs": [{"name": "a", "shape": [2], "datatype": "INT32", "data": [3, None]},
                       {"name": "b", "shape": [2], "datatype": "INT64", "data": [1, 2.0]},
                       {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]}]}
    cols, _ = protocols.parse_v2(body, SCHEMA, 10)
    assert cols["b"] == [1.0, 2.0] and cols["a"][0] == 3.0 and math.isnan(cols["a"][1])


@pytest.mark.parametrize(("inputs", "status", "text"), [
    ([{"name": "a", "shape": [2], "datatype": "FP64", "data": [1]}], 422, "needs 2 values"),
    ([{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["1"]}], 422, "needs a numeric datatype"),
    ([{"name": "a", "shape": [1], "data": [1]}], 400, "missing ['datatype']"),
    ([{"name": "m", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}], 422, "shape [n, 3]"),
    ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
      {"name": "a", "shape": [1], "datatype": "FP64", "data": [2]}], 422, "['a'] appear more than once"),
    ([{"name": "a", "shape": [1, 1, 1], "datatype": "FP64", "data": [1]}], 422, "is [n] or [n, 1]"),
    ([{"name": "a", "shape": [2], "datatype": "INT64", "data": [1, 2.5]}], 422, "INT64 but holds 2.5"),
    ([{"name": "a", "shape": [1], "datatype": "UINT8", "data": [True]}], 422, "UINT8 but holds True"),
    ([{"name": "a", "shape": [1], "datatype": "INT64", "data": [1e300]}], 422, "INT64 but holds 1e+300"),
    ([{"name": "a", "shape": [1], "datatype": "INT8", "data": [1000]}], 422, "INT8 but holds 1000, outside"),
    ([{"name": "a", "shape": [1], "datatype": "UINT8", "data": [-1]}], 422, "UINT8 but holds -1, outside"),
    ([{"name": "a", "shape": [1], "datatype": "FP16", "data": [1e6]}], 422, "FP16 but holds 1000000.0, outside"),
    ([{"name": "a", "shape": [1], "datatype": "FP32", "data": [1e300]}], 422, "FP32 but holds 1e+300, outside"),
    ([{"name": "a", "shape": [True], "datatype": "FP64", "data": [1]}], 400, "shape must be a list"),
    ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1], "parameters": "x"}], 400,
     "inputs[0].parameters must be an object"),
])
def test_v2_errors(inputs: list, status: int, text: str) -> None:
    e = err(protocols.parse_v2, {"inputs": inputs}, SCHEMA, 10)
    assert e.status == status and text in e.message


def test_v2_request_fields_have_the_protocols_types() -> None:
    tensor = {"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}
    num = InputSchema(columns=("a", "b", "c"), types={"a": "double", "b": "double", "c": "double"}, nullable={})
    assert protocols.parse_v2({"id": "r1", "parameters": {}, "inputs": [tensor]}, num, 10)[1] == "r1"
    e = err(protocols.parse_v2, {"id": {"a": 1}, "inputs": [tensor]}, num, 10)
    assert (e.status, e.field) == (400, "id") and "'id' must be a string, got dict" in e.message
    e = err(protocols.parse_v2, {"parameters": "x", "inputs": [tensor]}, num, 10)
    assert (e.status, e.field) == (400, "parameters")
    # In range: the extremes each type holds.
    for dtype, v in [("INT8", -128), ("UINT8", 255), ("FP16", 65504.0), ("INT64", 2**63 - 1)]:
        protocols.parse_v2({"inputs": [{**tensor, "datatype": dtype, "data": [v, 0, 0]}]}, num, 10)


def test_int_and_bool_features_take_what_their_signature_says() -> None:
    """A fraction in an int feature was served (the data stage rejects it, MLflow's "long" refuses it)."""
    typed = InputSchema(columns=("k", "b"), types={"k": "double", "b": "double"}, nullable={},
                        raw={"k": "int", "b": "bool"})
    assert validate_records([{"k": 2, "b": True}, {"k": 3.0, "b": 0}], typed, 10) == {"k": [2.0, 3.0], "b": [1.0, 0.0]}
    e = err(validate_records, [{"k": 2.5, "b": True}], typed, 10)
    assert (e.status, e.field) == (422, "k") and "is an integer feature, got 2.5" in e.message
    e = err(validate_records, [{"k": 2, "b": 2}], typed, 10)
    assert (e.status, e.field) == (422, "b") and "boolean feature: send true/false" in e.message
    assert InputSchema.from_dict(typed.to_dict()) == typed
    assert protocols.parse_invocations_csv(b"k,b\n4,True\n", typed, 10) == {"k": [4.0], "b": [1.0]}
    # a CSV takes the boolean words the data stage reads from a training CSV
    words = b"k,b\n1,yes\n2,N\n3, t \n4,false\n5,0\n"
    assert protocols.parse_invocations_csv(words, typed, 10)["b"] == [1.0, 0.0, 1.0, 0.0, 0.0]
    e = err(protocols.parse_invocations_csv, b"k,b\n1,maybe\n", typed, 10)
    assert (e.status, e.field) == (422, "b")
    e = err(protocols.parse_invocations_csv, b"k,b\n1,1.0\n", typed, 10)  # a wrong type in training data too
    assert (e.status, e.field) == (422, "b")
    v2 = {"inputs": [{"name": "k", "shape": [1], "datatype": "INT64", "data": [7]},
                     {"name": "b", "shape": [1], "datatype": "BOOL", "data": [False]}]}
    assert protocols.parse_v2(v2, typed, 10)[0] == {"k": [7.0], "b": [0.0]}
    meta = protocols.v2_metadata("m", ["1"], typed, "classification", [0, 1])
    assert [i["datatype"] for i in meta["inputs"]] == ["INT64", "BOOL"]


def test_csv_null_words_are_missing_in_number_columns_only_as_in_training() -> None:
    schema = InputSchema(columns=("x", "city"), types={"x": "double", "city": "string"},
                         nullable={"x": True, "city": True})
    cols = protocols.parse_invocations_csv(b"x,city\nNA,NA\n n/a ,Paris\n2, \n", schema, 10)
    assert [str(v) for v in cols["x"]] == ["nan", "nan", "2.0"]
    assert cols["city"] == ["NA", "Paris", None]  # a category "NA" stays one; a blank is missing


def test_bodies_no_check_foresaw_are_client_errors() -> None:
    """Deep nesting, a 5,000-digit integer, a CSV field over the csv module's limit: 400s, never a 5xx."""
    deep = b'{"inputs":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    e = err(parse_json, deep, 10**6)
    assert e.status == 400 and "nested too deeply" in e.message
    e = err(parse_json, b'{"rows": [{"a": ' + b"9" * 5000 + b"}]}", 10**6)
    assert e.status == 400 and "cannot be read" in e.message and "sys.set_int_max_str_digits" not in e.message
    e = err(protocols.parse_invocations_csv, b"a,b,c\n" + b"1" * 200_000 + b",2,x\n", SCHEMA, 10)
    assert e.status == 400 and "CSV body cannot be read" in e.message


def test_responses_carry_model_version_and_request_id() -> None:
    v1 = protocols.v1_response("m", "3", "rid", ["p"], [[0.2, 0.8]], ["n", "p"])
    assert v1["model_version"] == "3" and v1["request_id"] == "rid" and v1["classes"] == ["n", "p"]
    v2 = protocols.v2_response("m", "3", "rid", ["p", "n"], [[0.2, 0.8], [0.9, 0.1]], "client-1")
    assert v2["id"] == "client-1" and v2["outputs"][0]["datatype"] == "BYTES"
    assert v2["outputs"][1]["shape"] == [2, 2] and len(v2["outputs"][1]["data"]) == 4
    assert protocols.v2_response("m", "1", "r", [1.5], None, None)["outputs"][0]["datatype"] == "FP64"
    # /invocations: the records `mlflow models serve` answers for the pyfunc (prediction + proba_<class>).
    inv = protocols.invocations_response("m", "3", "rid", ["p", "n"], [[0.2, 0.8], [0.9, 0.1]], ["n", "p"])
    assert inv["predictions"] == [{"prediction": "p", "proba_n": 0.2, "proba_p": 0.8},
                                  {"prediction": "n", "proba_n": 0.9, "proba_p": 0.1}]
    assert protocols.invocations_response("m", "1", "r", [1.5], None, None)["predictions"] == [{"prediction": 1.5}]
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

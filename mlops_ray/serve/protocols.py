"""Request bodies of the three protocols -> checked columns, and the matching response bodies (pure).

* v1: ``POST /v1/models/{name}/predict`` with ``{"rows": [{feature: value}, ...]}`` (or a bare list).
* Open Inference Protocol v2: ``POST /v2/models/{name}/infer`` with one tensor per feature
  (``{"name": feature, "shape": [n], "datatype": "FP64"|"BYTES", "data": [...]}``) or one 2-D tensor
  ``[n, n_features]`` in the model's column order.
* MLflow ``/invocations``: exactly one of ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``,
  or a ``text/csv`` body with a header row.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from mlops_ray.data.schema import FALSE_WORDS, NULL_WORDS, TRUE_WORDS
from mlops_ray.serve.validation import (
    Columns,
    InputSchema,
    RequestError,
    validate_columnar,
    validate_positional,
    validate_records,
)

INVOCATION_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
V2_NUMERIC = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def parse_v1(body: Any, schema: InputSchema, max_rows: int) -> Columns:
    if isinstance(body, list):
        return validate_records(body, schema, max_rows)
    if not isinstance(body, dict):
        raise RequestError(400, f"expected an object {{'rows': [...]}}, got {type(body).__name__}")
    keys = [k for k in ("rows", "instances") if k in body]
    if len(keys) != 1 or set(body) - {"rows", "instances"}:  # a misspelt extra key is a mistake, not noise
        raise RequestError(400, f"expected exactly one of 'rows' or 'instances', got keys {sorted(body)}", "rows")
    rows = body[keys[0]]
    if isinstance(rows, list) and rows and isinstance(rows[0], list):
        return validate_positional(rows, schema, max_rows)
    return validate_records(rows, schema, max_rows)


def parse_invocations(body: Any, schema: InputSchema, max_rows: int) -> Columns:
    """MLflow scoring-server formats."""
    if not isinstance(body, dict):
        raise RequestError(400, f"expected a JSON object with one of {list(INVOCATION_KEYS)}, "
                           f"got {type(body).__name__}")
    keys = [k for k in INVOCATION_KEYS if k in body]
    extra = sorted(set(body) - set(INVOCATION_KEYS) - {"params"})
    if len(keys) != 1 or extra:
        raise RequestError(400, f"expected exactly one of {list(INVOCATION_KEYS)} (and optional 'params'), "
                           f"got keys {sorted(body)}")
    key = keys[0]
    data = body[key]
    if key == "dataframe_split":
        if not isinstance(data, dict) or "data" not in data:
            raise RequestError(400, "dataframe_split needs {'columns': [...], 'data': [[...], ...]}", key)
        return validate_positional(data["data"], schema, max_rows, data.get("columns"))
    if key == "dataframe_records":
        return validate_records(data, schema, max_rows)
    if isinstance(data, dict):
        return validate_columnar(data, schema, max_rows)
    if isinstance(data, list) and data and isinstance(data[0], list):
        return validate_positional(data, schema, max_rows)
    return validate_records(data, schema, max_rows)


def parse_invocations_csv(raw: bytes, schema: InputSchema, max_rows: int) -> Columns:
    """MLflow's ``text/csv`` body: a header row of feature names, then one line per row.

    An empty field is a missing value (as pandas reads it); a number column's text must parse as a number.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RequestError(400, f"CSV body is not UTF-8 text: {e}") from e
    try:
        lines = [r for r in csv.reader(io.StringIO(text)) if r]
    except csv.Error as e:  # e.g. a field over the csv module's 128 KiB limit, a NUL byte
        raise RequestError(400, f"CSV body cannot be read: {e}") from e
    if not lines:
        raise RequestError(400, "empty CSV body: send a header row of feature names and one line per row")
    header, body = [h.strip() for h in lines[0]], lines[1:]
    rows: list[list[Any]] = []
    for i, line in enumerate(body):
        if len(line) != len(header):
            raise RequestError(422, f"CSV line {i + 2} has {len(line)} fields; the header has {len(header)}")
        rows.append([_csv_value(v, schema.types.get(h), schema.raw.get(h)) for h, v in zip(header, line, strict=True)])
    return validate_positional(rows, schema, max_rows, header)


def _csv_value(v: str, kind: str | None, raw: str | None = None) -> Any:
    """A CSV field as the data stage reads the same text in a training CSV."""
    text = v.strip()
    if text == "" or (kind == "double" and text in NULL_WORDS):  # pandas' null words: missing in number columns
        return None
    if raw == "bool":  # only the words (1.0 or +1 would be a wrong type in training data too)
        word = text.lower()
        return word in TRUE_WORDS if word in (*TRUE_WORDS, *FALSE_WORDS) else v
    if kind == "double":
        try:
            return float(v)
        except ValueError:
            return v  # validation names the feature and row
    return v


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise RequestError(400, f"tensor data must be a list, got {type(data).__name__}")
    if data and isinstance(data[0], list):
        out: list[Any] = []
        for x in data:
            out.extend(_flatten(x))
        return out
    return data


def _tensor(t: Any, i: int) -> tuple[str, list[int], str, list[Any]]:
    if not isinstance(t, dict):
        raise RequestError(400, f"inputs[{i}] must be an object {{name, shape, datatype, data}}")
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in t]
    if missing:
        raise RequestError(400, f"inputs[{i}] is missing {missing}", f"inputs[{i}].{missing[0]}")
    if "parameters" in t and not isinstance(t["parameters"], dict):
        raise RequestError(400, f"inputs[{i}].parameters must be an object", f"inputs[{i}].parameters")
    shape = t["shape"]
    if not isinstance(shape, list) or not shape or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise RequestError(400, f"inputs[{i}].shape must be a list of non-negative ints, got {shape!r}",
                           f"inputs[{i}].shape")
    data = _flatten(t["data"])
    if len(data) != math.prod(shape):
        raise RequestError(422, f"inputs[{i}] ({t['name']!r}): shape {shape} needs {math.prod(shape)} values, "
                           f"got {len(data)}", str(t["name"]))
    return str(t["name"]), shape, str(t["datatype"]).upper(), data


def _check_dtype(name: str, dtype: str, kind: str, raw: str | None = None) -> None:
    ok = (dtype in V2_NUMERIC or (raw == "bool" and dtype == "BOOL")) if kind == "double" else dtype == "BYTES"
    if not ok:
        want = "a numeric datatype (FP32, FP64, INT64, ...)" if kind == "double" else "BYTES"
        raise RequestError(422, f"tensor {name!r} has datatype {dtype}; feature {name!r} needs {want}", name)


# The values each numeric datatype can hold (OIP v2 names numpy's types); FP64 is checked as finite later.
V2_RANGES: dict[str, tuple[float, float]] = {
    **{f"INT{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"UINT{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)},
    "FP16": (-65504.0, 65504.0), "FP32": (-3.4028234663852886e38, 3.4028234663852886e38),
}


def _check_values(name: str, dtype: str, data: list[Any]) -> None:
    """A tensor whose values its datatype cannot hold (2.5 in INT64, 1000 in INT8, 1e300 in FP32) was built
    wrong: say so rather than guess. Non-numbers are left to the feature's own check."""
    lo, hi = V2_RANGES.get(dtype, (None, None))
    if lo is None:
        return
    integer = dtype.startswith(("INT", "UINT"))
    for v in data:
        if integer and isinstance(v, bool):
            raise RequestError(422, f"tensor {name!r} has datatype {dtype} but holds {v!r}; send integers", name)
        if v is None or isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if integer and not (isinstance(v, int) or v.is_integer()):
            raise RequestError(422, f"tensor {name!r} has datatype {dtype} but holds {v!r}; send integers or "
                               "declare FP64", name)
        if math.isfinite(v) and not lo <= v <= hi:
            raise RequestError(422, f"tensor {name!r} has datatype {dtype} but holds {v!r}, outside its range "
                               f"[{lo:g}, {hi:g}]; declare a wider datatype (FP64)", name)


def parse_v2(body: Any, schema: InputSchema, max_rows: int) -> tuple[Columns, str | None]:
    """An OIP v2 infer request -> (columns, the request's own id if it sent one)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise RequestError(400, "expected {'inputs': [{'name', 'shape', 'datatype', 'data'}, ...]}", "inputs")
    rid = body.get("id")
    if rid is not None and not isinstance(rid, str):
        raise RequestError(400, f"'id' must be a string, got {type(rid).__name__}", "id")
    if "parameters" in body and not isinstance(body["parameters"], dict):
        raise RequestError(400, "'parameters' must be an object", "parameters")
    tensors = [_tensor(t, i) for i, t in enumerate(body["inputs"])]
    names = [t[0] for t in tensors]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RequestError(422, f"input tensor(s) {dup} appear more than once; send each feature once", dup[0])
    if len(tensors) == 1 and tensors[0][0] not in schema.types:
        name, shape, dtype, data = tensors[0]
        k = len(schema.columns)
        if len(shape) != 2 or shape[1] != k:
            raise RequestError(422, f"a single tensor {name!r} must have shape [n, {k}] (columns {list(schema.columns)}"
                               f"), got {shape}; or send one tensor per feature", name)
        for c in schema.columns:
            _check_dtype(c, dtype, schema.types[c], schema.raw.get(c))
        _check_values(name, dtype, data)
        rows = [data[r * k:(r + 1) * k] for r in range(shape[0])]
        return validate_positional(rows, schema, max_rows), rid
    cols: dict[str, list[Any]] = {}
    for name, shape, dtype, data in tensors:
        if name in schema.types:
            _check_dtype(name, dtype, schema.types[name], schema.raw.get(name))
        _check_values(name, dtype, data)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(422, f"tensor {name!r}: shape {shape}; a per-feature tensor is [n] or [n, 1]", name)
        cols[name] = data
    return validate_columnar(cols, schema, max_rows), rid


def _json_safe(x: Any) -> Any:
    if hasattr(x, "item"):
        x = x.item()
    return x


def v1_response(model: str, version: str, request_id: str, preds: list[Any], proba: list[list[float]] | None,
                classes: list[Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"model_name": model, "model_version": version, "request_id": request_id,
                           "predictions": [_json_safe(p) for p in preds]}
    if proba is not None:
        out["probabilities"] = proba
        out["classes"] = classes
    return out


def v2_datatype(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


V2_OUTPUTS = ("predictions", "probabilities")


def v2_requested_outputs(body: Any) -> list[str] | None:
    """The output names an OIP v2 request asks for (``outputs: [{"name": ...}]``); None: all of them."""
    wanted = body.get("outputs") if isinstance(body, dict) else None
    if wanted is None:
        return None
    if not isinstance(wanted, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted):
        raise RequestError(400, "outputs must be a list of objects with a 'name'", "outputs")
    names = [o["name"] for o in wanted]
    unknown = [n for n in names if n not in V2_OUTPUTS]
    if unknown:
        raise RequestError(400, f"unknown output(s) {unknown}; this server answers {list(V2_OUTPUTS)}", "outputs")
    return names


def v2_response(model: str, version: str, request_id: str, preds: list[Any], proba: list[list[float]] | None,
                client_id: str | None, wanted: list[str] | None = None) -> dict[str, Any]:
    preds = [_json_safe(p) for p in preds]
    outputs: list[dict[str, Any]] = [{"name": "predictions", "shape": [len(preds)], "datatype": v2_datatype(preds),
                                      "data": preds}]
    if proba is not None:
        k = len(proba[0]) if proba else 0
        outputs.append({"name": "probabilities", "shape": [len(proba), k], "datatype": "FP64",
                        "data": [p for row in proba for p in row]})
    if wanted is not None:  # only what the request named (probabilities exist for classifiers only)
        outputs = [o for o in outputs if o["name"] in wanted]
    return {"model_name": model, "model_version": version, "id": client_id or request_id,
            "request_id": request_id, "outputs": outputs}


def invocations_response(model: str, version: str, request_id: str, preds: list[Any],
                         proba: list[list[float]] | None, classes: list[Any] | None) -> dict[str, Any]:
    """What ``mlflow models serve`` answers for this model's pyfunc: one record per row, ``prediction`` and,
    for a classifier, ``proba_<class>`` (the pyfunc's output columns), so a client can switch servers."""
    records: list[dict[str, Any]] = [{"prediction": _json_safe(p)} for p in preds]
    if proba is not None:
        names = [f"proba_{c}" for c in (classes if classes is not None else range(len(proba[0]) if proba else 0))]
        for rec, row in zip(records, proba, strict=True):
            rec.update(zip(names, row, strict=True))
    return {"predictions": records, "model_name": model, "model_version": version, "request_id": request_id}


def v2_server_metadata(version: str) -> dict[str, Any]:
    """``GET /v2``: what this server is and which protocol extensions it speaks (none)."""
    return {"name": "mlops-ray", "version": version, "extensions": []}


def v2_metadata(model: str, versions: list[str], schema: InputSchema, task: str,
                classes: list[Any] | None) -> dict[str, Any]:
    numeric = {"int": "INT64", "bool": "BOOL"}  # as the MLflow signature: long, boolean, double
    inputs = [{"name": c, "datatype": numeric.get(schema.raw.get(c, ""), "FP64") if schema.types[c] == "double"
               else "BYTES", "shape": [-1]} for c in schema.columns]
    # The same rule as the infer answer: a classifier predicts its class labels (INT64 when they are integers).
    labels = [_json_safe(c) for c in classes or []]
    predicted = "FP64" if task != "classification" else v2_datatype(labels) if labels else "BYTES"
    outputs = [{"name": "predictions", "datatype": predicted, "shape": [-1]}]
    if task == "classification":
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes or [])]})
    return {"name": model, "versions": versions, "platform": "mlops_ray", "inputs": inputs, "outputs": outputs}

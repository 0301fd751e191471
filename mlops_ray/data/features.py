"""The fitted feature pipeline: imputation, outlier clipping, scaling and encoding, as plain numbers.

Fitted once on the training split (statistics computed with Ray Data, see ``stats.py``), saved as
JSON (no pickle: a served model never unpickles its features) and applied by this same code in the
data stage, in tuning, in the packaged MLflow model and in the Serve replicas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlops_ray.data.schema import as_text
from mlops_ray.exceptions import DataError

OTHER = "__other__"
FORMAT_VERSION = 1


@dataclass
class NumericFeature:
    """One numeric input column: fill missing, clip, then scale ``(x - center) / scale``."""

    name: str
    fill: float | None  # None: a missing value is an error at transform time
    clip_low: float | None = None
    clip_high: float | None = None
    transform: Literal["standard", "minmax", "robust", "none"] = "standard"
    center: float = 0.0
    scale: float = 1.0
    raw_type: Literal["float", "int", "bool"] = "float"  # the input column's type (the MLflow signature's)

    def out_names(self) -> list[str]:
        return [self.name]


@dataclass
class CategoricalFeature:
    """One categorical input column: fill missing, map rare/unknown values, then one-hot or ordinal."""

    name: str
    fill: str | None
    categories: list[str] = field(default_factory=list)  # kept categories, most frequent first
    transform: Literal["onehot", "ordinal"] = "onehot"
    has_other: bool = False  # categories beyond max_categories were seen and map to OTHER

    def out_names(self) -> list[str]:
        if self.transform == "ordinal":
            return [self.name]
        cats = [*self.categories, OTHER] if self.has_other else self.categories
        return [f"{self.name}={c}" for c in cats]


@dataclass
class FeaturePipeline:
    """Fitted transforms for every input column, plus what the model predicts."""

    numeric: list[NumericFeature]
    categorical: list[CategoricalFeature]
    target: str
    task: Literal["classification", "regression"]
    classes: list[Any] | None = None  # class labels in the model's column order, for classification
    input_order: list[str] = field(default_factory=list)  # the raw columns in their original order

    def __post_init__(self) -> None:
        if not self.input_order:
            self.input_order = [f.name for f in self.numeric] + [f.name for f in self.categorical]

    # ------------------------------------------------------------------ schema

    @property
    def input_columns(self) -> list[str]:
        return list(self.input_order)

    @property
    def feature_names_out(self) -> list[str]:
        names: list[str] = []
        for f in self.numeric:
            names += f.out_names()
        for c in self.categorical:
            names += c.out_names()
        return names

    def input_types(self) -> dict[str, str]:
        """Column -> "double" or "string", the raw input schema (for request validation)."""
        types = {f.name: "double" for f in self.numeric}
        types.update({c.name: "string" for c in self.categorical})
        return {name: types[name] for name in self.input_order}

    def signature_types(self) -> dict[str, str]:
        """Column -> MLflow column type: integer and boolean inputs keep their type, so the frame they came
        in (int64 columns) passes MLflow's schema check, which refuses int64 -> double as unsafe."""
        mlflow_type = {"float": "double", "int": "long", "bool": "boolean"}
        types = {f.name: mlflow_type[f.raw_type] for f in self.numeric}
        types.update({c.name: "string" for c in self.categorical})
        return {name: types[name] for name in self.input_order}

    # ------------------------------------------------------------------ apply

    def transform(self, df: pd.DataFrame | pa.Table) -> np.ndarray:
        """Raw input rows (pandas or Arrow) -> the model's float matrix; raises DataError naming a missing column."""
        names = df.column_names if isinstance(df, pa.Table) else df.columns
        missing = [c for c in self.input_order if c not in names]
        if missing:
            raise DataError(f"input is missing feature column(s) {missing}; expected {self.input_order}")
        n = df.num_rows if isinstance(df, pa.Table) else len(df)
        # One preallocated matrix filled column by column: np.hstack of (n, 1) blocks costs 4x more.
        out = np.empty((n, len(self.feature_names_out)))
        j = 0
        for f in self.numeric:
            out[:, j] = self._numeric_any(df[f.name], f)
            j += 1
        for c in self.categorical:
            block = self._categorical_any(df[c.name], c, n)
            out[:, j:j + block.shape[1]] = block
            j += block.shape[1]
        return out

    def transform_columns(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Column arrays -> one float64 array per output feature (``feature_names_out``), no pandas.

        The data stage's streaming path; numeric inputs are float arrays (NaN: missing), categorical
        inputs object/str numpy arrays or Arrow string arrays (None/null: missing). Gives exactly what
        ``transform`` gives, column by column.
        """
        missing = [c for c in self.input_order if c not in columns]
        if missing:
            raise DataError(f"input is missing feature column(s) {missing}; expected {self.input_order}")
        out: dict[str, np.ndarray] = {}
        for f in self.numeric:
            out[f.name] = self._numeric_array(np.asarray(columns[f.name], dtype=np.float64), f)
        for c in self.categorical:
            raw = columns[c.name]
            if isinstance(raw, pa.Array | pa.ChunkedArray):
                codes = self._arrow_codes(raw, c)
            else:
                values = np.asarray(raw, dtype=object)
                isna = pd.isna(values)
                if isna.any():
                    if c.fill is None:
                        raise DataError(f"column {c.name!r} has missing values and no fill value was fitted")
                    values = np.where(isna, c.fill, values)
                codes = self._codes(values.astype(str), c)
            n = codes.shape[0]
            if c.transform == "ordinal":
                out[c.name] = codes.astype(np.float64)
                continue
            names = c.out_names()
            for i, name in enumerate(names):
                out[name] = (codes == i).astype(np.float64) if n else np.zeros(0)
        return out

    @staticmethod
    def _arrow_codes(arr: pa.Array | pa.ChunkedArray, c: CategoricalFeature) -> np.ndarray:
        """Category codes with Arrow kernels (the fast path for Arrow columns), same rules as ``_codes``."""
        arr = as_text(arr)  # as the data stage read the training rows
        if arr.null_count:
            if c.fill is None:
                raise DataError(f"column {c.name!r} has missing values and no fill value was fitted")
            arr = pc.fill_null(arr, c.fill)
        other_code = len(c.categories) if c.has_other else -1
        idx = pc.index_in(arr, value_set=pa.array(c.categories, pa.string()))
        return np.asarray(pc.fill_null(idx, other_code).to_numpy(zero_copy_only=False), dtype=np.int64)

    @staticmethod
    def _codes(values: np.ndarray, c: CategoricalFeature) -> np.ndarray:
        """Category index per value; OTHER's index for unseen values if fitted with one, else -1."""
        other_code = len(c.categories) if c.has_other else -1
        if not c.categories:
            return np.full(values.shape[0], other_code, dtype=np.int64)
        cats = np.asarray(c.categories, dtype=str)
        order = np.argsort(cats)
        pos = np.clip(np.searchsorted(cats[order], values), 0, len(cats) - 1)
        hit = cats[order][pos] == values
        return np.where(hit, order[pos], other_code).astype(np.int64)

    @staticmethod
    def _numeric_array(x: np.ndarray, f: NumericFeature) -> np.ndarray:
        bad = ~np.isfinite(x)
        if bad.any():
            if f.fill is None:
                raise DataError(f"column {f.name!r} has {int(bad.sum())} missing or non-finite value(s) "
                                "and no fill value was fitted (missing strategy 'drop' or 'none')")
            x = np.where(bad, f.fill, x)
        if f.clip_low is not None or f.clip_high is not None:
            x = np.clip(x, f.clip_low, f.clip_high)
        if f.transform != "none":
            x = (x - f.center) / f.scale
        return x

    @classmethod
    def _numeric_any(cls, col: pd.Series | pa.ChunkedArray, f: NumericFeature) -> np.ndarray:
        if isinstance(col, pa.ChunkedArray):
            if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):  # nulls -> NaN
                return cls._numeric_array(np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64), f)
            col = col.to_pandas()
        return cls._numeric(col, f)

    @classmethod
    def _categorical_any(cls, col: pd.Series | pa.ChunkedArray, c: CategoricalFeature, n: int) -> np.ndarray:
        if not isinstance(col, pa.ChunkedArray):
            return cls._categorical(col, c, n)
        return cls._encode(cls._arrow_codes(col, c), c, n)

    @staticmethod
    def _encode(codes: np.ndarray, c: CategoricalFeature, n: int) -> np.ndarray:
        """Category codes -> the (n, 1) ordinal column or the (n, width) one-hot block."""
        if c.transform == "ordinal":
            return codes.astype(np.float64).reshape(n, 1)
        out = np.zeros((n, len(c.categories) + (1 if c.has_other else 0)))
        known = codes >= 0  # unknown values (no OTHER bucket) encode as all zeros
        out[np.nonzero(known)[0], codes[known]] = 1.0
        return out

    @staticmethod
    def _numeric(col: pd.Series, f: NumericFeature) -> np.ndarray:
        x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return FeaturePipeline._numeric_array(x, f)

    @staticmethod
    def _categorical(col: pd.Series, c: CategoricalFeature, n: int) -> np.ndarray:
        values = col.astype("object").where(col.notna(), None)
        # As the data stage read the training rows: surrounding whitespace dropped, "" a missing value.
        values = values.map(lambda v: (v.strip() or None) if isinstance(v, str) else v)
        if values.isna().any():
            if c.fill is None:
                raise DataError(f"column {c.name!r} has missing values and no fill value was fitted")
            values = values.fillna(c.fill)
        values = values.astype(str)
        index = {v: i for i, v in enumerate(c.categories)}
        other_code = len(c.categories) if c.has_other else -1
        codes = values.map(index).fillna(other_code).to_numpy(dtype=np.int64)
        return FeaturePipeline._encode(codes, c, n)

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeaturePipeline:
        d = dict(d)
        version = d.pop("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise DataError(f"feature pipeline format {version} is not supported (expected {FORMAT_VERSION})")
        return cls(
            numeric=[NumericFeature(**f) for f in d.pop("numeric")],
            categorical=[CategoricalFeature(**c) for c in d.pop("categorical")],
            **d,
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=_json_default))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeaturePipeline:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError as e:
            raise DataError(f"feature pipeline file not found: {path}") from e
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise DataError(f"feature pipeline file {path} is corrupt: {e}") from e


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def scale_params(transform: str, stats: dict[str, float]) -> tuple[float, float]:
    """(center, scale) for a numeric transform from the column's training statistics."""
    if transform == "standard":
        center, scale = stats["mean"], stats["std"]
    elif transform == "minmax":
        center, scale = stats["min"], stats["max"] - stats["min"]
    elif transform == "robust":
        center, scale = stats["median"], stats["q75"] - stats["q25"]
    else:
        return 0.0, 1.0
    # A constant column would divide by zero; it carries no signal, so map it to 0.
    return float(center), float(scale) if scale and np.isfinite(scale) and scale > 0 else 1.0

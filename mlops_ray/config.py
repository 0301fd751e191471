"""The typed pipeline spec, loaded from YAML: the one object every stage reads.

Users write YAML; pydantic models with ``extra="forbid"`` validate it so that a typo is an error
that names the field and the file, not a silently ignored key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from mlops_ray.exceptions import ConfigError

BUNDLED_DATASETS = ("breast_cancer", "iris", "wine", "digits", "diabetes")
STEPS = ("data", "tune", "register", "deploy")


# Pipeline and model names become folder names and Serve application names.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------------------------- data


class SourceSpec(_Spec):
    """Where the rows come from: a bundled scikit-learn set, or files (a path, a folder or a glob)."""

    bundled: Literal["breast_cancer", "iris", "wine", "digits", "diabetes"] | None = None
    path: str | None = None
    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = Field(",", min_length=1, max_length=1)  # of CSV fields: ";" for many European exports, "\t"

    @model_validator(mode="after")
    def _one_source(self) -> SourceSpec:
        if (self.bundled is None) == (self.path is None):
            raise ValueError(f"set exactly one of 'bundled' (one of {', '.join(BUNDLED_DATASETS)}) or 'path'")
        if self.delimiter in ('"', "\n", "\r"):
            raise ValueError(f"delimiter {self.delimiter!r} cannot separate CSV fields")
        return self


ColumnType = Literal["float", "int", "str", "category", "bool"]


class ColumnSpec(_Spec):
    """One declared column: its type, whether it must be present and non-null, and its allowed values."""

    name: str
    type: ColumnType = "float"
    required: bool = True
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None

    @model_validator(mode="after")
    def _check(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min ({self.min}) is greater than max ({self.max})")
        if self.allowed is not None and self.type not in ("str", "category", "int", "bool"):
            raise ValueError(f"column {self.name!r}: 'allowed' needs type str, category, int or bool")
        if (self.min is not None or self.max is not None) and self.type not in ("float", "int"):
            raise ValueError(f"column {self.name!r}: 'min'/'max' need type float or int (a {self.type} column has "
                             "no order; use 'allowed')")
        return self


class SchemaSpec(_Spec):
    """The declared schema. With no columns declared it is inferred from the data (bundled sets)."""

    columns: list[ColumnSpec] = Field(default_factory=list)
    # Columns present in the input but not declared: error, drop (recorded), or keep as passthrough.
    unknown_columns: Literal["error", "drop"] = "drop"
    # What a float NaN in the input means: a missing value (pandas' convention) or a rejected row.
    nan: Literal["missing", "reject"] = "missing"
    # A CSV line with more or fewer fields than its header: a rejected row (malformed_line) or an error.
    malformed_lines: Literal["reject", "error"] = "reject"


MissingStrategy = Literal["median", "mean", "most_frequent", "constant", "drop", "none"]
OutlierMethod = Literal["clip_quantile", "iqr", "drop_quantile", "drop_iqr", "none"]


class MissingSpec(_Spec):
    strategy: MissingStrategy = "median"
    value: float | int | str | None = None  # for strategy: constant

    @model_validator(mode="after")
    def _check(self) -> MissingSpec:
        if self.strategy == "constant" and self.value is None:
            raise ValueError("strategy 'constant' needs a 'value'")
        return self


class OutlierSpec(_Spec):
    method: OutlierMethod = "clip_quantile"
    lower: float = Field(0.01, ge=0.0, le=0.5)  # quantiles for *_quantile
    upper: float = Field(0.99, ge=0.5, le=1.0)
    iqr_factor: float = Field(1.5, gt=0.0)  # whisker length for *_iqr


class CleanSpec(_Spec):
    """Missing-value and outlier handling: a default for numeric / categorical columns, per-column overrides."""

    numeric_missing: MissingSpec = Field(default_factory=MissingSpec)
    categorical_missing: MissingSpec = Field(default_factory=lambda: MissingSpec(strategy="most_frequent"))
    outliers: OutlierSpec = Field(default_factory=OutlierSpec)
    missing: dict[str, MissingSpec] = Field(default_factory=dict)
    column_outliers: dict[str, OutlierSpec] = Field(default_factory=dict)


class SplitSpec(_Spec):
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    folds: int = Field(5, ge=2, le=50)
    stratify: bool = True


NumericTransform = Literal["standard", "minmax", "robust", "none"]
CategoricalTransform = Literal["onehot", "ordinal"]


class FeaturesSpec(_Spec):
    """Feature transforms, fitted on the training split only and reused verbatim at serving time."""

    numeric: NumericTransform = "standard"
    categorical: CategoricalTransform = "onehot"
    columns: dict[str, NumericTransform | CategoricalTransform] = Field(default_factory=dict)
    max_categories: int = Field(50, ge=2)  # one-hot keeps the most frequent; the rest map to "other"


class DataSpec(_Spec):
    source: SourceSpec
    target: str = "target"
    task: Literal["classification", "regression", "auto"] = "auto"
    schema_: SchemaSpec = Field(default_factory=SchemaSpec, alias="schema")
    clean: CleanSpec = Field(default_factory=CleanSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _check_target(self) -> DataSpec:
        for c in self.schema_.columns:
            if c.name == self.target and (not c.required or ("nullable" in c.model_fields_set and c.nullable)):
                raise ValueError(f"column {c.name!r} is data.target: every row needs it (a row without a label is "
                                 f"rejected as missing_target:{c.name}), so it cannot be nullable: true or "
                                 "required: false")
        return self


# --------------------------------------------------------------------------------------------- tune


class Grid(_Spec):
    grid: list[Any] = Field(min_length=1)


class Choice(_Spec):
    choice: list[Any] = Field(min_length=1)


class Uniform(_Spec):
    uniform: tuple[float, float]


class LogUniform(_Spec):
    loguniform: tuple[float, float]


class RandInt(_Spec):
    randint: tuple[int, int]  # inclusive bounds


SPACE_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")


def _space_kind(v: Any) -> str | None:
    if isinstance(v, dict) and len(v) == 1:
        return str(next(iter(v)))
    return type(v).__name__.lower() if isinstance(v, _Spec) else None


# Tagged by its one key, so that a bad value is reported against that kind alone (one line, not five).
ParamSpace = Annotated[
    Annotated[Grid, Tag("grid")] | Annotated[Choice, Tag("choice")] | Annotated[Uniform, Tag("uniform")]
    | Annotated[LogUniform, Tag("loguniform")] | Annotated[RandInt, Tag("randint")],
    Discriminator(_space_kind),
]


class ModelSpec(_Spec):
    """The model family: a scikit-learn estimator by import path, or the built-in PyTorch tabular MLP."""

    kind: Literal["sklearn", "torch_mlp"] = "sklearn"
    estimator: str | None = "sklearn.ensemble.RandomForestClassifier"
    params: dict[str, Any] = Field(default_factory=dict)  # fixed, not searched

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.kind == "sklearn" and not self.estimator:
            raise ValueError("kind 'sklearn' needs 'estimator', an import path like sklearn.linear_model.Ridge")
        if self.kind == "torch_mlp" and self.estimator:
            if "estimator" in self.model_fields_set:  # named by the user: it would be ignored, say so
                raise ValueError(f"estimator {self.estimator!r} is set but kind is torch_mlp, which builds its own "
                                 "MLP; remove the estimator (--set tune.model.estimator=null) or use kind: sklearn")
            self.estimator = None  # the sklearn default does not apply
        return self


class ResourcesSpec(_Spec):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class AshaSpec(_Spec):
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)


class TuneSpec(_Spec):
    model: ModelSpec = Field(default_factory=ModelSpec)
    search_space: dict[str, ParamSpace] = Field(default_factory=dict)
    metric: str = "auto"  # accuracy/f1_macro/roc_auc/log_loss for classification; r2/rmse/mae for regression
    search: Literal["grid", "random", "optuna"] = "random"
    num_samples: int = Field(10, ge=1)  # random/optuna trials; for grid: repeats of the full grid
    max_concurrent: int = Field(0, ge=0)  # 0: as many as the resources allow
    scheduler: Literal["fifo", "asha"] = "fifo"
    asha: AshaSpec = Field(default_factory=AshaSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    max_failures: int = Field(2, ge=0)  # retries of a trial whose worker died
    time_budget_s: float | None = Field(None, gt=0)
    # A grid over a forest's/gradient boosting's n_estimators grows one ensemble per fold through the sizes
    # (warm_start): the same scores as separate fits, for the CPU of the largest. false: fit every config alone.
    warm_start_path: bool = True

    @field_validator("search_space", mode="before")
    @classmethod
    def _space_kinds(cls, v: Any) -> Any:
        # Check the one key per parameter first, so that a typo gives one clear line, not five.
        if not isinstance(v, dict):
            raise ValueError("search_space must map parameter names to {grid|choice|uniform|loguniform|randint: ...}")
        for name, space in v.items():
            if not isinstance(space, dict) or len(space) != 1 or next(iter(space)) not in SPACE_KINDS:
                raise ValueError(
                    f"parameter {name!r}: expected one of {', '.join(SPACE_KINDS)} as its only key, got {space!r}"
                )
            kind, arg = next(iter(space.items()))
            if kind in ("uniform", "loguniform", "randint"):
                numbers = isinstance(arg, list | tuple) and len(arg) == 2 and all(
                    isinstance(x, int | float) and not isinstance(x, bool) for x in arg)
                op = "<=" if kind == "randint" else "<"  # randint's bounds are inclusive: [2, 2] is 2
                if not numbers or arg[0] > arg[1] or (arg[0] == arg[1] and op == "<"):
                    raise ValueError(f"parameter {name!r}: {kind} needs [low, high], two numbers with low {op} high, "
                                     f"got {arg!r}")
                if kind == "loguniform" and arg[0] <= 0:
                    raise ValueError(f"parameter {name!r}: loguniform needs low > 0, got {arg[0]!r}")
        return v


# ----------------------------------------------------------------------------------------- registry


class GateSpec(_Spec):
    """Promotion gate: absolute thresholds, then a paired bootstrap against the champion."""

    thresholds: dict[str, float] = Field(default_factory=dict)  # metric -> minimum (or maximum for errors)
    margin: float = Field(0.0, ge=0.0)  # the challenger must beat the champion by at least this
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    n_bootstrap: int = Field(1000, ge=100)
    seed: int | None = None  # bootstrap resampling seed; default: the pipeline's seed


class RegistrySpec(_Spec):
    # default: the pipeline name; a folder name (logs, reports) and part of Serve app names, like `name`
    model_name: str | None = Field(None, pattern=NAME_PATTERN)
    experiment: str | None = None  # default: the pipeline name
    gate: GateSpec = Field(default_factory=GateSpec)
    bundle_code: bool = True  # store the mlops_ray sources with each model, for `mlflow models serve`


# -------------------------------------------------------------------------------------------- serve


class AutoscalingSpec(_Spec):
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(8.0, gt=0)
    upscale_delay_s: float = Field(5.0, ge=0)
    downscale_delay_s: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas})")
        return self


class CanarySpec(_Spec):
    steps: list[float] = Field(default_factory=lambda: [10.0, 50.0, 100.0])  # canary traffic, percent
    window_s: float = Field(30.0, gt=0)  # analysis window per step
    min_requests: int = Field(20, ge=1)  # a window with fewer canary requests is extended, not judged
    max_error_rate_delta: float = Field(0.02, ge=0)  # canary error rate minus stable's
    max_p99_ratio: float = Field(2.0, gt=1.0)  # canary p99 / stable p99
    # Distribution of predictions, canary vs stable, judged only without enough feedback labels; None: never.
    max_prediction_psi: float | None = Field(0.25, gt=0)
    max_accuracy_drop: float = Field(0.05, ge=0)  # when feedback labels exist

    @model_validator(mode="after")
    def _check(self) -> CanarySpec:
        if not self.steps or any(not 0 < s <= 100 for s in self.steps) or self.steps != sorted(self.steps):
            raise ValueError("steps must be increasing percentages in (0, 100], e.g. [10, 50, 100]")
        return self


class AuthSpec(_Spec):
    enabled: bool = True
    token_env: str = "MLOPS_RAY_TOKEN"
    admin_token_env: str = "MLOPS_RAY_ADMIN_TOKEN"


class ServeSpec(_Spec):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    app_name: str = "mlops-ray"
    max_batch_size: int = Field(32, ge=1)
    batch_wait_timeout_s: float = Field(0.001, ge=0)  # measured best on 2 cores (BENCHMARKS.md, Serve)
    max_rows_per_request: int = Field(1000, ge=1)
    max_body_bytes: int = Field(2_000_000, ge=1024)
    body_timeout_s: float = Field(30.0, gt=0)  # a body slower than this (or shorter than its Content-Length): 408
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    canary: CanarySpec = Field(default_factory=CanarySpec)
    auth: AuthSpec = Field(default_factory=AuthSpec)
    replica_cpus: float = Field(0.5, gt=0)
    replica_gpus: float = Field(0.0, ge=0)
    access_log: bool = False  # Serve's per-request access log lines (costly at high request rates)


# ------------------------------------------------------------------------------------------ monitor


class DriftSpec(_Spec):
    alpha: float = Field(0.05, gt=0, lt=1)  # family-wise level after the multiple-testing correction
    correction: Literal["bonferroni", "holm", "bh"] = "holm"
    psi_threshold: float = Field(0.2, gt=0)
    min_rows: int = Field(200, ge=10)


class RetrainSpec(_Spec):
    enabled: bool = True
    max_accuracy_drop: float = Field(0.05, ge=0)  # live accuracy below the holdout accuracy by this
    drifted_features_fraction: float = Field(0.3, gt=0, le=1)
    new_data: str | None = None  # path to new labelled data to add to the training set


class MonitorSpec(_Spec):
    sample_rate: float = Field(1.0, ge=0, le=1)
    flush_rows: int = Field(500, ge=1)
    flush_interval_s: float = Field(5.0, gt=0)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    schedule_s: float | None = Field(None, gt=0)


# --------------------------------------------------------------------------------------------- root


class PipelineConfig(_Spec):
    """A whole pipeline: what `mlops-ray run CONFIG` executes."""

    name: str = Field(pattern=NAME_PATTERN)
    seed: int = 0
    workdir: str | None = None  # default ./work, or MLOPS_RAY_WORKDIR (see runtime.py)
    steps: list[Literal["data", "tune", "register", "deploy"]] = Field(default_factory=lambda: list(STEPS))
    data: DataSpec
    tune: TuneSpec = Field(default_factory=TuneSpec)
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    serve: ServeSpec = Field(default_factory=ServeSpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)

    # Where the YAML came from, so relative data paths resolve against it, not the cwd.
    source_file: str | None = Field(None, exclude=True)

    @property
    def model_name(self) -> str:
        return self.registry.model_name or self.name

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or self.name

    def resolve_path(self, path: str) -> str:
        """A data path relative to the config file's folder (absolute paths and globs pass through)."""
        p = Path(path)
        if p.is_absolute() or self.source_file is None or "://" in path:
            return path
        return str(Path(self.source_file).parent / p)

    def config_hash(self, *sections: str, exclude: dict[str, Any] | None = None) -> str:
        """A stable hash of the spec (or of some sections of it), for lineage and step caching; ``exclude``
        leaves fields out (pydantic's nested form, e.g. ``{"data": {"source": {"path"}}}``)."""
        dumped = self.model_dump(mode="json", by_alias=True, exclude=exclude)
        if sections:
            dumped = {k: dumped[k] for k in sections}
        dumped.pop("workdir", None)
        blob = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _format_errors(err: ValidationError, where: str) -> str:
    lines = [f"invalid pipeline config {where}:"]
    for e in err.errors():
        parts = [str(p) for p in e["loc"] if not str(p).startswith("function-after")]
        # A search-space kind appears twice: the union's tag, then the field (n_estimators.grid.grid).
        parts = [p for i, p in enumerate(parts)
                 if not (p in SPACE_KINDS and i + 1 < len(parts) and parts[i + 1] == p)]
        lines.append(f"  - {'.'.join(parts) or '<root>'}: {e['msg']}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], source: str | None = None) -> PipelineConfig:
    """Validate a dict (already parsed YAML) into a PipelineConfig."""
    where = f"in {source}" if source else "(from a dict)"
    if not isinstance(data, dict):
        raise ConfigError(f"invalid pipeline config {where}: the top level must be a mapping")
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, where)) from e
    cfg.source_file = source
    return cfg


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Load and validate a YAML pipeline spec; ``overrides`` are dotted keys, e.g. {"tune.num_samples": 2}."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; pass a YAML file such as examples/breast_cancer.yaml")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}; pass a YAML file such as examples/breast_cancer.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if data is None:
        raise ConfigError(f"config file {path} is empty")
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    try:
        return parse_config(data, str(path.resolve()))
    except ConfigError as e:
        if not overrides:
            raise
        # The bad value may be one the file never had: name the overrides beside the file.
        raise ConfigError(f"{e}\n  (the file with --set {', '.join(overrides)})") from e


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a mapping")
    node[parts[-1]] = value

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ray.config import load_config, parse_config
from mlops_ray.exceptions import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _base(**extra: object) -> dict:
    return {"name": "t", "data": {"source": {"bundled": "iris"}}, **extra}


def test_minimal_config_gets_defaults() -> None:
    cfg = parse_config(_base())
    assert cfg.steps == ["data", "tune", "register", "deploy"]
    assert cfg.model_name == "t" and cfg.experiment_name == "t"
    assert cfg.data.split.folds == 5 and cfg.serve.port == 8000


def test_unknown_field_names_the_field_and_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: t\ndata:\n  source: {bundled: iris}\n  targte: y\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "data.targte" in msg and str(p.resolve()) in msg


def test_bad_search_space_names_the_parameter() -> None:
    with pytest.raises(ConfigError, match="parameter 'max_depth'"):
        parse_config(_base(tune={"search_space": {"max_depth": {"grdi": [1, 2]}}}))
    with pytest.raises(ConfigError, match="loguniform needs low > 0"):
        parse_config(_base(tune={"search_space": {"lr": {"loguniform": [0, 1]}}}))
    with pytest.raises(ConfigError, match="low <= high"):
        parse_config(_base(tune={"search_space": {"n": {"randint": [5, 1]}}}))
    with pytest.raises(ConfigError, match="low < high"):
        parse_config(_base(tune={"search_space": {"C": {"uniform": [1, 1]}}}))
    parse_config(_base(tune={"search_space": {"n": {"randint": [2, 2]}}}))  # inclusive bounds: the value 2
    with pytest.raises(ConfigError, match="two numbers"):  # was a TypeError traceback
        parse_config(_base(tune={"search_space": {"C": {"uniform": ["a", 2]}}}))
    # A bad value inside a kind is reported against that kind alone: one line, not one per kind.
    for space, text in (({"n": {"choice": []}}, "tune.search_space.n.choice: List should have at least 1"),
                        ({"n": {"randint": [1.5, 3]}}, "tune.search_space.n.randint.0: Input should be")):
        with pytest.raises(ConfigError) as e:
            parse_config(_base(tune={"search_space": space}))
        lines = [ln for ln in str(e.value).splitlines() if ln.strip().startswith("- ")]
        assert len(lines) == 1 and text in lines[0], str(e.value)


def test_source_needs_exactly_one_of_bundled_or_path() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config({"name": "t", "data": {"source": {}}})
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config({"name": "t", "data": {"source": {"bundled": "iris", "path": "x.csv"}}})


def test_canary_steps_must_increase() -> None:
    with pytest.raises(ConfigError, match="increasing"):
        parse_config(_base(serve={"canary": {"steps": [50, 10]}}))


def test_missing_empty_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_config(tmp_path / "empty.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")


def test_overrides_and_hash(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: t\ndata:\n  source: {bundled: iris}\n")
    a = load_config(p)
    b = load_config(p, {"tune.num_samples": 3})
    assert b.tune.num_samples == 3
    assert a.config_hash() != b.config_hash()
    assert a.config_hash() == load_config(p).config_hash()
    # The working directory is where results go, not what is computed: it does not change the hash.
    assert a.config_hash() == load_config(p, {"workdir": "/elsewhere"}).config_hash()
    # A bad override: the error names it beside the file (the file itself has no such key).
    with pytest.raises(ConfigError, match=r"(?s)tune\.nosuch: Extra inputs.*\(the file with --set tune\.nosuch\)"):
        load_config(p, {"tune.nosuch": 1})


def test_relative_data_path_resolves_against_the_config_file(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "c.yaml"
    p.parent.mkdir()
    p.write_text("name: t\ndata:\n  source: {path: data/*.parquet}\n")
    cfg = load_config(p)
    assert cfg.resolve_path(cfg.data.source.path or "") == str(p.parent.resolve() / "data/*.parquet")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    load_config(path)


def test_model_name_is_a_safe_folder_name() -> None:
    base = {"name": "t", "data": {"source": {"bundled": "iris"}}}
    with pytest.raises(ConfigError, match=r"registry\.model_name: String should match pattern"):
        parse_config({**base, "registry": {"model_name": "../elsewhere"}})
    assert parse_config({**base, "registry": {"model_name": "churn-v2.1"}}).model_name == "churn-v2.1"


def test_schema_settings_that_would_be_ignored_are_refused() -> None:
    def cfg(*columns: dict):
        return {"name": "t", "data": {"source": {"path": "x.csv"}, "target": "y", "schema": {"columns": list(columns)}}}

    with pytest.raises(ConfigError, match="'min'/'max' need type float or int"):
        parse_config(cfg({"name": "c", "type": "category", "min": 1}))
    with pytest.raises(ConfigError, match=r"is data\.target: every row needs it"):
        parse_config(cfg({"name": "y", "type": "int", "nullable": True}))
    with pytest.raises(ConfigError, match=r"is data\.target"):
        parse_config(cfg({"name": "y", "type": "int", "required": False}))
    parse_config(cfg({"name": "y", "type": "int"}, {"name": "x", "type": "int", "min": 0, "nullable": True}))


def test_training_hash_ignores_where_the_rows_were_read_from() -> None:
    """A retrain writes the same rows to a new timestamped file each time: same fingerprint, same hash."""
    from mlops_ray.registry.register import training_config_hash

    a = parse_config({"name": "t", "data": {"source": {"path": "work/_retrain/20261127T1/train.parquet"}}})
    b = parse_config({"name": "t", "data": {"source": {"path": "work/_retrain/20261127T2/train.parquet"}}})
    c = parse_config({"name": "t", "data": {"source": {"path": "x.parquet"}, "split": {"folds": 3}}})
    assert training_config_hash(a) == training_config_hash(b) != training_config_hash(c)

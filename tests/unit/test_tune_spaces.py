"""Search spaces: config -> domains -> Ray Tune spaces; clear errors naming the parameter."""

from __future__ import annotations

import pytest

from mlops_ray.config import parse_config
from mlops_ray.exceptions import ConfigError, SearchSpaceError
from mlops_ray.tune.spaces import check_for_searcher, count_trials, describe, parse_space, to_tune
from tests.tune_helpers import tune_config

SPACE = {
    "n_estimators": {"grid": [10, 20]},
    "criterion": {"choice": ["gini", "entropy"]},
    "max_features": {"uniform": [0.2, 0.9]},
    "ccp_alpha": {"loguniform": [1e-4, 1e-1]},
    "min_samples_leaf": {"randint": [1, 4]},
}


def _domains(space: dict) -> list:
    return parse_space(parse_config(tune_config(search_space=space)).tune.search_space)


def test_parse_space_from_config_keeps_every_kind() -> None:
    by_name = {d.name: d for d in _domains(SPACE)}
    assert by_name["n_estimators"].values == (10, 20)
    assert by_name["criterion"].kind == "choice"
    assert (by_name["max_features"].low, by_name["max_features"].high) == (0.2, 0.9)
    assert by_name["min_samples_leaf"].grid_values() == [1, 2, 3, 4]  # randint bounds are inclusive
    assert describe(list(by_name.values()))["ccp_alpha"] == "loguniform[0.0001, 0.1]"


def test_to_tune_random_maps_kinds_to_tune_domains() -> None:
    from ray.tune.search.sample import Categorical, Float, Integer

    space = to_tune(_domains(SPACE), "random")
    assert space["n_estimators"] == {"grid_search": [10, 20]}
    assert isinstance(space["criterion"], Categorical)
    assert isinstance(space["max_features"], Float)
    assert isinstance(space["ccp_alpha"].get_sampler(), Float._LogUniform)
    assert isinstance(space["min_samples_leaf"], Integer)
    assert (space["min_samples_leaf"].lower, space["min_samples_leaf"].upper) == (1, 5)  # Tune's upper is exclusive


def test_to_tune_grid_enumerates_choices_and_small_randint() -> None:
    space = to_tune(_domains({"a": {"grid": [1, 2]}, "b": {"choice": ["x", "y", "z"]}, "c": {"randint": [0, 2]}}),
                    "grid")
    # The last listed value runs first (lists usually go from cheap to expensive: longest trials first).
    assert space == {"a": {"grid_search": [2, 1]}, "b": {"grid_search": ["z", "y", "x"]},
                     "c": {"grid_search": [2, 1, 0]}}
    assert count_trials(_domains({"a": {"grid": [1, 2]}, "b": {"choice": ["x", "y", "z"]}}), "grid", 2) == 12
    # randint's bounds are inclusive, so [2, 2] is one value: a grid of one, and Tune's [2, 3) when sampled.
    assert to_tune(_domains({"k": {"randint": [2, 2]}}), "grid") == {"k": {"grid_search": [2]}}
    sampled = to_tune(_domains({"k": {"randint": [2, 2]}}), "random")["k"]
    assert (sampled.lower, sampled.upper) == (2, 3)


def test_to_tune_optuna_turns_grids_into_categoricals() -> None:
    from ray.tune.search.sample import Categorical

    space = to_tune(_domains({"max_depth": {"grid": [3, None]}}), "optuna")
    assert isinstance(space["max_depth"], Categorical)
    assert space["max_depth"].categories == [3, None]
    assert count_trials(_domains(SPACE), "optuna", 7) == 7
    assert count_trials(_domains(SPACE), "random", 3) == 6  # the grid parameter is crossed with the samples


def test_grid_search_rejects_a_continuous_parameter_by_name() -> None:
    with pytest.raises(SearchSpaceError, match=r"tune\.search_space\.max_features: uniform is not finite"):
        check_for_searcher(_domains(SPACE), "grid")


def test_optuna_rejects_list_values_by_name() -> None:
    with pytest.raises(SearchSpaceError, match=r"hidden_layer_sizes\.grid: Optuna categorical"):
        check_for_searcher(_domains({"hidden_layer_sizes": {"grid": [[8], [8, 8]]}}), "optuna")


@pytest.mark.parametrize(("space", "match"), [
    ({"C": {"uniform": [1.0]}}, r"tune\.search_space\.C\.uniform needs \[low, high\]"),
    ({"C": {"uniform": [2.0, 1.0]}}, r"tune\.search_space\.C\.uniform needs low < high"),
    ({"C": {"loguniform": [0.0, 1.0]}}, r"tune\.search_space\.C\.loguniform needs low > 0"),
    ({"k": {"randint": [1.5, 3]}}, r"tune\.search_space\.k\.randint bounds must be integers"),
    ({"C": {"grid": []}}, r"tune\.search_space\.C\.grid needs a non-empty list"),
    ({"C": {"normal": [0, 1]}}, r"tune\.search_space\.C: unknown kind 'normal'"),
    ({"C": {"uniform": ["a", "b"]}}, r"tune\.search_space\.C\.uniform bounds must be numbers"),
])
def test_bad_space_names_the_field(space: dict, match: str) -> None:
    with pytest.raises(SearchSpaceError, match=match):
        parse_space(space)


def test_bad_space_in_yaml_is_a_config_error_naming_the_parameter() -> None:
    with pytest.raises(ConfigError, match="parameter 'C'"):
        parse_config(tune_config(search_space={"C": {"unifrom": [0, 1]}}))


def test_grid_can_vary_one_parameter_slowest() -> None:
    from ray.tune.search.variant_generator import generate_variants

    for sizes in ([10, 30, 20], [30, 20, 10]):  # as written, or in any order
        domains = _domains({"max_depth": {"grid": [2, 4]}, "n_estimators": {"grid": sizes}})
        space = to_tune(domains, "grid", slowest="n_estimators")
        assert list(space) == ["n_estimators", "max_depth"]
        order = [v["n_estimators"] for _, v in generate_variants(space)]
        assert order == [30, 30, 20, 20, 10, 10]  # every config of the largest size first

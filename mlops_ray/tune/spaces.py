"""Search spaces: the config's ``tune.search_space`` as plain domains, then as Ray Tune / Optuna spaces.

The checks and the arithmetic (how many trials a grid makes) are plain Python; ``to_tune`` imports
``ray.tune`` lazily, only to build its domain objects (no cluster is needed for that).

How each kind maps, per searcher:

===========  ======================  ======================  ===================================
config       search: grid            search: random          search: optuna (TPE)
===========  ======================  ======================  ===================================
grid         every value (last       every value (crossed    categorical
             listed runs first)      with the samples)
choice       every value             uniform choice          categorical
uniform      error (not finite)      uniform                 float
loguniform   error (not finite)      log-uniform             float, log scale
randint      every integer if <=100  integer, both ends in   integer, both ends in
===========  ======================  ======================  ===================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlops_ray.exceptions import SearchSpaceError

SEARCHERS = ("grid", "random", "optuna")
MAX_RANDINT_GRID = 100
_OPTUNA_VALUE_TYPES = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class ParamDomain:
    """One searched parameter: ``kind`` is grid/choice (``values``) or uniform/loguniform/randint (bounds)."""

    name: str
    kind: str
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0

    @property
    def finite(self) -> bool:
        return self.kind in ("grid", "choice") or (self.kind == "randint" and self.size() <= MAX_RANDINT_GRID)

    def size(self) -> int:
        if self.kind == "randint":
            return int(self.high) - int(self.low) + 1
        return len(self.values) if self.values else math.inf  # type: ignore[return-value]

    def grid_values(self) -> list[Any]:
        if self.kind == "randint":
            return list(range(int(self.low), int(self.high) + 1))
        return [_plain(v) for v in self.values]


def _plain(v: Any) -> Any:
    # YAML lists become tuples so that sklearn parameters like hidden_layer_sizes hash and compare.
    return tuple(_plain(x) for x in v) if isinstance(v, list) else v


def parse_space(search_space: dict[str, Any]) -> list[ParamDomain]:
    """Config search space (pydantic models or plain dicts) -> domains, checked; errors name the field."""
    domains: list[ParamDomain] = []
    for name, spec in search_space.items():
        raw = spec.model_dump() if hasattr(spec, "model_dump") else spec
        if not isinstance(raw, dict) or len(raw) != 1:
            raise SearchSpaceError(f"tune.search_space.{name}: expected one of grid, choice, uniform, loguniform, "
                                   f"randint as its only key, got {raw!r}")
        kind, arg = next(iter(raw.items()))
        where = f"tune.search_space.{name}.{kind}"
        if kind in ("grid", "choice"):
            if not isinstance(arg, list | tuple) or not arg:
                raise SearchSpaceError(f"{where} needs a non-empty list of values, got {arg!r}")
            domains.append(ParamDomain(name, kind, values=tuple(_plain(v) for v in arg)))
        elif kind in ("uniform", "loguniform", "randint"):
            if not isinstance(arg, list | tuple) or len(arg) != 2:
                raise SearchSpaceError(f"{where} needs [low, high], got {arg!r}")
            low, high = arg
            if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (low, high)):
                raise SearchSpaceError(f"{where} bounds must be numbers, got {arg!r}")
            if low > high or (low == high and kind != "randint"):  # randint's bounds are inclusive: [2, 2] is 2
                raise SearchSpaceError(f"{where} needs low {'<=' if kind == 'randint' else '<'} high, got {arg!r}")
            if kind == "loguniform" and low <= 0:
                raise SearchSpaceError(f"{where} needs low > 0, got {low!r}")
            if kind == "randint" and (int(low) != low or int(high) != high):
                raise SearchSpaceError(f"{where} bounds must be integers, got {arg!r}")
            domains.append(ParamDomain(name, kind, low=float(low), high=float(high)))
        else:
            raise SearchSpaceError(f"tune.search_space.{name}: unknown kind {kind!r}; "
                                   "use grid, choice, uniform, loguniform or randint")
    return domains


def check_for_searcher(domains: list[ParamDomain], search: str) -> None:
    """Reject combinations the searcher cannot run, naming the parameter."""
    if search not in SEARCHERS:
        raise SearchSpaceError(f"tune.search {search!r} is not supported; use one of {', '.join(SEARCHERS)}")
    for d in domains:
        if search == "grid" and not d.finite:
            raise SearchSpaceError(
                f"tune.search_space.{d.name}: {d.kind} is not finite, so search 'grid' cannot enumerate it; "
                "give it as a grid/choice list, or use search: random or optuna"
            )
        if search == "optuna" and d.kind in ("grid", "choice"):
            bad = [v for v in d.values if not isinstance(v, _OPTUNA_VALUE_TYPES)]
            if bad:
                raise SearchSpaceError(
                    f"tune.search_space.{d.name}.{d.kind}: Optuna categorical values must be None, bool, int, "
                    f"float or str; got {bad[0]!r}. Use search: random or grid for such values"
                )


def count_trials(domains: list[ParamDomain], search: str, num_samples: int) -> int:
    """How many trials the search will run."""
    if search == "optuna":
        return num_samples
    kinds = ("grid", "choice", "randint") if search == "grid" else ("grid",)
    size = 1
    for d in domains:
        if d.kind in kinds:
            size *= d.size()
    return size * num_samples


def to_tune(domains: list[ParamDomain], search: str, slowest: str | None = None) -> dict[str, Any]:
    """Domains -> a Ray Tune ``param_space`` for the searcher (see the module table).

    ``slowest``: the grid parameter to vary slowest (Tune varies the first listed slowest): with shared
    warm-start paths, every group's largest size runs before the sizes that read its path.
    """
    from ray import tune

    check_for_searcher(domains, search)
    space: dict[str, Any] = {}
    for d in sorted(domains, key=lambda d: d.name != slowest):
        if search == "grid":
            # Enumerated last value first: lists are usually written cheap to expensive (n_estimators, depth,
            # epochs), and starting the longest trials first keeps CPUs from idling at the end of the search
            # (longest-processing-time-first). The set of trials is the same.
            values = d.grid_values()[::-1]
            if d.name == slowest:  # the warm-start size: largest first whatever the written order
                values = sorted(values, reverse=True)
            space[d.name] = tune.grid_search(values)
        elif search == "random" and d.kind == "grid":
            space[d.name] = tune.grid_search(d.grid_values())
        elif d.kind in ("grid", "choice"):
            space[d.name] = tune.choice(d.grid_values())
        elif d.kind == "uniform":
            space[d.name] = tune.uniform(d.low, d.high)
        elif d.kind == "loguniform":
            space[d.name] = tune.loguniform(d.low, d.high)
        else:  # randint: Tune's upper bound is exclusive, the config's inclusive
            space[d.name] = tune.randint(int(d.low), int(d.high) + 1)
    return space


def describe(domains: list[ParamDomain]) -> dict[str, str]:
    """A short text per parameter, for the MLflow parent run."""
    out = {}
    for d in domains:
        if d.kind in ("grid", "choice"):
            out[d.name] = f"{d.kind}{list(d.values)}"
        else:
            out[d.name] = f"{d.kind}[{d.low:g}, {d.high:g}]"
    return out

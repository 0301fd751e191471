"""The Markdown model card stored with every registered version. Pure text formatting."""

from __future__ import annotations

from typing import Any

from mlops_ray.registry.gate import GateDecision


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows]
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def model_card(*, name: str, version: str, task: str, lineage: dict[str, str], data: dict[str, Any],
               features: dict[str, Any], config: dict[str, Any], cv: dict[str, Any],
               holdout: dict[str, float], decision: GateDecision, aliases: list[str]) -> str:
    """A short card: data, features, config, CV and holdout metrics, gate decision, lineage."""
    parts = [
        f"# {name} v{version}",
        f"Task: **{task}**. Aliases after registration: {', '.join(aliases) or 'none'}.",
        "## Gate decision",
        f"**{'accepted' if decision.accepted else 'rejected'}**: {decision.reason}",
    ]
    if decision.thresholds:
        parts.append(_table([(f"threshold {t.metric} ({t.kind} {t.limit:g})",
                              f"{t.value:.4g} {'pass' if t.passed else 'FAIL'}") for t in decision.thresholds]))
    if decision.bootstrap is not None:
        bs = decision.bootstrap
        parts.append(_table([
            ("metric", f"{decision.metric} ({decision.mode})"),
            ("challenger", _fmt(decision.challenger_score)),
            (f"champion v{decision.champion_version}", _fmt(decision.champion_score)),
            ("improvement", f"{bs.delta:+.4g}"),
            (f"{bs.confidence:.0%} CI (paired bootstrap, {bs.n_bootstrap} resamples)",
             f"[{bs.ci_low:+.4g}, {bs.ci_high:+.4g}]"),
            ("margin", f"{decision.margin:g}"),
            ("holdout rows", bs.n_rows),
        ]))
    parts += ["## Metrics",
              _table([*[(f"CV {k}", _fmt(v)) for k, v in cv.items()],
                      *[(f"holdout {k}", _fmt(v)) for k, v in sorted(holdout.items())]]),
              "## Data", _table(list(data.items())),
              "## Features", _table(list(features.items())),
              "## Configuration", _table([(k, f"`{v}`") for k, v in config.items()]),
              "## Lineage", _table(list(lineage.items()))]
    return "\n\n".join(parts) + "\n"

"""The monitor's report: PNG plots (matplotlib, Agg) and one self-contained HTML file embedding them."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mlops_ray.monitor.drift import FeatureDrift
    from mlops_ray.monitor.result import MonitorReport

MAX_FEATURE_PLOTS = 24


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    # A bare Figure (no pyplot): no global state, no GUI backend, safe in threads and Ray workers.
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def distributions_png(features: list[FeatureDrift], title: str = "reference vs live") -> bytes:
    """One small bar chart per feature: reference and live share in each bin / category."""
    feats = features[:MAX_FEATURE_PLOTS]
    cols = min(4, max(1, len(feats)))
    rows = max(1, math.ceil(len(feats) / cols))
    fig = _figure(4.0 * cols, 2.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(feats):]:
        ax.set_visible(False)
    for ax, f in zip(axes.flat, feats, strict=False):
        x = range(len(f.labels))
        ax.bar([i - 0.2 for i in x], f.ref_share, width=0.4, label="reference", color="#4c72b0")
        ax.bar([i + 0.2 for i in x], f.live_share, width=0.4, label="live", color="#dd8452")
        flag = " DRIFT" if f.drifted else ""
        ax.set_title(f"{f.name}{flag}  PSI={f.psi:.3f}  p={f.p_adjusted:.2g}", fontsize=8,
                     color="#b00020" if f.drifted else "black")
        if f.kind == "categorical" and len(f.labels) <= 12:
            ax.set_xticks(list(x), [s[:10] for s in f.labels], rotation=45, fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_xlabel("reference quantile bins", fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def scores_png(features: list[FeatureDrift], alpha: float, psi_threshold: float) -> bytes:
    """PSI per feature (with the threshold) and -log10 adjusted p-value (with alpha)."""
    names = [f.name for f in features]
    fig = _figure(max(6.0, 0.35 * len(names) + 3), 5.5)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    colors = ["#b00020" if f.material else ("#dd8452" if f.drifted else "#4c72b0") for f in features]
    ax1.bar(names, [f.psi for f in features], color=colors)
    ax1.axhline(psi_threshold, ls="--", color="black", lw=1, label=f"psi_threshold {psi_threshold}")
    ax1.set_ylabel("PSI")
    ax1.legend(fontsize=7)
    ax2.bar(names, [-math.log10(max(f.p_adjusted, 1e-300)) for f in features], color=colors)
    ax2.axhline(-math.log10(alpha), ls="--", color="black", lw=1, label=f"alpha {alpha}")
    ax2.set_ylabel("-log10 adjusted p")
    ax2.legend(fontsize=7)
    ax2.tick_params(axis="x", rotation=60, labelsize=7)
    fig.suptitle("drift scores (red: material, orange: significant only)", fontsize=10)
    return _png(fig)


def metric_png(points: list[dict[str, Any]], baseline: float | None, metric: str) -> bytes:
    """The live metric per window of labelled rows, its interval, and the holdout baseline."""
    fig = _figure(7.0, 3.2)
    ax = fig.subplots()
    if points:
        xs = [p["end"] for p in points]
        ax.plot(xs, [p["estimate"] for p in points], marker="o", label=f"live {metric}")
        ax.fill_between(xs, [p["low"] for p in points], [p["high"] for p in points], alpha=0.25, label="95% CI")
        ax.tick_params(axis="x", rotation=30, labelsize=7)
    else:
        ax.text(0.5, 0.5, "no feedback labels yet", ha="center", va="center", transform=ax.transAxes)
    if baseline is not None:
        ax.axhline(baseline, ls="--", color="black", lw=1, label=f"holdout {baseline:.3f}")
    ax.set_ylabel(metric)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set_title(f"live {metric} over time", fontsize=10)
    return _png(fig)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4g}"
    return html.escape(str(v))


def render_html(report: MonitorReport, images: dict[str, bytes]) -> str:
    d = report.drift
    rows = "".join(
        f"<tr class='{'bad' if f.material else ('warn' if f.drifted else '')}'><td>{html.escape(f.name)}</td>"
        f"<td>{f.kind}</td><td>{f.test}</td><td>{_fmt(f.statistic)}</td><td>{_fmt(f.p_value)}</td>"
        f"<td>{_fmt(f.p_adjusted)}</td><td>{_fmt(f.psi)}</td><td>{'yes' if f.drifted else 'no'}</td>"
        f"<td>{'yes' if f.material else 'no'}</td><td>{_fmt(f.missing_rate_live)}</td>"
        f"<td>{html.escape(', '.join(list(f.new_categories)[:5]))}</td></tr>"
        for f in ([*d.features, d.prediction] if d.prediction else d.features)
    )
    perf = report.performance
    live = perf.live
    perf_txt = (f"{live.estimate:.4f} (95% CI {live.low:.4f} - {live.high:.4f}, n={live.n}, {live.method})"
                if live is not None and live.n else "unknown")
    decision = report.decision
    verdict = "RETRAIN" if decision.retrain else "no action"
    items = "".join(f"<li>{html.escape(r)}</li>" for r in decision.reasons) or "<li>no rule fired</li>"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in [*decision.notes, *report.notes])
    imgs = "".join(f"<h2>{html.escape(k)}</h2>{_img(v, k)}" for k, v in images.items())
    summary = json.dumps(report.summary_dict(), indent=1, default=str)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>monitor {html.escape(report.model_name)} v{html.escape(report.version)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px}} tr.bad{{background:#fdd}} tr.warn{{background:#ffe9cc}}
.verdict{{font-size:1.4em;font-weight:bold}} img{{max-width:100%}} pre{{background:#f6f6f6;padding:1em}}</style>
</head><body>
<h1>Monitor report: {html.escape(report.model_name)} version {html.escape(report.version)}</h1>
<p>generated {html.escape(str(report.generated_at))}; {report.n_rows} logged rows in {report.n_files} files
({html.escape(str(report.time_range[0]))} to {html.escape(str(report.time_range[1]))});
{report.n_labelled} with feedback labels ({report.n_feedback} labels received).</p>
<p class="verdict">Decision: {verdict}</p><ul>{items}</ul>
<h2>Live {html.escape(perf.metric)}</h2><p>{perf_txt}; holdout baseline
{_fmt(perf.baseline) if perf.baseline is not None else "unknown"}; status <b>{perf.status}</b></p>
<h2>Drift (alpha {d.alpha}, {d.correction} correction, PSI threshold {d.psi_threshold})</h2>
<p>family decision: <b>{"drift" if d.drift_detected else "no drift"}</b>{"" if d.enough_data else
 f" (only {d.n_live} rows &lt; min_rows {d.min_rows}: not judged)"}</p>
<table><tr><th>column</th><th>kind</th><th>test</th><th>statistic</th><th>p</th><th>p adjusted</th><th>PSI</th>
<th>drifted</th><th>material</th><th>missing (live)</th><th>new categories</th></tr>{rows}</table>
<h2>Notes</h2><ul>{notes or "<li>none</li>"}</ul>
{imgs}
<h2>Summary (JSON)</h2><pre>{html.escape(summary)}</pre>
</body></html>"""


def write_report(report: MonitorReport, out_dir: Path) -> dict[str, Path]:
    """Write the PNGs, report.html and summary.json into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    d = report.drift
    images = {
        "distributions": distributions_png(d.features + ([d.prediction] if d.prediction else [])),
        "drift_scores": scores_png(d.features, d.alpha, d.psi_threshold) if d.features else b"",
        "metric_over_time": metric_png(report.metric_over_time, report.performance.baseline,
                                       report.performance.metric),
    }
    images = {k: v for k, v in images.items() if v}
    paths: dict[str, Path] = {}
    for k, png in images.items():
        paths[k] = out_dir / f"{k}.png"
        paths[k].write_bytes(png)
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(render_html(report, images))
    paths["json"] = out_dir / "summary.json"
    paths["json"].write_text(json.dumps(report.to_dict(), indent=1, default=str))
    return paths

"""Render the pooled evaluation (pool.json) as one self-contained, printable HTML file with forest plots."""

from __future__ import annotations

from typing import Any

from earlysignal.report import plots


def forest_plot(metric: dict[str, Any]) -> str | None:
    """Each borough's estimate with its interval and the random-effects pool as a diamond (a data URI)."""
    rows = [r for r in metric["boroughs"] if r.get("value") is not None]
    if not rows:
        return None
    pooled = metric.get("pooled")
    height = 0.45 * (len(rows) + (2 if pooled else 0)) + 0.9
    figure, axis = plots.plt.subplots(figsize=(6.4, height))
    labels = []
    for index, row in enumerate(rows):
        y = len(rows) - index + (1 if pooled else 0)
        if row.get("ci_low") is not None and row.get("ci_high") is not None:
            axis.plot([row["ci_low"], row["ci_high"]], [y, y], color=plots.INK, linewidth=1.5)
        axis.plot([row["value"]], [y], marker="s", color=plots.ACCENT, markersize=6)
        labels.append((y, row["borough"]))
    if pooled:
        low, mid, high = pooled["ci_low"], pooled["value"], pooled["ci_high"]
        axis.fill([low, mid, high, mid], [0.5, 0.8, 0.5, 0.2], color=plots.WARN)
        labels.append((0.5, "pooled (random effects)"))
        axis.axvline(mid, color=plots.WARN, linewidth=0.8, linestyle=":")
    axis.set_yticks([y for y, _ in labels])
    axis.set_yticklabels([text for _, text in labels], fontsize=8)
    axis.set_xlabel(metric["words"])
    axis.grid(alpha=0.3, axis="x")
    return plots._data_uri(figure)


def render_pool_html(document: dict[str, Any]) -> str:
    """The pooled report's HTML (no script, no external URL) from pool.json alone."""
    from earlysignal.report.render import _environment

    figures = {
        (index, name): forest_plot(metric)
        for index, block in enumerate(document["sets"])
        for name, metric in block["metrics"].items()
    }
    return _environment().get_template("pool.html").render(pool=document, figures=figures)

"""The necessity table and plot: as a page of its own and as a block the audit report includes."""

from __future__ import annotations

from typing import Any

from earlysignal.report.plots import ACCENT, INK, MUTED, WARN, _data_uri, plt
from earlysignal.report.render import _environment

METRIC_WORDS = {"precision_at_capacity": "precision at capacity", "roc_auc": "AUC"}


def contribution_plot(document: dict[str, Any]) -> str | None:
    """Loss in precision at capacity and in AUC when each source / proxy group is left out, with intervals."""
    rows = document.get("variants") or []
    if not rows:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(8.4, 0.45 * len(rows) + 1.4), sharey=True)
    labels = [(r.get("label") or r["name"]) + (" (proxy group)" if r["kind"] == "proxy_group" else "") for r in rows]
    for axis, metric in zip(axes, METRIC_WORDS, strict=True):
        for y, row in enumerate(rows):
            entry = row["contribution"][metric]
            if entry["value"] is None:
                continue
            low = entry["ci_low"] if entry["ci_low"] is not None else entry["value"]
            high = entry["ci_high"] if entry["ci_high"] is not None else entry["value"]
            colour = ACCENT if row["necessary"] else MUTED
            axis.plot([low, high], [y, y], color=colour, linewidth=2)
            axis.plot([entry["value"]], [y], "o", color=colour)
        if all(row["contribution"][metric]["value"] is None for row in rows):
            # Every figure withheld (small numbers): say so rather than leave an empty panel.
            axis.text(0.5, 0.5, "withheld (small numbers)", transform=axis.transAxes, ha="center", va="center",
                      fontsize=9, color=MUTED)
            axis.set_xticks([])
        else:
            axis.axvline(0, color=WARN, linewidth=1)
        axis.set_title(f"loss in {METRIC_WORDS[metric]} without it", fontsize=9, color=INK)
        axis.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(range(len(rows)), labels, fontsize=8)
    axes[0].invert_yaxis()
    return _data_uri(figure)


def necessity_context(document: dict[str, Any]) -> dict[str, Any]:
    """What the necessity block needs: the document, its plot and the metric words."""
    return {"necessity": document, "necessity_plot": contribution_plot(document), "necessity_words": METRIC_WORDS}


def render_necessity_html(document: dict[str, Any]) -> str:
    """A self-contained page holding only the necessity block (inline CSS, embedded PNG, no scripts)."""
    return _environment().get_template("necessity.html").render(**necessity_context(document))

"""Report figures (matplotlib, Agg), returned as base64 PNG data URIs so the report is one file."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

INK = "#1f2a44"
ACCENT = "#0b6e99"
WARN = "#b3261e"
MUTED = "#8a94a6"


def _data_uri(figure: Any) -> str:
    buffer = io.BytesIO()
    # Fixed metadata so the same audit gives the same bytes.
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def k_curve_plot(curves: dict[str, Any]) -> str | None:
    """Precision@k and recall@k against k, with the capacity marked."""
    if not curves.get("k"):
        return None
    figure, axis = plt.subplots(figsize=(6.4, 3.4))
    # Points withheld for small numbers (None) are gaps in the curve.
    precision = [math.nan if v is None else v for v in curves["precision"]]
    recall = [math.nan if v is None else v for v in curves["recall"]]
    axis.plot(curves["k"], precision, color=ACCENT, label="precision@k (share of flagged who escalated)")
    axis.plot(curves["k"], recall, color=INK, linestyle="--", label="recall@k (share of escalations flagged)")
    axis.axvline(curves["capacity"], color=WARN, linewidth=1)
    axis.annotate("capacity", (curves["capacity"], 0.95), color=WARN, xytext=(4, 0), textcoords="offset points")
    axis.set_xlabel("k: number of residents reviewed per as-of date")
    axis.set_ylim(0, 1)
    axis.legend(loc="center right", fontsize=8, frameon=False)
    axis.grid(alpha=0.3)
    return _data_uri(figure)


def calibration_plot(points: list[dict[str, Any]]) -> str | None:
    """Reliability curve: observed escalation rate against mean predicted score per score band."""
    # Bands whose observed rate is suppressed (small numbers) are left out of the curve.
    points = [p for p in points if p.get("observed") is not None and p.get("mean_score") is not None]
    if not points:
        return None
    figure, axis = plt.subplots(figsize=(4.2, 3.6))
    x = [p["mean_score"] for p in points]
    y = [p["observed"] for p in points]
    top = max(max(x), max(y), 1e-3) * 1.05
    axis.plot([0, top], [0, top], color=MUTED, linestyle=":", label="perfect calibration")
    axis.plot(x, y, marker="o", color=ACCENT, label="model")
    axis.set_xlabel("mean predicted probability")
    axis.set_ylabel("observed escalation rate")
    axis.set_xlim(0, top)
    axis.set_ylim(0, top)
    axis.legend(fontsize=8, frameon=False)
    axis.grid(alpha=0.3)
    return _data_uri(figure)


def ratio_plot(characteristic: dict[str, Any], metric: str, band: tuple[float, float], title: str) -> str | None:
    """Disparity ratios with intervals for one characteristic and metric; the fair band shaded."""
    rows = [
        (g["group"], g["ratios"][metric])
        for g in characteristic.get("groups", [])
        # A ratio of 0 (a group never flagged) has no place on a log scale; the findings say it in words.
        if metric in g.get("ratios", {}) and g["ratios"][metric]["ratio"]
    ]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(6.4, 0.45 * len(rows) + 1.0))
    axis.axvspan(band[0], band[1], color="#e3f1e6", zorder=0)
    axis.axvline(1, color=MUTED, linewidth=1)
    for i, (_, r) in enumerate(rows):
        colour = WARN if r["finding"] else ACCENT
        if r["low"] is not None and r["high"] is not None:
            axis.plot([r["low"], r["high"]], [i, i], color=colour, linewidth=2)
        axis.plot([r["ratio"]], [i], marker="o", color=colour)
    axis.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    axis.set_xscale("log")
    # Plain tick labels (0.5, 1, 2) rather than powers of ten: a board reads "twice as often".
    values = [v for _, r in rows for v in (r["ratio"], r["low"], r["high"]) if v]
    ticks = [t for t in (0.1, 0.25, 0.5, 0.8, 1, 1.25, 2, 4, 10) if min(values + [band[0]]) / 1.5 <= t <= max(values + [band[1]]) * 1.5]
    axis.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel(f"{title} ratio vs {characteristic['reference']} (log scale; green band = {band[0]}–{band[1]})")
    axis.invert_yaxis()
    axis.grid(alpha=0.3, axis="x")
    return _data_uri(figure)


def importance_plot(importance: list[dict[str, Any]], top: int = 15) -> str | None:
    """Horizontal bars of mean |contribution| for the top features."""
    if not importance:
        return None
    items = importance[:top]
    figure, axis = plt.subplots(figsize=(6.4, 0.32 * len(items) + 1.0))
    names = [i["feature"] for i in items]
    values = [i["mean_abs_contribution"] for i in items]
    colours = [WARN if "raise" in i["direction"] else ACCENT if "lower" in i["direction"] else MUTED for i in items]
    axis.barh(range(len(items)), values, color=colours)
    axis.set_yticks(range(len(items)), names, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("mean |SHAP contribution| (log-odds); red: higher values raise the score")
    axis.grid(alpha=0.3, axis="x")
    return _data_uri(figure)

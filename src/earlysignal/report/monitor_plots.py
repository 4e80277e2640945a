"""Monitoring figures (matplotlib, Agg) as base64 PNG data URIs, drawn from monitor.json only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from earlysignal.report.plots import ACCENT, INK, MUTED, WARN, _data_uri, plt


def realised_plot(lists: list[dict[str, Any]], promise: dict[str, Any] | None, metric: str, words: str) -> str | None:
    """A realised metric per list (with its interval) against the audit's promised interval."""
    points = [e for e in lists if e["labels_known"] and e[metric]["value"] is not None]
    if not points:
        return None
    figure, axis = plt.subplots(figsize=(6.4, 3.2))
    x = [dt.date.fromisoformat(e["as_of"]) for e in points]
    y = [e[metric]["value"] for e in points]
    low = [e[metric]["ci_low"] if e[metric]["ci_low"] is not None else v for e, v in zip(points, y, strict=True)]
    high = [e[metric]["ci_high"] if e[metric]["ci_high"] is not None else v for e, v in zip(points, y, strict=True)]
    axis.errorbar(x, y, yerr=[[v - lo for v, lo in zip(y, low, strict=True)], [hi - v for v, hi in zip(y, high, strict=True)]],
                  fmt="o-", color=ACCENT, capsize=3, label=f"realised {words} (95% interval)")
    entry = (promise or {}).get(metric)
    if isinstance(entry, dict) and entry.get("value") is not None:
        axis.axhline(entry["value"], color=INK, linestyle="--", linewidth=1, label="audit's promise")
        if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
            axis.axhspan(entry["ci_low"], entry["ci_high"], color=MUTED, alpha=0.2, label="audit's interval")
    axis.set_ylim(0, 1)
    axis.set_xlabel("list as-of date")
    axis.set_ylabel(words)
    axis.legend(fontsize=8, frameon=False, loc="upper right")
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _data_uri(figure)


def volume_plot(source: dict[str, Any], periods: dict[str, str], status: str) -> str | None:
    """One source's monthly records (as known at monitoring), the reference mean and the recent months."""
    months = [(dt.date.fromisoformat(m), c) for m, c in source["monthly"].items()]
    if not months:
        return None
    figure, axis = plt.subplots(figsize=(6.4, 2.4))
    x = [m for m, _ in months]
    y = [c if c is not None else 0 for _, c in months]
    axis.plot(x, y, color=WARN if status == "red" else ACCENT, marker=".", label="records per month")
    if source["reference_monthly_mean"] is not None:
        axis.axhline(source["reference_monthly_mean"], color=MUTED, linestyle=":", label="reference mean")
    axis.axvspan(dt.date.fromisoformat(periods["recent_start"]), dt.date.fromisoformat(periods["recent_end"]),
                 color=MUTED, alpha=0.15, label="recent months")
    axis.set_ylim(bottom=0)
    axis.set_title(source["source"], fontsize=10, loc="left")
    axis.legend(fontsize=7, frameon=False, loc="lower left")
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _data_uri(figure)

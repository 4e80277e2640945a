"""Render monitor.json as one self-contained HTML page (inline CSS, embedded PNGs, no scripts)."""

from __future__ import annotations

from typing import Any

from earlysignal.report import monitor_plots, plots
from earlysignal.report.render import _environment


def monitor_figures(document: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the monitoring page, as data URIs."""
    volume_status = next((c.get("per_source", {}) for c in document["criteria"] if c["kind"] == "source_volume_drop"), {})
    periods = document["sources"]["periods"]
    return {
        "precision": monitor_plots.realised_plot(document["lists"], document["promise"], "precision_at_capacity",
                                                 "precision at capacity"),
        "recall": monitor_plots.realised_plot(document["lists"], document["promise"], "recall_at_capacity",
                                              "recall at capacity"),
        "calibration": plots.calibration_plot(document["calibration"]),
        "volumes": {
            s["source"]: monitor_plots.volume_plot(s, periods, volume_status.get(s["source"], ""))
            for s in document["sources"]["per_source"]
        },
    }


def render_monitor_html(document: dict[str, Any]) -> str:
    """The monitoring page HTML for a monitor document."""
    template = _environment().get_template("monitor.html")
    return template.render(doc=document, figures=monitor_figures(document))

"""Render the audit document (audit.json) as one self-contained, printable HTML file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2

from earlysignal.report import plots

TEMPLATE_DIR = Path(__file__).parent / "templates"
SECTION_HEADINGS = (
    "Summary for the board",
    "Model card and transparency record",
    "Data",
    "Performance over time",
    "Fairness",
    "Small numbers",
    "What drives the scores",
    "Limitations",
    "Approval",
)
SCORER_WORDS = {
    "model": "Model",
    "prior": "Baseline: base rate",
    "one_feature": "Baseline: one feature",
    "logistic": "Baseline: logistic regression",
    "oracle": "Oracle (synthetic truth)",
}


def _pct(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * float(value):.{digits}f}%"


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _interval(entry: Any, digits: int = 3) -> str:
    """'0.412 (0.371–0.455)' from {'value', 'ci_low', 'ci_high'}."""
    if not isinstance(entry, dict) or entry.get("value") is None:
        return "–"
    text = _num(entry["value"], digits)
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" ({_num(entry['ci_low'], digits)}–{_num(entry['ci_high'], digits)})"
    return text


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["interval"] = _interval
    return env


def figures(audit: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the report, as data URIs, drawn from the audit document only."""
    fairness = audit["fairness"]
    band = tuple(fairness["ratio_band"])
    ratio_figures: dict[str, dict[str, str | None]] = {}
    for block in fairness["characteristics"]:
        if "groups" not in block:
            continue
        ratio_figures[block["key"]] = {
            metric: plots.ratio_plot(block, metric, band, words)  # type: ignore[arg-type]
            for metric, words in (("selection_rate", "flagged rate"), ("fpr", "false positive rate"))
        }
    return {
        "k_curves": plots.k_curve_plot(audit["performance"]["k_curves"]),
        "calibration": plots.calibration_plot(audit["performance"]["calibration"]),
        "importance": plots.importance_plot(audit["drivers"]["importance"]),
        "ratios": ratio_figures,
        "necessity_plot": _necessity_plot(audit),
    }


def _necessity_plot(audit: dict[str, Any]) -> str | None:
    # Imported here: the necessity renderer uses this module's Jinja environment.
    from earlysignal.report.necessity_render import contribution_plot

    return contribution_plot(audit["necessity"]) if audit.get("necessity") else None


def render_audit_html(audit: dict[str, Any]) -> str:
    """The report HTML for an audit document: inline CSS, embedded PNGs, no scripts, no external URLs."""
    template = _environment().get_template("audit.html")
    return template.render(
        audit=audit,
        figures=figures(audit),
        headings=SECTION_HEADINGS,
        scorer_words=SCORER_WORDS,
    )


def _count_or_dash(value: Any) -> str:
    return "–" if value is None else str(value)


def render_external_audit_html(audit: dict[str, Any]) -> str:
    """The report HTML for an audit of scores from elsewhere (audit.external): names whose scores it audits."""
    env = _environment()
    env.filters["count_or_dash"] = _count_or_dash
    return env.get_template("external_audit.html").render(audit=audit)

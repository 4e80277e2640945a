"""Caseworker pages: the case list and a resident's journey, each one self-contained HTML file
(inline CSS, inline SVG, a few lines of inline script, no external URLs)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from earlysignal.report.render import TEMPLATE_DIR

JUDGEMENT_NOTE = (
    "A score supports, and never replaces, professional judgement. It says which records raised the "
    "chance of escalation in this model; it does not say that anything has happened or will happen."
)
REASON_COLOURS = ("#c0392b", "#1f6fb2", "#7d3c98")  # reason 1, 2, 3
MEMBER_COLOURS = ("#1f2a44", "#d35400", "#16a085", "#8e44ad", "#b7950b", "#2e86c1", "#a93226", "#5d6d7e")

LANE_HEIGHT = 34
LEFT = 250
WIDTH = 1040
TOP = 28


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: f"{100 * float(v):.1f}%"
    return env


def _json_for_script(data: Any) -> Markup:
    # Inside <script type="application/json">, only "</" can end the element early.
    return Markup(json.dumps(data, sort_keys=True).replace("</", "<\\/"))


def render_case_list(rows: list[dict[str, Any]], summary: dict[str, Any], total: int, wording: Any) -> str:
    """The case list page: rows from caselist.case_list_rows, the score summary, the full list's size."""
    return _environment().get_template("case_list.html").render(
        rows=rows,
        summary=summary,
        total=total,
        judgement=JUDGEMENT_NOTE,
        reason_colours=REASON_COLOURS,
    )


def timeline(journey: dict[str, Any]) -> dict[str, Any]:
    """SVG geometry for the journey: lanes (one per source, then outcomes), year ticks, markers.

    x runs from the first record (at least a year before as_of) to as_of; each event is a marker in
    its source's lane, shaped by who it is about (circle: the resident, square: a household member,
    diamond: the home), filled with that person's colour and ringed in its reasons' colours.
    """
    as_of = pd.Timestamp(journey["as_of"])
    dates = [pd.Timestamp(e["date"]) for e in journey["events"]] + [pd.Timestamp(o["date"]) for o in journey["outcomes"]]
    start = min([*dates, as_of - pd.Timedelta(days=365)])
    start = pd.Timestamp(year=start.year, month=1, day=1)
    span = max((as_of - start).days, 1)
    plot = WIDTH - LEFT - 20

    def x(date: str) -> float:
        return round(LEFT + plot * (pd.Timestamp(date) - start).days / span, 1)

    lanes = [{"key": lane["source"], "label": lane["label"]} for lane in journey["lanes"]]
    lanes.append({"key": "__outcomes__", "label": "Outcomes recorded"})
    y_of = {lane["key"]: TOP + LANE_HEIGHT * i + LANE_HEIGHT / 2 for i, lane in enumerate(lanes)}
    for lane in lanes:
        lane["y"] = y_of[lane["key"]]
    colour_of = {m["role"]: MEMBER_COLOURS[i % len(MEMBER_COLOURS)] for i, m in enumerate(journey["household"]["members"])}
    colour_of["the home"] = "#6b7280"
    reason_text = {r["rank"]: r["text"] for r in journey["reasons"]}
    markers = []
    for event in journey["events"]:
        shape = {"resident": "circle", "household": "square", "home": "diamond"}[event["about"]]
        markers.append({
            "event_id": event["event_id"],
            "x": x(event["date"]),
            "y": y_of[event["lane"]],
            "shape": shape,
            "fill": colour_of.get(event["who"], "#6b7280"),
            "reasons": event["reasons"],
            "used": event.get("used"),
            "rings": [REASON_COLOURS[(r - 1) % len(REASON_COLOURS)] for r in event["reasons"]],
            "title": f"{event['date']}: {event['label']} ({event['who']})"
            + "".join(f"\nreason {r}: {reason_text[r]}" for r in event["reasons"]),
        })
    outcome_marks = [
        {"x": x(o["date"]), "x_end": x(o["end"]) if o["end"] else None, "y": y_of["__outcomes__"],
         "fill": colour_of.get(o["who"], "#6b7280"), "title": f"{o['date']}: {o['label']} ({o['who']})"}
        for o in journey["outcomes"]
    ]
    ticks = []
    year = start.year
    while pd.Timestamp(year=year, month=1, day=1) <= as_of:
        tick = x(f"{year}-01-01")
        # A year label too close to the as_of line would run off the edge.
        ticks.append({"x": tick, "label": str(year) if tick < WIDTH - 60 else ""})
        year += 1
    height = TOP + LANE_HEIGHT * len(lanes) + 24
    return {"width": WIDTH, "height": height, "left": LEFT, "right": WIDTH - 20, "top": TOP,
            "lane_height": LANE_HEIGHT, "lanes": lanes, "markers": markers, "outcomes": outcome_marks,
            "ticks": ticks, "as_of_x": x(journey["as_of"]), "member_colours": colour_of,
            "lane_labels": {lane["source"]: lane["label"] for lane in journey["lanes"]}, "reason_texts": reason_text}


def render_journey(journey: dict[str, Any], context: dict[str, Any]) -> str:
    """The journey page for journey data (journey.build_journey) and context: score row, model, access entry."""
    return _environment().get_template("journey.html").render(
        journey=journey,
        context=context,
        svg=timeline(journey),
        judgement=JUDGEMENT_NOTE,
        reason_colours=REASON_COLOURS,
        data_json=_json_for_script(journey),
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds") if "generated" not in context else context["generated"],
    )

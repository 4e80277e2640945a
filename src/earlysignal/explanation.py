"""A resident's right to an explanation: a plain-English document for a subject access request or a
challenge (Markdown, and HTML that prints to PDF).

It says which sources and records were used (counts by source and year), where the score put the
resident and why (the reasons), which model made it and who approved it and when, and how to
challenge it. It is built from the same point-in-time journey as the caseworker's page, so it never
counts a record the model could not have seen. Other people appear only as counts under their role
in the household ("an adult in your household"), never by ID, and no address identifier appears.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from earlysignal.errors import EarlySignalError
from earlysignal.journey import Household, events_used_by_model, household_at, known_events, known_outcomes

NOT_PROVIDED = "NOT PROVIDED"


def approval_for(model_name: str, model_version: str, config: Any = None) -> dict[str, Any] | None:
    """Who approved the model version and when, as the verified signed ledger has it, or None.

    Returns {status, approver, role, demo, approved_at, revoked_by, revoked_at}; None when the version
    was never approved or cannot be found. The one place this document reads the approval record.
    """
    from mlflow.exceptions import MlflowException

    from earlysignal.approval import approval_status
    from earlysignal.tracking import configure_tracking

    configure_tracking()
    try:
        record = approval_status(model_name, model_version, config)
    except MlflowException:
        return None  # the version is not in this registry
    except EarlySignalError as error:
        # The record exists but fails its checks: say so rather than pretend there is none.
        return {"status": "unverified", "error": str(error), "approver": "", "role": "", "demo": False,
                "approved_at": "", "revoked_by": None, "revoked_at": None}
    if record is None:
        return None
    return {"status": record.status, "approver": record.approver, "role": record.role, "demo": record.demo,
            "approved_at": record.approved_at, "revoked_by": record.revoked_by, "revoked_at": record.revoked_at}


def _month(ts: pd.Timestamp) -> str:
    return ts.strftime("%B %Y")


def records_used(events: pd.DataFrame, household: Household, wording: Any, order: list[str] | None = None) -> dict[str, Any]:
    """Counts of the records used, by source (in `order`, then alphabetically): about you, about others
    in the household (by role), about the home; the first and last month; and counts by source and
    calendar year. No IDs."""
    present = sorted(events["source"].astype(str).unique().tolist()) if len(events) else []
    ranked_sources = [s for s in (order or []) if s in present] + [s for s in present if s not in (order or [])]
    by_source = []
    for source in ranked_sources:
        rows = events[events["source"].astype(str) == source]
        by_source.append({
            "source": wording.source(str(source)),
            "about_you": int((rows["about"] == "resident").sum()),
            "about_household": int((rows["about"] == "household").sum()),
            "about_home": int((rows["about"] == "home").sum()),
            "first": _month(rows["event_time"].min()),
            "last": _month(rows["event_time"].max()),
            "total": int(len(rows)),
        })
    years = sorted(events["event_time"].dt.year.unique().tolist()) if len(events) else []
    table = (
        events.assign(year=events["event_time"].dt.year).groupby(["source", "year"]).size() if len(events) else pd.Series(dtype=int)
    )
    by_year = [
        {"source": wording.source(source), "counts": [int(table.get((source, y), 0)) for y in years]}
        for source in ranked_sources
    ]
    roles = [
        {"role": role, "records": int((events["who"] == role).sum())}
        for rid, role in household.members.items()
        if rid != household.resident_id
    ]
    return {"by_source": by_source, "years": [int(y) for y in years], "by_year": by_year, "others": roles,
            "total": int(len(events))}


def moved_in(residency: pd.DataFrame, household: Household, as_of: dt.date) -> pd.Timestamp | None:
    """When the resident's unbroken stay at their as_of address began (spells at that address that
    follow on from one another); None when they had no address on as_of."""
    if household.address_id is None:
        return None
    spells = residency[(residency["resident_id"].astype(str) == household.resident_id)
                       & (residency["address_id"].astype(str) == str(household.address_id))
                       & (pd.to_datetime(residency["start_date"]) <= pd.Timestamp(as_of))]
    if spells.empty:
        return None
    starts = pd.to_datetime(spells["start_date"]).tolist()
    ends = pd.to_datetime(spells["end_date"]).tolist()
    begun = max(starts)
    # Walk back over spells at the same address ending on (or after) the day the later one began.
    changed = True
    while changed:
        changed = False
        for start, end in zip(starts, ends, strict=True):
            if start < begun and (pd.isna(end) or end >= begun):
                begun, changed = start, True
    return begun


def home_records_before(events: pd.DataFrame, since: pd.Timestamp | None, wording: Any) -> dict[str, Any] | None:
    """Records about the home from before the resident lived there: {total, first, moved_in, by_source}, or None."""
    if since is None or not len(events):
        return None
    rows = events[(events["about"] == "home") & (events["event_time"] < since)]
    if rows.empty:
        return None
    counts = rows.groupby(rows["source"].astype(str), sort=False).size()
    return {"total": int(len(rows)), "first": _month(rows["event_time"].min()), "moved_in": _month(since),
            "by_source": [{"source": wording.source(str(k)), "records": int(v)} for k, v in counts.items()]}


def build_explanation(
    config: Any,
    data: Any,
    resident_id: str,
    as_of: dt.date,
    ranked: pd.DataFrame,
    summary: dict[str, Any],
    approval: dict[str, Any] | None,
    unscored_reason: str | None = None,
    model_features: Any | None = None,
) -> dict[str, Any]:
    """The document's content as plain data (the same for Markdown and HTML). With `model_features`
    (the model's spec, caselist.ModelFeatures) only the records the model reads are counted, in its
    wording; without, every record known before as_of is. Raises EarlySignalError when the resident
    is not in the data."""
    from earlysignal.caselist import score_band
    from earlysignal.wording import wording_from_config

    if str(resident_id) not in set(data.residents["resident_id"].astype(str)):
        raise EarlySignalError(f"resident {resident_id!r} is not in the residents table of this data; check the ID")
    wording = model_features.wording() if model_features is not None else wording_from_config(config)
    household = household_at(data, resident_id, as_of)
    events = known_events(data, household, as_of)
    order = model_features.sources if model_features is not None else [f.source for f in config.features.families]
    if model_features is not None:
        used = events_used_by_model(model_features.features.values(), events, household, as_of)
        events = events[events["event_id"].astype(str).isin(used)]
    own_outcomes = known_outcomes(data, household, as_of)
    own_outcomes = own_outcomes[own_outcomes["resident_id"] == str(resident_id)]
    row = ranked[ranked["resident_id"].astype(str) == str(resident_id)]
    scored = None
    if not row.empty:
        first = row.iloc[0]
        scored = {
            "rank": int(first["rank"]),
            "of": int(len(ranked)),
            "flagged": bool(first["flagged"]),
            "band": score_band(bool(first["flagged"]), float(first["percentile"]), config.caseworker),
            "reasons": [str(first[f"reason_{i}"]) for i in range(1, 4)
                        if isinstance(first.get(f"reason_{i}"), str) and first[f"reason_{i}"]],
        }
    label = config.label
    outcomes = " or ".join(wording.outcome(t) for t in label.outcome_types)
    governance = config.governance
    return {
        "resident_id": str(resident_id),
        "as_of": as_of.isoformat(),
        "predicts": f"the chance of {outcomes} within {label.horizon_months} months",
        "scored": scored,
        "unscored_reason": unscored_reason,
        "flagged_count": int(summary.get("counts", {}).get("flagged", 0)),
        "records": records_used(events, household, wording, order),
        # Records at an address count whoever lived there: say which came before the resident did.
        "home_before_you": home_records_before(events, moved_in(data.residency, household, as_of), wording),
        "own_outcomes": [
            {"label": wording.outcome(str(o.outcome_type)), "month": _month(pd.Timestamp(o.outcome_time))}
            for o in own_outcomes.itertuples(index=False)
        ],
        "model": {"name": summary.get("model_name"), "version": summary.get("model_version")},
        "approval": approval,
        "approval_checked": bool(summary.get("approval_checked")),
        "challenge_contact": governance.challenge_contact.strip() or NOT_PROVIDED,
        "owner": governance.owner.strip() or NOT_PROVIDED,
        "purpose": governance.purpose.strip() or NOT_PROVIDED,
        "human_oversight": governance.human_oversight.strip() or NOT_PROVIDED,
    }


def _approval_sentence(doc: dict[str, Any]) -> str:
    approval = doc["approval"]
    model = f"version {doc['model']['version']} of the model {doc['model']['name']}"
    if not doc["approval_checked"]:
        return f"The score came from {model}. NOT APPROVED: this list was made for testing without an approval check."
    if approval is None:
        return f"The score came from {model}. NOT PROVIDED: no approval record could be found for it."
    if approval["status"] == "unverified":
        return (f"The score came from {model}. NOT PROVIDED: its approval record failed its checks "
                f"({approval['error']}).")
    text = f"The score came from {model}, approved for use by {approval['approver']} on {approval['approved_at'][:10]}."
    if approval["status"] != "approved":
        text += f" That approval was later withdrawn by {approval['revoked_by']} on {(approval['revoked_at'] or '')[:10]}."
    return text


def render_markdown(doc: dict[str, Any]) -> str:
    """The explanation as Markdown (a letter-ready plain-text version)."""
    lines = [
        f"# How Early Signal used information about you (reference {doc['resident_id']})",
        "",
        f"This explains the score given on {doc['as_of']} to the person with reference {doc['resident_id']}.",
        "",
        "**A score supports, and never replaces, professional judgement.** No decision about you was made by a "
        "computer alone. A caseworker reads the records and decides what, if anything, to do.",
        "",
        "## What the score is",
        "",
        f"The council uses a statistical model to estimate {doc['predicts']}. It looks only at records the council "
        f"already held before {doc['as_of']}. It helps the council decide whom to offer help to first.",
        "",
        "## Where your score placed you",
        "",
    ]
    scored = doc["scored"]
    if scored:
        lines.append(
            f"You were number {scored['rank']} of {scored['of']} people scored. Your score was in the band "
            f"\"{scored['band']}\"" + (
                f": one of the {doc['flagged_count']} people whose records a caseworker was asked to review."
                if scored["flagged"] else "; a caseworker was not asked to review your records because of it."
            )
        )
        lines += ["", "## Why: the records that raised your score most", ""]
        if scored["reasons"]:
            lines += [f"{i}. {reason}" for i, reason in enumerate(scored["reasons"], start=1)]
        else:
            lines.append("No record raised your score above the average.")
    else:
        lines.append(f"You were not scored on this date ({doc['unscored_reason'] or 'not in the group the model scores'}).")
    records = doc["records"]
    lines += ["", "## Which records were used", "",
              f"{records['total']} records held before {doc['as_of']} were used, from these services:", "",
              "| Service | About you | About others in your household | About your home | From | To |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['source']} | {r['about_you']} | {r['about_household']} | {r['about_home']} | {r['first']} | {r['last']} |"
              for r in records["by_source"]]
    if records["years"]:
        lines += ["", "Records by year:", "", "| Service | " + " | ".join(str(y) for y in records["years"]) + " |",
                  "|---|" + "---|" * len(records["years"])]
        lines += [f"| {r['source']} | " + " | ".join(str(c) for c in r["counts"]) + " |" for r in records["by_year"]]
    before = doc.get("home_before_you")
    if before:
        lines += ["", f"{before['total']} of the records about your home are from before you lived there "
                  f"(from {before['first']} until you moved in, in {before['moved_in']}): they are about the address and "
                  "earlier occupants, not about you or your household, and nobody else is named here. The model "
                  "counts records at an address whoever lived there. By service: "
                  + ", ".join(f"{b['source']} {b['records']}" for b in before["by_source"]) + "."]
    if records["others"]:
        lines += ["", "Records about other people in your household were counted too. They are not shown here; "
                  "each person is described only by their role:", ""]
        lines += [f"- {o['role']} in your household: {o['records']} records" for o in records["others"]]
    if doc["own_outcomes"]:
        lines += ["", "Earlier decisions about you that the records show:", ""]
        lines += [f"- {o['label']} ({o['month']})" for o in doc["own_outcomes"]]
    lines += ["", "## Who is responsible", "", _approval_sentence(doc), "",
              f"The service responsible for this system: {doc['owner']}.", "",
              "## How to challenge this", "",
              "You can ask the council to check the records used, correct any that are wrong, have a person review "
              "the decision, or object to your information being used this way. Contact:", "",
              f"**{doc['challenge_contact']}**", "",
              "You can also complain to the Information Commissioner's Office (ico.org.uk)."]
    return "\n".join(lines) + "\n"


def render_html(doc: dict[str, Any]) -> str:
    """The explanation as one self-contained, printable HTML page."""
    from earlysignal.report.journey import _environment

    return _environment().get_template("explanation.html").render(doc=doc, approval_sentence=_approval_sentence(doc))


@dataclass(frozen=True)
class ExplanationFiles:
    """What `explain` wrote."""

    html: Path
    markdown: Path
    document: dict[str, Any]
    entry: Any


def write_explanation(
    config: Any,
    resident_id: str,
    as_of: dt.date,
    *,
    scores_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    viewer: str | None = None,
    out: str | Path | None = None,
    access_log: str | Path | None = None,
) -> ExplanationFiles:
    """Write explanation.html and explanation.md (default <scores_dir>/explanations/<resident>/), logging
    the access first. Raises EarlySignalError when the score folder or the resident is missing."""
    from earlysignal.access_log import append_access, current_viewer
    from earlysignal.contract.slice import load_resident_slice
    from earlysignal.atomic import write_text
    from earlysignal.caselist import marked, read_case_list_outputs
    from earlysignal.journey import _unscored_reason
    from earlysignal.scoring import default_out_dir

    scores_dir = Path(scores_dir) if scores_dir is not None else default_out_dir(config, as_of)
    ranked, _, model, summary = read_case_list_outputs(scores_dir)
    if summary.get("as_of") != as_of.isoformat():
        raise EarlySignalError(f"{scores_dir} holds the list scored at {summary.get('as_of')}, not {as_of}")
    data_dir = Path(data_dir) if data_dir is not None else Path(summary.get("data_dir") or config.data.dir)
    data = load_resident_slice(data_dir, config, str(resident_id), as_of)
    who = current_viewer(viewer)
    approval = approval_for(str(summary.get("model_name")), str(summary.get("model_version")), config)
    doc = build_explanation(config, data, resident_id, as_of, ranked, summary, approval,
                            _unscored_reason(scores_dir, summary, resident_id), model_features=model)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(resident_id))
    folder = Path(out) if out is not None else scores_dir / "explanations" / marked(safe, bool(summary.get("approval_checked")))
    log_path = Path(access_log) if access_log is not None else Path(config.caseworker.access_log)
    entry = append_access(log_path, viewer=who, action="explanation", resident_id=resident_id, as_of=as_of,
                          output=str(folder))
    html = write_text(render_html(doc), folder / "explanation.html")
    markdown = write_text(render_markdown(doc), folder / "explanation.md")
    return ExplanationFiles(html, markdown, doc, entry)

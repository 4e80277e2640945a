"""The resident's journey: every touch point known before as_of, for a resident, their household and
their home, with the events behind each reason of their score.

A journey is built only from rows with `known_at < as_of` and `event_time < as_of` (outcomes:
`known_at < as_of` and `outcome_time < as_of`), and household membership as it stood at as_of, so a
caseworker sees what the model could have seen and nothing it could not. Other people are shown
by role ("adult A") with their pseudonymous ID; nobody's name or address enters this module.

Which events lie "behind a reason" follows the feature builder's own rules (features/builder.py):
a reason names one feature (source, event types, scope, window, aggregate); its events are those
of those types, in that scope (the resident; every member of their household at as_of; the
address they live at on as_of), with event_time inside the window, known before as_of.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from earlysignal.errors import EarlySignalError
from earlysignal.windows import WindowLength, window_length

ADULT_AGE = 18  # roles: people under 18 are children in every UK service's usage


class JourneyData(Protocol):
    """What a journey reads (earlysignal.contract.LinkedData has these)."""

    residents: pd.DataFrame
    residency: pd.DataFrame
    events: pd.DataFrame
    outcomes: pd.DataFrame


def _record_window(get: Any) -> WindowLength | None:
    """A record's window length: a FeatureDefinition's own, else parsed from its `window` ('12m', '365d', 'all';
    '' for static features), else (model_features.json written before calendar windows) its `window_days`."""
    length = get("window_length")
    if isinstance(length, WindowLength):
        return length
    window = get("window")
    if window:
        return window_length(str(window))
    days = get("window_days")
    return None if days is None else WindowLength("d", int(days))


@dataclass(frozen=True)
class ReasonFeature:
    """The part of a feature definition that says which events a reason stands on."""

    name: str
    source: str
    event_types: tuple[str, ...]
    scope: str  # resident, household, address or static
    window_length: WindowLength | None  # None: the whole history
    aggregate: str
    description: str = ""
    description_one: str = ""  # the template for the value 1 (a count in the singular); empty: description
    description_negative: str = ""  # the template for a value below zero, {value} its size; empty: description
    value_decimals: int | None = None  # digits after the point (2 for money); None: up to one

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ReasonFeature:
        """From a FeatureDefinition or its JSON record (model_features.json)."""
        get = record.get if isinstance(record, Mapping) else (lambda key, default=None: getattr(record, key, default))
        return cls(
            name=str(get("name")),
            source=str(get("source") or ""),
            event_types=tuple(get("event_types") or ()),
            scope=str(get("scope") or "static"),
            window_length=_record_window(get),
            aggregate=str(get("aggregate") or ""),
            description=str(get("description") or ""),
            description_one=str(get("description_one") or ""),
            description_negative=str(get("description_negative") or ""),
            value_decimals=None if get("value_decimals") is None else int(get("value_decimals")),
        )

    def as_record(self) -> dict[str, Any]:
        """Plain JSON data."""
        record = asdict(self)
        record["event_types"] = list(self.event_types)
        del record["window_length"]
        record["window"] = self.window_length.spelled if self.window_length else ("" if self.scope == "static" else "all")
        return record


@dataclass(frozen=True)
class Household:
    """Who the resident lived with, and where, on as_of (empty when they had no residency spell then)."""

    resident_id: str
    household_id: str | None
    address_id: str | None
    members: dict[str, str]  # resident_id -> role label; the resident is "the resident"


def _stamp(as_of: dt.date | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(as_of).normalize()


def _age(birth: Any, as_of: pd.Timestamp) -> int | None:
    if birth is None or pd.isna(birth):
        return None
    born = pd.Timestamp(birth)
    return as_of.year - born.year - int((as_of.month, as_of.day) < (born.month, born.day))


def household_at(data: JourneyData, resident_id: str, as_of: dt.date) -> Household:
    """The resident's household and address on as_of, members labelled by role.

    Membership is the residency spells covering as_of (start_date <= as_of < end_date), as the
    feature builder uses it. Roles: "the resident", then "adult A", "adult B" ... and "child A" ...
    ordered by age (oldest first), then pseudonymous ID, so labels are stable for one as_of.
    """
    ts = _stamp(as_of)
    spells = data.residency
    start = pd.to_datetime(spells["start_date"])
    end = pd.to_datetime(spells["end_date"])
    covering = spells[(start <= ts) & (end.isna() | (end > ts))]
    own = covering[covering["resident_id"].astype(str) == str(resident_id)]
    if own.empty:
        return Household(str(resident_id), None, None, {str(resident_id): "the resident"})
    if len(own) > 1:
        raise EarlySignalError(
            f"resident {resident_id} has {len(own)} residency spells covering {as_of}; the data contract allows one "
            "(run `earlysignal validate` on this data)"
        )
    household_id = str(own["household_id"].iloc[0])
    address_id = str(own["address_id"].iloc[0])
    member_ids = sorted(set(covering.loc[covering["household_id"].astype(str) == household_id, "resident_id"].astype(str)))
    births = data.residents.assign(resident_id=data.residents["resident_id"].astype(str)).set_index("resident_id")["birth_date"]
    others = []
    for member in member_ids:
        if member == str(resident_id):
            continue
        age = _age(births.get(member), ts)
        others.append((-(age if age is not None else -1), member, age))
    members = {str(resident_id): "the resident"}
    counters = {"adult": 0, "child": 0, "person": 0}
    for _, member, age in sorted(others):
        kind = "person" if age is None else ("child" if age < ADULT_AGE else "adult")
        members[member] = f"{kind} {_letter(counters[kind])}"
        counters[kind] += 1
    return Household(str(resident_id), household_id, address_id, members)


def _letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def known_events(data: JourneyData, household: Household, as_of: dt.date) -> pd.DataFrame:
    """Events known before as_of about the resident, their household members (at as_of) or their home.

    Columns: event_id, resident_id, address_id, source, event_type, event_time, known_at, value,
    coded_by (the code-list entry or rule that coded the record in ingest; null when the data has none),
    who (role label; "the home" for an event at the address not tied to a household member),
    about ("resident", "household" or "home"). Sorted by event_time, then event_id.
    """
    ts = _stamp(as_of)
    events = data.events
    known = (pd.to_datetime(events["known_at"]) < ts) & (pd.to_datetime(events["event_time"]) < ts)
    people = events["resident_id"].astype("str").isin(list(household.members))
    at_home = (
        events["address_id"].astype("str").eq(household.address_id).fillna(False)
        if household.address_id is not None
        else pd.Series(False, index=events.index)
    )
    rows = events.loc[known & (people.fillna(False) | at_home)].copy()
    rows["resident_id"] = rows["resident_id"].astype("str")
    member = rows["resident_id"].map(household.members)
    rows["who"] = member.fillna("the home").astype(str)
    rows["about"] = np.where(
        rows["resident_id"] == household.resident_id, "resident", np.where(member.notna(), "household", "home")
    )
    # Someone outside the household recorded at the address (e.g. a previous tenant) stays anonymous.
    rows.loc[rows["about"] == "home", "resident_id"] = pd.NA
    rows["event_time"] = pd.to_datetime(rows["event_time"])
    rows["known_at"] = pd.to_datetime(rows["known_at"])
    if "coded_by" not in rows:
        rows["coded_by"] = pd.NA
    columns = ["event_id", "resident_id", "address_id", "source", "event_type", "event_time", "known_at", "value",
               "coded_by", "who", "about"]
    return rows[columns].sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)


def known_outcomes(data: JourneyData, household: Household, as_of: dt.date) -> pd.DataFrame:
    """Outcomes (e.g. plans, enquiries) of the resident and household members recorded before as_of.

    Columns: resident_id, outcome_type, outcome_time, known_at, end_time (null when it had not ended
    by as_of, or ends only after it), who. Sorted by outcome_time.
    """
    ts = _stamp(as_of)
    o = data.outcomes
    time = pd.to_datetime(o["outcome_time"])
    keep = (pd.to_datetime(o["known_at"]) < ts) & (time < ts) & o["resident_id"].astype(str).isin(list(household.members))
    rows = o.loc[keep, ["resident_id", "outcome_type", "outcome_time", "known_at", "end_time"]].copy()
    rows["resident_id"] = rows["resident_id"].astype(str)
    rows["outcome_time"] = pd.to_datetime(rows["outcome_time"])
    rows["known_at"] = pd.to_datetime(rows["known_at"])
    end = pd.to_datetime(rows["end_time"])
    # An end after as_of was not known on as_of: the state was still open then.
    rows["end_time"] = end.where(end < ts)
    rows["who"] = rows["resident_id"].map(household.members).astype(str)
    return rows.sort_values(["outcome_time", "outcome_type"], kind="stable").reset_index(drop=True)


def events_behind_reason(feature: ReasonFeature, events: pd.DataFrame, household: Household, as_of: dt.date) -> list[str]:
    """IDs of the events a reason's feature counted for this resident at as_of (sorted by time, then ID).

    `events` are the journey's events (known_events). Scope resident: the resident's own events;
    household: events of anyone in the household on as_of (the resident included); address: events
    recorded at their address on as_of. Window w days: event_time in [as_of - w, as_of); a trend
    compares the last w days with the w days before, so both are shown ([as_of - 2w, as_of)).
    days_since_last / days_since_first point at the single latest / earliest event (all of them
    when several share that time). Static features (age, tenure, household size) and imputation
    flags stand on no event: an empty list.
    """
    return _behind(feature, _EventArrays.of(events), household, as_of)


@dataclass(frozen=True)
class _EventArrays:
    """The journey's events as NumPy arrays, made once and reused for every feature of a model."""

    ids: np.ndarray
    source: np.ndarray
    event_type: np.ndarray
    people: np.ndarray
    places: np.ndarray
    times: np.ndarray
    known: np.ndarray

    @classmethod
    def of(cls, events: pd.DataFrame) -> _EventArrays:
        def text(column: str) -> np.ndarray:
            values = events[column].astype(object)
            return values.where(values.notna(), None).to_numpy()

        return cls(
            ids=events["event_id"].astype(str).to_numpy(dtype=object),
            source=text("source"),
            event_type=text("event_type"),
            people=text("resident_id"),
            places=text("address_id"),
            times=pd.to_datetime(events["event_time"]).to_numpy(dtype="datetime64[us]"),
            known=pd.to_datetime(events["known_at"]).to_numpy(dtype="datetime64[us]"),
        )


def _behind(feature: ReasonFeature, arrays: _EventArrays, household: Household, as_of: dt.date) -> list[str]:
    if feature.scope not in ("resident", "household", "address") or not feature.event_types:
        return []
    ts = np.datetime64(_stamp(as_of).to_datetime64(), "us")
    times = arrays.times
    mask = (
        (arrays.source == feature.source)
        & np.isin(arrays.event_type, list(feature.event_types))
        & (arrays.known < ts) & (times < ts)
    )
    if feature.scope == "resident":
        mask &= arrays.people == household.resident_id
    elif feature.scope == "household":
        mask &= np.isin(arrays.people, list(household.members)) if household.household_id else False
    else:
        mask &= (arrays.places == household.address_id) if household.address_id else False
    if feature.aggregate in ("days_since_last", "days_since_first"):
        if not mask.any():
            return []
        edge = times[mask].max() if feature.aggregate == "days_since_last" else times[mask].min()
        mask &= times == edge
    elif feature.window_length is not None:
        # The builder's boundary rule (earlysignal.windows): [start, as_of), calendar months for 'm'/'y'.
        span = feature.window_length.times(2) if feature.aggregate == "trend" else feature.window_length
        mask &= times >= np.datetime64(span.start(_stamp(as_of).date()), "us")
    ids = arrays.ids[mask]
    order = np.lexsort((ids.astype(str), times[mask]))
    return [str(i) for i in ids[order]]


def events_used_by_model(
    features: Iterable[ReasonFeature], events: pd.DataFrame, household: Household, as_of: dt.date
) -> set[str]:
    """IDs of the journey's events that at least one of the model's features reads at as_of (the union
    of events_behind_reason over the features); a record of a source or type the model never reads,
    or outside every window, is not in it."""
    arrays = _EventArrays.of(events)
    used: set[str] = set()
    seen: set[tuple[Any, ...]] = set()
    for feature in features:
        key = (feature.source, feature.event_types, feature.scope, feature.window_length,
               feature.aggregate if feature.aggregate in ("trend", "days_since_last", "days_since_first") else "")
        if key in seen:
            continue
        seen.add(key)
        used.update(_behind(feature, arrays, household, as_of))
    return used


@dataclass(frozen=True)
class Reason:
    """One reason on the ranked list, with the feature it came from."""

    rank: int  # 1..3
    text: str
    feature: ReasonFeature | None
    contribution: float | None = None


def build_journey(
    data: JourneyData,
    resident_id: str,
    as_of: dt.date,
    reasons: Sequence[Reason] = (),
    wording: Any | None = None,
    lane_order: Iterable[str] = (),
    model_features: Iterable[ReasonFeature] | None = None,
) -> dict[str, Any]:
    """The journey as plain data (what the page shows and embeds): household, lanes, events, outcomes, reasons.

    Every event carries `reasons`: the ranks of the reasons it lies behind. `wording` turns source,
    event-type and outcome-type names into labels (earlysignal.wording.Wording); lanes follow
    `lane_order` (the spec's family order), then any other source alphabetically. With
    `model_features`, each event says whether the model reads it (`used`); without, `used` is null.
    Raises EarlySignalError when the resident is not in the residents table.
    """
    from earlysignal.wording import Wording

    wording = wording or Wording()
    ids = set(data.residents["resident_id"].astype(str))
    if str(resident_id) not in ids:
        raise EarlySignalError(
            f"resident {resident_id!r} is not in the residents table of this data; check the pseudonymous ID "
            "on the case list (IDs are case-sensitive)"
        )
    household = household_at(data, resident_id, as_of)
    events = known_events(data, household, as_of)
    outcomes = known_outcomes(data, household, as_of)
    used = None if model_features is None else events_used_by_model(model_features, events, household, as_of)
    behind: dict[str, list[int]] = {}
    reason_rows = []
    for reason in reasons:
        ids_behind = events_behind_reason(reason.feature, events, household, as_of) if reason.feature else []
        for event_id in ids_behind:
            behind.setdefault(event_id, []).append(reason.rank)
        reason_rows.append({
            "rank": reason.rank,
            "text": reason.text,
            "feature": reason.feature.name if reason.feature else None,
            "scope": reason.feature.scope if reason.feature else None,
            "contribution": reason.contribution,
            "event_ids": ids_behind,
        })
    order = list(dict.fromkeys(list(lane_order)))
    present = sorted(set(events["source"].astype(str)))
    lanes = [s for s in order if s in present] + [s for s in present if s not in order]
    event_rows = [
        {
            "event_id": str(row.event_id),
            "source": str(row.source),
            "lane": str(row.source),
            "event_type": str(row.event_type),
            "label": wording.event(str(row.source), str(row.event_type)),
            "date": row.event_time.strftime("%Y-%m-%d"),
            "time": row.event_time.isoformat(),
            "known_at": row.known_at.isoformat(),
            "value": None if pd.isna(row.value) else float(row.value),
            "coded_by": None if pd.isna(row.coded_by) else str(row.coded_by),
            "who": str(row.who),
            "about": str(row.about),
            "reasons": sorted(behind.get(str(row.event_id), [])),
            "used": None if used is None else str(row.event_id) in used,
        }
        for row in events.itertuples(index=False)
    ]
    outcome_rows = [
        {
            "outcome_type": str(row.outcome_type),
            "label": wording.outcome(str(row.outcome_type)),
            "date": row.outcome_time.strftime("%Y-%m-%d"),
            "end": None if pd.isna(row.end_time) else pd.Timestamp(row.end_time).strftime("%Y-%m-%d"),
            "who": str(row.who),
        }
        for row in outcomes.itertuples(index=False)
    ]
    return {
        "resident_id": str(resident_id),
        "as_of": pd.Timestamp(as_of).date().isoformat(),
        "household": {
            "members": [{"resident_id": rid, "role": role} for rid, role in household.members.items()],
            "has_address": household.address_id is not None,
        },
        "lanes": [{"source": s, "label": wording.source(s)} for s in lanes],
        "events": event_rows,
        "outcomes": outcome_rows,
        "reasons": reason_rows,
    }


def reasons_for(
    resident_id: str, ranked: pd.DataFrame, reasons: pd.DataFrame, definitions: Mapping[str, ReasonFeature]
) -> list[Reason]:
    """The resident's reasons from a score folder's ranked list and reasons.parquet, with their features."""
    row = ranked[ranked["resident_id"].astype(str) == str(resident_id)]
    if row.empty:
        return []
    mine = reasons[reasons["resident_id"].astype(str) == str(resident_id)].set_index("reason")
    out = []
    for i in range(1, 4):
        text = row[f"reason_{i}"].iloc[0] if f"reason_{i}" in row else None
        if not isinstance(text, str) or not text:
            continue
        feature = definitions.get(str(mine.loc[i, "feature"])) if i in mine.index else None
        contribution = row[f"contribution_{i}"].iloc[0]
        out.append(Reason(i, text, feature, None if pd.isna(contribution) else float(contribution)))
    return out


@dataclass(frozen=True)
class JourneyPage:
    """A written journey page, its data and the access-log entry that recorded the viewing."""

    path: Path
    journey: dict[str, Any]
    entry: Any  # access_log.AccessEntry


def view_journey(
    config: Any,
    resident_id: str,
    as_of: dt.date,
    *,
    scores_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    viewer: str | None = None,
    out: str | Path | None = None,
    access_log: str | Path | None = None,
) -> JourneyPage:
    """Build a resident's journey at as_of, record the viewing in the access log, write the page.

    Reads the score folder (default reports/scores/<model>-<as_of>/) for the reasons and the data
    folder the list was scored from (default: the one summary.json names). Writes
    <scores_dir>/journeys/<resident>.html unless `out` is given. The viewing is logged before the
    page is written; nothing is logged when the resident is unknown. Raises EarlySignalError.
    """
    from earlysignal.access_log import append_access, current_viewer
    from earlysignal.contract.slice import load_resident_slice
    from earlysignal.atomic import write_text
    from earlysignal.caselist import journey_filename, read_case_list_outputs, score_band
    from earlysignal.report.journey import render_journey
    from earlysignal.scoring import default_out_dir

    scores_dir = Path(scores_dir) if scores_dir is not None else default_out_dir(config, as_of)
    ranked, reasons, model, summary = read_case_list_outputs(scores_dir)
    if summary.get("as_of") != as_of.isoformat():
        raise EarlySignalError(
            f"{scores_dir} holds the list scored at {summary.get('as_of')}, not {as_of}; pass the matching --scores "
            "folder or --as-of date"
        )
    data_dir = Path(data_dir) if data_dir is not None else Path(summary.get("data_dir") or config.data.dir)
    data = load_resident_slice(data_dir, config, str(resident_id), as_of)
    who = current_viewer(viewer)
    journey = build_journey(
        data, resident_id, as_of, reasons_for(resident_id, ranked, reasons, model.features),
        wording=model.wording(), lane_order=model.sources, model_features=model.features.values(),
    )
    approved = bool(summary.get("approval_checked"))
    target = Path(out) if out is not None else scores_dir / journey_filename(resident_id, approved)
    log_path = Path(access_log) if access_log is not None else Path(config.caseworker.access_log)
    entry = append_access(log_path, viewer=who, action="journey", resident_id=resident_id, as_of=as_of,
                          output=str(target))
    row = ranked[ranked["resident_id"].astype(str) == str(resident_id)]
    score = None
    if not row.empty:
        first = row.iloc[0]
        score = {"rank": int(first["rank"]), "score": float(first["score"]), "flagged": bool(first["flagged"]),
                 "band": score_band(bool(first["flagged"]), float(first["percentile"]), config.caseworker)}
    context = {
        "score": score,
        "scored": len(ranked),
        "unscored_reason": _unscored_reason(scores_dir, summary, resident_id),
        "model": f"{summary.get('model_name')} version {summary.get('model_version')}",
        "approval_checked": bool(summary.get("approval_checked")),
        "access": asdict(entry),
        "access_log": str(log_path),
        "scores_dir": str(scores_dir),
        "generated": entry.time,
    }
    path = write_text(render_journey(journey, context), target)
    return JourneyPage(path, journey, entry)


def _unscored_reason(scores_dir: Path, summary: dict[str, Any], resident_id: str) -> str | None:
    from earlysignal.caselist import score_file

    path = score_file(scores_dir, summary, "unscored_parquet", "unscored.parquet")
    if path is None:
        return None
    unscored = pd.read_parquet(path)
    hit = unscored.loc[unscored["resident_id"].astype(str) == str(resident_id), "reason"]
    return None if hit.empty else str(hit.iloc[0])

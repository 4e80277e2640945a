"""Build a whole synthetic borough: people, latent states, splits, deaths, services, outcomes, files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from pathlib import Path

import numpy as np
import pyarrow as pa

from earlysignal import __version__
from earlysignal.config import SynthSection
from earlysignal.errors import EarlySignalError
from earlysignal.synth import writer
from earlysignal.synth.adversity import (
    DA,
    FH,
    STATES,
    chain_parameters,
    intersect_runs,
    simulate_states,
    state_runs,
)
from earlysignal.synth.bias import SOURCES, bias_to_json, check_recording_biases
from earlysignal.synth.disclosure import check_disclosure, disclosure_to_json, hidden_households
from earlysignal.synth.recording_change import change_to_json, check_recording_changes, recording_kept
from earlysignal.synth.hazards import AGE_BAND_EDGES, PROCESSES, age_band
from earlysignal.synth.outcomes import OUTCOME_CODES, Outcomes, generate_outcomes
from earlysignal.synth.people import (
    ETHNICITIES,
    HOUSEHOLD_KINDS,
    TENURES,
    Households,
    Memberships,
    People,
    add_births,
    apply_deaths,
    apply_splits,
    expected_household_size,
    make_mix,
    occupy_addresses,
    populate,
    reference_intervals,
    split_candidates,
)
from earlysignal.synth.services import US_PER_DAY, VOCABULARY, Pieces, generate_events
from earlysignal.synth.timeline import DAYS_PER_YEAR, OPEN, Timeline, make_timeline

STAGES = ("people", "adversity", "splits and deaths", "services", "outcomes", "writing")
# Monthly chance that someone in an abusive couple leaves with the children (new household, new address).
SPLIT_HAZARD_PER_MONTH = 0.03
# Vacancies (~1% of addresses) and the net of births, deaths and splits nearly cancel, so the address
# stock is simply residents / mean household size (measured: within 2% of --residents).

StageCallback = Callable[[str], None]


class SynthError(EarlySignalError):
    """The synthetic borough cannot be generated with these settings."""


@dataclass(frozen=True)
class BoroughSummary:
    """What `generate_borough` wrote."""

    out_dir: Path
    row_counts: dict[str, int]
    extract_date: dt.date
    window_start: dt.date


def generator_arguments(synth: SynthSection) -> dict[str, Any]:
    """What made a borough, as recorded in manifest.json: same arguments, byte-identical files."""
    return {
        "name": "earlysignal.synth",
        "version": __version__,
        "residents": synth.residents,
        "years": synth.years,
        "seed": synth.seed,
        "world": synth.world,
        "recording_bias": [bias_to_json(b) for b in synth.recording_bias],
        "end_date": synth.end_date.isoformat(),
        # Only when set, so that boroughs made without a change keep their exact manifest.
        **({"recording_change": [change_to_json(c) for c in synth.recording_change]} if synth.recording_change else {}),
        # Only when some abuse is hidden: a borough made with share 1 is the world from before the setting
        # existed, and a demo folder made before it (no key) is not reused for the new default world.
        **({"disclosure": disclosure_to_json(synth.disclosure)} if synth.disclosure.share < 1 else {}),
        # Only when set: boroughs with the built-in mix keep their exact manifest.
        **({"tenure_mix": dict(synth.tenure_mix)} if synth.tenure_mix else {}),
        **({"ethnicity_mix": dict(synth.ethnicity_mix)} if synth.ethnicity_mix else {}),
    }


def _streams(seed: int) -> dict[str, np.random.Generator]:
    # Each stage has its own stream, so the null world and a biased world share people, states and
    # (unbiased) events with the standard world of the same seed.
    names = ("addresses", "people", "births", "states", "splits", "split_states", "deaths", "events", "outcomes", "ids")
    seeds = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(s) for name, s in zip(names, seeds, strict=True)}


def _choose_splits(
    rng: np.random.Generator, households: Households, masks: np.ndarray, timeline: Timeline
) -> np.ndarray:
    """Day on which the first adult leaves an abusive partner, or -1."""
    split_day = np.full(len(households), -1, dtype=np.int64)
    candidates = np.flatnonzero(split_candidates(households))
    b = timeline.burn_in_months
    month_start = timeline.month_starts[b:-1]
    month_end = timeline.month_starts[b + 1 :]
    abuse = (masks[candidates, b:] & np.uint8(1 << DA)) > 0
    alive = (month_start[None, :] >= households.start[candidates, None]) & (
        month_end[None, :] <= np.minimum(households.end[candidates], timeline.end_day)[:, None]
    )
    leave = abuse & alive & (rng.random(abuse.shape, dtype=np.float32) < SPLIT_HAZARD_PER_MONTH)
    has = leave.any(axis=1)
    month = leave.argmax(axis=1)[has]
    span = month_end[month] - month_start[month]
    split_day[candidates[has]] = month_start[month] + np.floor(rng.random(len(month)) * span).astype(np.int64)
    return split_day


def _month_of(day: np.ndarray, timeline: Timeline) -> np.ndarray:
    """Grid month index holding each day."""
    return np.searchsorted(timeline.month_starts, day, side="right") - 1


def make_pieces(
    person: np.ndarray,
    household: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    runs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    people: People,
    timeline: Timeline,
) -> Pieces:
    """Cut intervals of (person, household) at window edges, state changes and age-band birthdays."""
    s = np.maximum(start, timeline.start_day)
    e = np.minimum(end, timeline.end_day)
    ok = s < e
    person, household, s, e = person[ok], household[ok], s[ok], e[ok]
    interval, ps, pe, mask = intersect_runs(household, s, e, runs)
    person, household = person[interval], household[interval]
    birth = people.birth[person]
    b0 = age_band(ps - birth)
    b1 = age_band(pe - 1 - birth)
    count = b1 - b0 + 1
    rep = np.repeat(np.arange(len(person)), count)
    offsets = np.cumsum(count) - count
    band = b0[rep] + (np.arange(int(count.sum())) - offsets[rep])
    edge_days = np.round(AGE_BAND_EDGES * DAYS_PER_YEAR).astype(np.int64)
    lo = np.maximum(ps[rep], birth[rep] + edge_days[band])
    hi = np.minimum(pe[rep], birth[rep] + edge_days[band + 1])
    keep = lo < hi
    return Pieces(
        person=person[rep][keep],
        household=household[rep][keep],
        start=lo[keep],
        end=hi[keep],
        mask=mask[rep][keep],
        band=band[keep].astype(np.int64),
    )


def generate_borough(
    out_dir: Path,
    synth: SynthSection | None = None,
    on_stage: StageCallback | None = None,
) -> BoroughSummary:
    """Generate a synthetic borough into `out_dir` (contract tables, manifest.json and ground_truth/)."""
    synth = synth or SynthSection()
    check_recording_biases(synth.recording_bias)
    check_recording_changes(synth.recording_change)
    check_disclosure(synth.disclosure)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"--out {out_dir} exists and is not a folder")
    done = on_stage or (lambda stage: None)
    rng = _streams(synth.seed)
    timeline = make_timeline(synth.end_date, synth.years)
    null_world = synth.world == "null"

    mix = make_mix(synth.tenure_mix, synth.ethnicity_mix)
    n_addresses = max(int(round(synth.residents / expected_household_size(mix))), 1)
    households = occupy_addresses(rng["addresses"], n_addresses, timeline, mix)
    people, members = populate(rng["people"], households, timeline, mix)
    people, members = add_births(rng["births"], households, people, members, timeline)
    done("people")

    masks = simulate_states(rng["states"], households.tenure, households.kind, timeline.grid_months).masks
    done("adversity")

    n_before = len(households)
    split_day = _choose_splits(rng["splits"], households, masks, timeline)
    households, members, origin = apply_splits(rng["splits"], households, members, split_day, n_addresses, timeline)
    masks = _states_after_splits(rng["split_states"], households, masks, origin, split_day, n_before, timeline)
    members = apply_deaths(rng["deaths"], people, members, timeline)
    ref_person, ref_household, ref_start, ref_end = reference_intervals(households, members, split_day)
    runs = state_runs(masks, timeline.month_starts, timeline.burn_in_months)
    member_pieces = make_pieces(members.person, members.household, members.start, members.end, runs, people, timeline)
    reference_pieces = make_pieces(ref_person, ref_household, ref_start, ref_end, runs, people, timeline)
    new_households = np.arange(n_before, len(households))
    victim = _reference_at_start(new_households, ref_person, ref_household, ref_start, households)
    splits = (victim, origin, new_households, split_day[origin])
    has_victim = victim >= 0
    splits = tuple(a[has_victim] for a in splits)
    done("splits and deaths")

    hidden = hidden_households(synth.seed, len(households), synth.disclosure.share)
    events = generate_events(
        rng["events"], member_pieces, reference_pieces, households, people, synth.recording_bias, timeline, splits,
        hidden, synth.disclosure,
    ).columns(timeline.start_day * US_PER_DAY, timeline.end_day * US_PER_DAY)
    if synth.recording_change:
        source_names = np.array([s for s, _ in VOCABULARY])
        kept = recording_kept(synth.seed, synth.recording_change, source_names[events["type_code"]], events["time_us"])
        events = {name: column[kept] for name, column in events.items()}
    done("services")

    outcomes, bases = generate_outcomes(
        rng["outcomes"], member_pieces, reference_pieces, people, synth.recording_bias, timeline, null_world
    )
    done("outcomes")

    counts = _write_all(
        out_dir, synth, timeline, rng["ids"], households, people, members, runs,
        (ref_person, ref_household, ref_start, ref_end), events, outcomes, bases, null_world, hidden,
    )
    done("writing")
    return BoroughSummary(
        out_dir=out_dir,
        row_counts=counts,
        extract_date=synth.end_date,
        window_start=dt.date(1970, 1, 1) + dt.timedelta(days=timeline.start_day),
    )


def _reference_at_start(
    household_ids: np.ndarray, ref_person: np.ndarray, ref_household: np.ndarray, ref_start: np.ndarray,
    households: Households,
) -> np.ndarray:
    """The person answering for each household on its first day (-1 if nobody, e.g. died first)."""
    out = np.full(len(household_ids), -1, dtype=np.int64)
    position = np.full(len(households), -1, dtype=np.int64)
    position[household_ids] = np.arange(len(household_ids))
    at_start = (position[ref_household] >= 0) & (ref_start == households.start[ref_household])
    out[position[ref_household[at_start]]] = ref_person[at_start]
    return out


def _states_after_splits(
    rng: np.random.Generator,
    households: Households,
    masks: np.ndarray,
    origin: np.ndarray,
    split_day: np.ndarray,
    n_before: int,
    timeline: Timeline,
) -> np.ndarray:
    """Latent states of the households formed by splits, and the end of abuse in the homes they left."""
    if len(origin) == 0:
        return masks
    start_month = _month_of(split_day[origin], timeline)
    previous = masks[origin, start_month]
    # The abuse stops with the move; the move itself often brings hardship; the rest carries over.
    hardship = rng.random(len(origin)) < 0.6
    initial = (previous & np.uint8(0xFF ^ (1 << DA))) | np.where(hardship, np.uint8(1 << FH), np.uint8(0))
    new = simulate_states(
        rng,
        households.tenure[n_before:],
        households.kind[n_before:],
        timeline.grid_months,
        start_month=start_month,
        initial=initial,
    ).masks
    after = np.arange(timeline.grid_months)[None, :] >= start_month[:, None]
    masks[origin] = np.where(after, masks[origin] & np.uint8(0xFF ^ (1 << DA)), masks[origin])
    return np.concatenate([masks, new])


def _permuted_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pseudonymous numbers: a seeded shuffle, so IDs say nothing about order of creation."""
    return rng.permutation(n).astype(np.int64) + 1


def _write_all(
    out_dir: Path,
    synth: SynthSection,
    timeline: Timeline,
    rng: np.random.Generator,
    households: Households,
    people: People,
    members: Memberships,
    runs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    references: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    events: dict[str, np.ndarray],
    outcomes: Outcomes,
    bases: dict[str, float],
    null_world: bool,
    hidden: np.ndarray,
) -> dict[str, int]:
    t0, t1 = timeline.start_day, timeline.end_day
    person_ids = writer.id_strings("R", _permuted_ids(rng, len(people)), 8)
    household_ids = writer.id_strings("H", _permuted_ids(rng, len(households)), 8)
    n_addresses = int(households.address.max()) + 1
    address_ids = writer.id_strings("A", _permuted_ids(rng, n_addresses), 8)

    # residents: everyone with at least one spell
    present = np.zeros(len(people), dtype=bool)
    present[members.person] = True
    who = np.flatnonzero(present)
    residents = pa.table(
        {
            "resident_id": person_ids.take(pa.array(who)),
            "birth_date": writer.dates(people.birth[who]),
            "death_date": writer.dates(people.death[who], open_is_null=True),
            "sex": writer.take_categories(("F", "M"), people.sex[who]),
            "ethnicity": writer.take_categories(ETHNICITIES, people.ethnicity[who], ~people.ethnicity_recorded[who]),
            "disability": pa.array(people.disability[who] == 1, pa.bool_(), mask=people.disability[who] < 0),
        },
        schema=writer.RESIDENTS_SCHEMA,
    )
    residents = residents.sort_by("resident_id")

    end = np.where(members.end >= t1, OPEN, members.end)
    residency = pa.table(
        {
            "resident_id": person_ids.take(pa.array(members.person)),
            "household_id": household_ids.take(pa.array(members.household)),
            "address_id": address_ids.take(pa.array(households.address[members.household])),
            "start_date": writer.dates(members.start),
            "end_date": writer.dates(end, open_is_null=True),
            "tenure": writer.take_categories(TENURES, households.tenure[members.household]),
        },
        schema=writer.RESIDENCY_SCHEMA,
    ).sort_by([("resident_id", "ascending"), ("start_date", "ascending")])

    ev = events
    n_events = len(ev["time_us"])
    sources = [s for s, _ in VOCABULARY]
    types = [t for _, t in VOCABULARY]
    events_table = pa.table(
        {
            "event_id": writer.id_strings("E", np.arange(1, n_events + 1), 9),
            "resident_id": writer.take_strings(person_ids, ev["resident"]),
            "address_id": writer.take_strings(address_ids, ev["address"]),
            "source": writer.take_categories(sources, ev["type_code"]),
            "event_type": writer.take_categories(types, ev["type_code"]),
            "event_time": writer.timestamps(ev["time_us"]),
            "known_at": writer.timestamps(ev["known_us"]),
            "value": pa.array(ev["value"], pa.float64(), mask=np.isnan(ev["value"])),
        },
        schema=writer.EVENTS_SCHEMA,
    )
    del ev, events

    outcomes_table = pa.table(
        {
            "resident_id": person_ids.take(pa.array(outcomes.person)),
            "outcome_type": writer.take_categories(OUTCOME_CODES, outcomes.code),
            "outcome_time": writer.timestamps(outcomes.time_us),
            "known_at": writer.timestamps(outcomes.known_us),
            "end_time": writer.timestamps(outcomes.end_us, null=outcomes.end_us < 0),
        },
        schema=writer.OUTCOMES_SCHEMA,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    # The manifest is written last; removing an old one first means an interrupted run never looks
    # like a complete borough (the demo reuses a folder whose manifest matches its arguments).
    (out_dir / "manifest.json").unlink(missing_ok=True)
    writer.write_table(residents, out_dir / "residents.parquet")
    writer.write_table(residency, out_dir / "residency.parquet")
    writer.write_table(events_table, out_dir / "events.parquet")
    writer.write_table(outcomes_table, out_dir / "outcomes.parquet")
    counts = {
        "residents": residents.num_rows,
        "residency": residency.num_rows,
        "events": events_table.num_rows,
        "outcomes": outcomes_table.num_rows,
    }
    del events_table

    truth = out_dir / "ground_truth"
    truth_counts = _write_ground_truth(
        truth, timeline, households, people, members, runs, references, person_ids, household_ids, address_ids,
        hidden,
    )
    hazards = {
        "world": synth.world,
        "assumption": "the latent state and age band at as_of persist over the horizon",
        "age_band_edges_years": AGE_BAND_EDGES.tolist(),
        "state_order": list(STATES),
        "processes": [
            {
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items()},
                "base_per_day": bases[p.name],
            }
            for p in PROCESSES
        ],
        "recording_bias": [bias_to_json(b) for b in synth.recording_bias] if not null_world else [],
        # The latent chain, for oracle_risk(method="chain"); indices follow these tenure and kind lists.
        "chain": {**chain_parameters(), "tenures": list(TENURES), "kinds": list(HOUSEHOLD_KINDS)},
        # Who never discloses is in households.parquet (`discloses`); outcome hazards do not depend on it.
        "disclosure": disclosure_to_json(synth.disclosure),
    }
    writer.write_manifest(truth / "hazards.json", hazards)
    manifest = {
        "extract_date": synth.end_date.isoformat(),
        "window_start": (dt.date(1970, 1, 1) + dt.timedelta(days=t0)).isoformat(),
        # When the records begin (features/history.py); every synthetic source starts together.
        "data_start": (dt.date(1970, 1, 1) + dt.timedelta(days=t0)).isoformat(),
        "source_data_starts": {},
        "sources": list(SOURCES),
        "row_counts": counts,
        "generator": {**generator_arguments(synth), "ground_truth_row_counts": truth_counts},
    }
    writer.write_manifest(out_dir / "manifest.json", manifest)
    return counts


def _write_ground_truth(
    truth: Path,
    timeline: Timeline,
    households: Households,
    people: People,
    members: Memberships,
    runs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    references: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    person_ids: pa.Array,
    household_ids: pa.Array,
    address_ids: pa.Array,
    hidden: np.ndarray,
) -> dict[str, int]:
    t0, t1 = timeline.start_day, timeline.end_day
    truth.mkdir(parents=True, exist_ok=True)
    # Latent states while each household lived in the borough, one row per (household, state, spell).
    lived_end = np.zeros(len(households), dtype=np.int64)
    np.maximum.at(lived_end, members.household, members.end)
    s = np.maximum(households.start, t0)
    e = np.minimum(lived_end, t1)
    ok = np.flatnonzero(s < e)
    interval, ps, pe, mask = intersect_runs(ok, s[ok], e[ok], runs)
    hh = ok[interval]
    rows_h, rows_state, rows_s, rows_e = [], [], [], []
    for k in range(len(STATES)):
        on = (mask & np.uint8(1 << k)) > 0
        h, a, b = hh[on], ps[on], pe[on]
        if len(h) == 0:
            continue
        # Merge touching pieces of the same state (the mask changed in another state).
        new_spell = np.r_[True, (h[1:] != h[:-1]) | (a[1:] != b[:-1])]
        first = np.flatnonzero(new_spell)
        last = np.r_[first[1:], len(h)] - 1
        rows_h.append(h[first])
        rows_state.append(np.full(len(first), k))
        rows_s.append(a[first])
        rows_e.append(b[last])
    h = np.concatenate(rows_h) if rows_h else np.array([], dtype=np.int64)
    st = np.concatenate(rows_state) if rows_state else np.array([], dtype=np.int64)
    a = np.concatenate(rows_s) if rows_s else np.array([], dtype=np.int64)
    b = np.concatenate(rows_e) if rows_e else np.array([], dtype=np.int64)
    b = np.where(b >= t1, OPEN, b)
    states = pa.table(
        {
            "household_id": household_ids.take(pa.array(h)),
            "state": writer.take_categories(STATES, st),
            "start_date": writer.dates(a),
            "end_date": writer.dates(b, open_is_null=True),
        }
    ).sort_by([("household_id", "ascending"), ("state", "ascending"), ("start_date", "ascending")])
    writer.write_table(states, truth / "household_states.parquet")

    ref_person, ref_household, ref_start, ref_end = references
    reference = pa.table(
        {
            "resident_id": person_ids.take(pa.array(ref_person)),
            "household_id": household_ids.take(pa.array(ref_household)),
            "start_date": writer.dates(ref_start),
            "end_date": writer.dates(np.where(ref_end >= t1, OPEN, ref_end), open_is_null=True),
        }
    ).sort_by([("resident_id", "ascending"), ("start_date", "ascending")])
    writer.write_table(reference, truth / "reference_persons.parquet")

    present = np.zeros(len(people), dtype=bool)
    present[members.person] = True
    who = np.flatnonzero(present)
    truth_people = pa.table(
        {
            "resident_id": person_ids.take(pa.array(who)),
            "sex": writer.take_categories(("F", "M"), people.sex[who]),
            "ethnicity": writer.take_categories(ETHNICITIES, people.ethnicity[who]),
            "disabled": pa.array(people.disability[who] == 1, pa.bool_()),
        }
    ).sort_by("resident_id")
    writer.write_table(truth_people, truth / "people.parquet")

    used = np.zeros(len(households), dtype=bool)
    used[members.household] = True
    hw = np.flatnonzero(used)
    split_from = households.split_from[hw]
    truth_households = pa.table(
        {
            "household_id": household_ids.take(pa.array(hw)),
            "address_id": address_ids.take(pa.array(households.address[hw])),
            "kind": writer.take_categories(HOUSEHOLD_KINDS, households.kind[hw]),
            "tenure": writer.take_categories(TENURES, households.tenure[hw]),
            "split_from": writer.take_strings(household_ids, split_from),
            "start_date": writer.dates(households.start[hw]),
            # False: the household never discloses abuse (synth.disclosure; ADR 0019).
            "discloses": pa.array(~hidden[hw], pa.bool_()),
        }
    ).sort_by("household_id")
    writer.write_table(truth_households, truth / "households.parquet")
    return {
        "household_states": states.num_rows,
        "reference_persons": reference.num_rows,
        "people": truth_people.num_rows,
        "households": truth_households.num_rows,
    }

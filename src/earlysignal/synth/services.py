"""Services that see fragments of the latent states: each with a base rate, a reaction to the states,
eligibility (tenure, age), a recording lag and, for some, a value.

Events are drawn per *piece* (a stretch of a person's life with constant household state and age band)
as Poisson counts, then placed uniformly inside the piece: no per-person Python loops.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from earlysignal.config import Disclosure, RecordingBias
from earlysignal.synth.bias import bias_multiplier
from earlysignal.synth.disclosure import disclosure_sources, thinning_factor
from earlysignal.synth.hazards import state_multiplier
from earlysignal.synth.people import MALE, Households, People
from earlysignal.synth.timeline import EPOCH, Timeline

US_PER_DAY = 86_400_000_000

VOCABULARY: tuple[tuple[str, str], ...] = (
    ("housing_repairs", "door_replacement"),
    ("housing_repairs", "lock_change"),
    ("housing_repairs", "window_repair"),
    ("housing_repairs", "damp_mould"),
    ("housing_repairs", "general_repair"),
    ("council_tax", "arrears_reminder"),
    ("council_tax", "summons"),
    ("council_tax", "liability_order"),
    ("benefits", "claim_start"),
    ("benefits", "change_of_circumstances"),
    ("benefits", "sanction"),
    ("school", "absence"),
    ("school", "fixed_term_exclusion"),
    ("school", "permanent_exclusion"),
    ("police", "domestic_incident"),
    ("police", "callout"),
    ("police", "missing_person"),
    ("fire", "fire_callout"),
    ("ae", "attendance"),
    ("ae", "injury_attendance"),
    ("asb", "asb_report"),
    ("homelessness", "approach"),
    ("early_help", "contact"),
    ("social_care", "contact"),
)
TYPE_CODE = {pair: code for code, pair in enumerate(VOCABULARY)}

SOCIAL = (0, 1)  # council and housing association tenures
ALL_TENURES = (0, 1, 2, 3)
CHILD_AGES = (1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0)
SCHOOL_AGES = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0)
SECONDARY_AGES = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class EventSpec:
    """How one service records one event type (rates are per person-year in the piece set named by `on`)."""

    source: str
    event_type: str
    on: str  # "address": per household, recorded against the address only; "reference": the person
    # answering for the household; "member": every member (filtered by age band)
    annual_rate: float
    betas: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    tenure_multipliers: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    age_multipliers: tuple[float, ...] = (1.0,) * 7
    male_multiplier: float = 1.0
    with_address: bool = False
    lag_days: tuple[float, float] = (1.0, 7.0)  # minimum, then an exponential with this mean
    value_lognormal: tuple[float, float] | None = None  # (log mean, log sd) of the value, e.g. pounds owed


SPECS: tuple[EventSpec, ...] = (
    # Repairs: only council and housing-association landlords' systems are linked. Doors and locks
    # are replaced after forced entry and for safety, so they rise sharply under domestic abuse.
    EventSpec("housing_repairs", "door_replacement", "address", 0.04, (2.3, 0.0, 0.0, 0.5), (1, 1, 0, 0)),
    EventSpec("housing_repairs", "lock_change", "address", 0.06, (2.0, 0.0, 0.0, 0.3), (1, 1, 0, 0)),
    EventSpec("housing_repairs", "window_repair", "address", 0.25, (0.3, 0.0, 0.0, 0.3), (1, 1, 0, 0)),
    EventSpec("housing_repairs", "damp_mould", "address", 0.25, (0.0, 0.5, 0.0, 0.0), (1, 1, 0, 0)),
    EventSpec("housing_repairs", "general_repair", "address", 3.2, (0.1, 0.2, 0.0, 0.0), (1, 1, 0, 0)),
    EventSpec(
        "council_tax", "arrears_reminder", "reference", 0.20, (0.2, 1.8, 0.3, 0.4), (1.3, 1.3, 1.2, 0.7),
        with_address=True, lag_days=(7, 14), value_lognormal=(5.9, 0.5),
    ),
    EventSpec(
        "council_tax", "summons", "reference", 0.03, (0.2, 2.0, 0.3, 0.5), (1.3, 1.3, 1.2, 0.6),
        with_address=True, lag_days=(7, 14), value_lognormal=(6.6, 0.5),
    ),
    EventSpec(
        "council_tax", "liability_order", "reference", 0.015, (0.2, 2.1, 0.3, 0.5), (1.3, 1.3, 1.2, 0.6),
        with_address=True, lag_days=(14, 21), value_lognormal=(6.9, 0.5),
    ),
    EventSpec("benefits", "claim_start", "reference", 0.06, (0.6, 1.4, 0.4, 0.3), (1.5, 1.5, 1.2, 0.5),
              lag_days=(14, 20)),
    EventSpec("benefits", "change_of_circumstances", "reference", 0.45, (0.4, 1.0, 0.3, 0.2),
              (2.0, 2.0, 1.2, 0.4), lag_days=(14, 20)),
    EventSpec("benefits", "sanction", "reference", 0.01, (0.2, 1.2, 0.5, 1.0), (1.5, 1.5, 1.2, 0.5),
              lag_days=(14, 20)),
    EventSpec("school", "fixed_term_exclusion", "member", 0.03, (0.8, 0.4, 0.5, 1.0),
              age_multipliers=SECONDARY_AGES, male_multiplier=2.0, lag_days=(1, 10)),
    EventSpec("school", "permanent_exclusion", "member", 0.0015, (0.8, 0.4, 0.5, 1.0),
              age_multipliers=SECONDARY_AGES, male_multiplier=2.5, lag_days=(3, 20)),
    EventSpec("police", "domestic_incident", "reference", 0.006, (3.8, 0.2, 0.3, 0.7), with_address=True),
    EventSpec("police", "callout", "reference", 0.04, (0.7, 0.3, 0.9, 1.4), (1.4, 1.3, 1.0, 0.7),
              with_address=True),
    EventSpec("police", "missing_person", "member", 0.008, (1.2, 0.3, 0.8, 1.0),
              age_multipliers=(0, 0, 0, 1, 1, 0, 0), with_address=True),
    EventSpec("fire", "fire_callout", "address", 0.012, (0.3, 0.2, 0.6, 1.2), (1.4, 1.3, 1.0, 0.8),
              lag_days=(5, 20)),
    EventSpec("ae", "attendance", "member", 0.40, (0.3, 0.2, 0.5, 0.8),
              age_multipliers=(2.4, 1.5, 0.9, 0.9, 1.0, 1.0, 1.7), lag_days=(20, 25)),
    EventSpec("ae", "injury_attendance", "member", 0.04, (1.8, 0.1, 0.3, 0.6),
              age_multipliers=(1.5, 1.5, 1.0, 1.2, 1.2, 1.0, 1.5), lag_days=(20, 25)),
    EventSpec("asb", "asb_report", "address", 0.08, (0.4, 0.3, 0.5, 1.1), (1.6, 1.4, 1.0, 0.6),
              lag_days=(0, 3)),
    EventSpec("homelessness", "approach", "reference", 0.01, (1.5, 1.6, 0.3, 0.5), (1.0, 1.0, 1.5, 0.3),
              lag_days=(0, 5)),
    EventSpec("early_help", "contact", "member", 0.03, (1.0, 0.7, 0.8, 0.8), age_multipliers=CHILD_AGES,
              lag_days=(0, 3)),
    EventSpec("social_care", "contact", "member", 0.04, (1.5, 0.4, 0.9, 1.2), age_multipliers=CHILD_AGES,
              lag_days=(0, 2)),
)

# School absence: sessions missed per month (about 40 sessions a month; ~6% missed on average).
ABSENCE_MEAN_SESSIONS = 2.2
ABSENCE_BETAS = (0.6, 0.3, 0.4, 0.5)
ABSENCE_LAG_DAYS = (7, 10)
# Every school's return is in within the following term (REAL-DATA.md: one term in arrears); the
# shortest gap between two term ends is about 100 days.
ABSENCE_LAG_MAX_DAYS = 60.0


@dataclass
class Pieces:
    """Stretches [start, end) of one person's life in one household with constant state and age band."""

    person: np.ndarray
    household: np.ndarray
    start: np.ndarray
    end: np.ndarray
    mask: np.ndarray
    band: np.ndarray

    def __len__(self) -> int:
        return len(self.person)

    @property
    def days(self) -> np.ndarray:
        """Length of each piece in days."""
        return (self.end - self.start).astype(float)


@dataclass
class EventBuffer:
    """Columns of events as they are drawn; concatenated once at the end."""

    resident: list[np.ndarray] = field(default_factory=list)
    address: list[np.ndarray] = field(default_factory=list)
    type_code: list[np.ndarray] = field(default_factory=list)
    time_us: list[np.ndarray] = field(default_factory=list)
    known_us: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)

    def add(self, resident: np.ndarray, address: np.ndarray, code: int, time_us: np.ndarray,
            known_us: np.ndarray, value: np.ndarray | None = None) -> None:
        """Append events of one type."""
        n = len(time_us)
        self.resident.append(resident.astype(np.int64))
        self.address.append(address.astype(np.int64))
        self.type_code.append(np.full(n, code, dtype=np.int16))
        self.time_us.append(time_us.astype(np.int64))
        self.known_us.append(known_us.astype(np.int64))
        self.value.append(np.full(n, np.nan) if value is None else value.astype(np.float64))

    def columns(self, start_us: int, end_us: int) -> dict[str, np.ndarray]:
        """Events that happened from `start_us` on and were known before `end_us` (what an extract taken
        then holds), sorted by event time; ties keep drawing order, so output is deterministic."""
        time_us = np.concatenate(self.time_us)
        known_us = np.concatenate(self.known_us)
        keep = np.flatnonzero((time_us >= start_us) & (known_us < end_us))
        order = keep[np.argsort(time_us[keep], kind="stable")]
        return {
            "resident": np.concatenate(self.resident)[order],
            "address": np.concatenate(self.address)[order],
            "type_code": np.concatenate(self.type_code)[order],
            "time_us": time_us[order],
            "known_us": known_us[order],
            "value": np.concatenate(self.value)[order],
        }


def _lag_us(rng: np.random.Generator, n: int, lag: tuple[float, float], max_days: float | None = None) -> np.ndarray:
    days = lag[0] + rng.exponential(lag[1], n) if lag[1] > 0 else np.full(n, lag[0])
    if max_days is not None:
        # Capping after the draw keeps the random stream, so the rest of the world is unchanged.
        days = np.minimum(days, max_days)
    return np.round(days * US_PER_DAY).astype(np.int64)


def draw_in_pieces(rng: np.random.Generator, pieces: Pieces, rate_per_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts per piece; returns (piece index, event time in microseconds) of every event."""
    counts = rng.poisson(rate_per_day * pieces.days)
    piece = np.repeat(np.arange(len(pieces)), counts)
    offset = rng.random(len(piece)) * pieces.days[piece]
    time_us = pieces.start[piece] * US_PER_DAY + np.floor(offset * US_PER_DAY / 1e6).astype(np.int64) * 1_000_000
    return piece, time_us


def generate_events(
    rng: np.random.Generator,
    member_pieces: Pieces,
    reference_pieces: Pieces,
    households: Households,
    people: People,
    biases: Sequence[RecordingBias],
    timeline: Timeline,
    splits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    hidden: np.ndarray | None = None,
    disclosure: Disclosure | None = None,
) -> EventBuffer:
    """Every service's events for the whole window.

    `hidden` (bool per household) marks households that never disclose abuse; with `disclosure`, the
    abuse-attributable part of its listed sources' rates is thinned there (synth/disclosure.py).
    """
    buffer = EventBuffer()
    thinned = set(disclosure_sources(disclosure)) if disclosure is not None and hidden is not None else set()
    for spec in SPECS:
        pieces = member_pieces if spec.on == "member" else reference_pieces
        tenure = households.tenure[pieces.household]
        rate = (
            spec.annual_rate / 365.25
            * np.asarray(spec.tenure_multipliers, dtype=float)[tenure]
            * state_multiplier(spec.betas)[pieces.mask]
            * bias_multiplier(people, biases, spec.source)[pieces.person]
        )
        if spec.source in thinned:
            rate = rate * thinning_factor(spec.betas, pieces.mask, hidden[pieces.household], disclosure.kept)
        if spec.on == "member":
            rate = rate * np.asarray(spec.age_multipliers, dtype=float)[pieces.band]
            rate = rate * np.where(people.sex[pieces.person] == MALE, spec.male_multiplier, 1.0)
        piece, time_us = draw_in_pieces(rng, pieces, rate)
        n = len(piece)
        resident = np.full(n, -1) if spec.on == "address" else pieces.person[piece]
        address = (
            households.address[pieces.household[piece]]
            if spec.on == "address" or spec.with_address
            else np.full(n, -1)
        )
        value = None
        if spec.value_lognormal is not None:
            value = np.round(rng.lognormal(spec.value_lognormal[0], spec.value_lognormal[1], n), 2)
        buffer.add(resident, address, TYPE_CODE[(spec.source, spec.event_type)], time_us,
                   time_us + _lag_us(rng, n, spec.lag_days), value)
    absence_hidden = hidden if "school" in thinned else None
    _school_absence(rng, member_pieces, people, biases, timeline, buffer, absence_hidden, disclosure)
    _split_events(rng, splits, households, people, biases, buffer, hidden if thinned else None, disclosure)
    return buffer


def _term_end_day(year: int, month: int) -> int:
    """The day a month's attendance return is complete: the end of its school term."""
    if month >= 9:
        end = dt.date(year, 12, 20)
    elif month <= 3:
        end = dt.date(year, 3, 31)
    else:
        end = dt.date(year, 7, 22)
    return (end - EPOCH).days


def _school_absence(
    rng: np.random.Generator,
    pieces: Pieces,
    people: People,
    biases: Sequence[RecordingBias],
    timeline: Timeline,
    buffer: EventBuffer,
    hidden: np.ndarray | None = None,
    disclosure: Disclosure | None = None,
) -> None:
    """One absence record per pupil (age 4-16) per school month, value = sessions missed (may be 0)."""
    b = timeline.burn_in_months
    month_start = timeline.month_starts[b:-1]
    month_end = timeline.month_starts[b + 1 :]
    month_number = timeline.month_numbers[b:]
    school = np.asarray(SCHOOL_AGES)[pieces.band] > 0
    idx = np.flatnonzero(school)
    # A pupil has a record for a month when the month's last day falls inside the piece.
    last_day = month_end - 1
    lo = np.searchsorted(last_day, pieces.start[idx], side="left")
    hi = np.searchsorted(last_day, pieces.end[idx], side="left")
    count = np.clip(hi - lo, 0, None)
    piece = np.repeat(idx, count)
    offsets = np.cumsum(count) - count
    month = np.repeat(lo, count) + (np.arange(int(count.sum())) - np.repeat(offsets, count))
    in_term = month_number[month] != 8
    piece, month = piece[in_term], month[in_term]
    # Each pupil has a lasting tendency to miss school (gamma frailty), raised by the household's state.
    frailty = rng.gamma(1.5, 1 / 1.5, len(people))
    mean = (
        ABSENCE_MEAN_SESSIONS
        * frailty[pieces.person[piece]]
        * state_multiplier(ABSENCE_BETAS)[pieces.mask[piece]]
        * bias_multiplier(people, biases, "school")[pieces.person[piece]]
    )
    if hidden is not None and disclosure is not None:
        mean = mean * thinning_factor(ABSENCE_BETAS, pieces.mask[piece], hidden[pieces.household[piece]], disclosure.kept)
    sessions = np.minimum(rng.poisson(mean), 40).astype(float)
    term_end = np.array(
        [_term_end_day(int(y), int(m)) for y, m in zip(_years_of(month_start), month_number, strict=True)]
    )
    known_day = np.maximum(term_end[month], last_day[month])
    time_us = month_start[month] * US_PER_DAY
    known_us = known_day * US_PER_DAY + _lag_us(rng, len(month), ABSENCE_LAG_DAYS, ABSENCE_LAG_MAX_DAYS)
    buffer.add(pieces.person[piece], np.full(len(piece), -1), TYPE_CODE[("school", "absence")], time_us,
               known_us, sessions)


def _years_of(days: np.ndarray) -> np.ndarray:
    return np.array([(EPOCH + dt.timedelta(days=int(d))).year for d in days])


def _split_events(
    rng: np.random.Generator,
    splits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    households: Households,
    people: People,
    biases: Sequence[RecordingBias],
    buffer: EventBuffer,
    hidden: np.ndarray | None = None,
    disclosure: Disclosure | None = None,
) -> None:
    """Around a split: often a police domestic incident at the old home, then a homelessness approach.

    Both are caused by the abuse, so for a household that never discloses (`hidden`) a listed source's
    chance is multiplied by `disclosure.kept`; the draws are the same either way (streams unchanged).
    """
    victim, origin, new_home, day = splits
    n = len(victim)
    if n == 0:
        return

    def kept(source: str) -> np.ndarray | float:
        if hidden is None or disclosure is None or source not in disclosure_sources(disclosure):
            return 1.0
        return np.where(hidden[origin], disclosure.kept, 1.0)

    police = rng.random(n) < np.minimum(0.5 * bias_multiplier(people, biases, "police")[victim], 1.0) * kept("police")
    t = (day - rng.integers(0, 14, n)) * US_PER_DAY + rng.integers(0, 86_400, n) * 1_000_000
    buffer.add(victim[police], households.address[origin[police]], TYPE_CODE[("police", "domestic_incident")],
               t[police], t[police] + _lag_us(rng, int(police.sum()), (1.0, 7.0)))
    approach = rng.random(n) < np.minimum(0.5 * bias_multiplier(people, biases, "homelessness")[victim], 1.0) * kept(
        "homelessness"
    )
    t = (day + rng.integers(0, 30, n)) * US_PER_DAY + rng.integers(0, 86_400, n) * 1_000_000
    buffer.add(victim[approach], np.full(int(approach.sum()), -1), TYPE_CODE[("homelessness", "approach")],
               t[approach], t[approach] + _lag_us(rng, int(approach.sum()), (0.0, 5.0)))

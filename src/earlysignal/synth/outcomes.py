"""Outcomes: recorded service decisions drawn from the hazard model in `hazards`.

A child protection plan arrives with the referral (2-6 weeks earlier) and the section 47 enquiry
(up to a week after the referral) that led to it; plans last ~9-12 months (log-normal, median ~9.5)
and a child already on a plan cannot start another. Base rates are calibrated within each run so the
exposure-weighted mean hazard equals each process's `annual_rate` (published England figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earlysignal.config import RecordingBias
from earlysignal.synth.bias import bias_multiplier
from earlysignal.synth.hazards import PROCESSES, Process, relative_hazard
from earlysignal.synth.people import People
from earlysignal.synth.services import US_PER_DAY, Pieces, draw_in_pieces
from earlysignal.synth.timeline import Timeline

OUTCOME_CODES = (
    "csc_referral",
    "s47_enquiry",
    "child_protection_plan",
    "homelessness_acceptance",
    "adult_safeguarding_concern",
)
CPP_MEDIAN_DAYS = 290.0
CPP_LOG_SD = 0.40
KNOWN_LAG_DAYS = {  # (minimum, exponential mean) from the decision to the council's records
    "csc_referral": (0.0, 2.0),
    "s47_enquiry": (0.0, 2.0),
    "child_protection_plan": (0.0, 2.0),
    "homelessness_acceptance": (1.0, 10.0),
    "adult_safeguarding_concern": (0.0, 3.0),
}


@dataclass
class Outcomes:
    """Outcome rows as arrays; `end_us` is -1 where there is no end (open, or not a state)."""

    person: np.ndarray
    code: np.ndarray
    time_us: np.ndarray
    known_us: np.ndarray
    end_us: np.ndarray


def eligible(process: Process, pieces: Pieces) -> np.ndarray:
    """Which pieces a process runs on (by age band)."""
    return np.asarray(process.age_multipliers)[pieces.band] > 0


def calibrated_base(process: Process, pieces: Pieces, people: People) -> float:
    """Daily base hazard so that the exposure-weighted mean hazard is the process's annual rate."""
    rel = relative_hazard(process, pieces.band, pieces.mask, people.disability[pieces.person] == 1, False)
    ok = eligible(process, pieces)
    exposure = pieces.days[ok]
    mean_rel = float((rel[ok] * exposure).sum() / max(exposure.sum(), 1.0))
    return process.annual_rate / 365.25 / max(mean_rel, 1e-12)


def generate_outcomes(
    rng: np.random.Generator,
    member_pieces: Pieces,
    reference_pieces: Pieces,
    people: People,
    biases: Sequence[RecordingBias],
    timeline: Timeline,
    null_world: bool,
) -> tuple[Outcomes, dict[str, float]]:
    """Draw every process; returns the outcomes and each process's daily base hazard."""
    persons, codes, times, ends = [], [], [], []
    bases: dict[str, float] = {}
    for process in PROCESSES:
        pieces = reference_pieces if process.who == "reference" else member_pieces
        base = process.annual_rate / 365.25 if null_world else calibrated_base(process, pieces, people)
        bases[process.name] = base
        rate = base * relative_hazard(
            process, pieces.band, pieces.mask, people.disability[pieces.person] == 1, null_world
        )
        if process.recorded_by and not null_world:
            rate = rate * bias_multiplier(people, biases, process.recorded_by)[pieces.person]
        piece, time_us = draw_in_pieces(rng, pieces, rate)
        person = pieces.person[piece]
        if process.name == "child_protection_plan":
            person, time_us, end_us = _one_plan_at_a_time(rng, person, time_us)
            referral = time_us - rng.integers(14, 43, len(person)) * US_PER_DAY
            s47 = referral + rng.integers(0, 8, len(person)) * US_PER_DAY
            for code, t, e in ((0, referral, None), (1, s47, None), (2, time_us, end_us)):
                persons.append(person)
                codes.append(np.full(len(person), code, dtype=np.int8))
                times.append(t)
                ends.append(np.full(len(person), -1, dtype=np.int64) if e is None else e)
        elif process.name == "s47_enquiry":
            s47 = time_us + rng.integers(0, 8, len(person)) * US_PER_DAY
            for code, t in ((0, time_us), (1, s47)):
                persons.append(person)
                codes.append(np.full(len(person), code, dtype=np.int8))
                times.append(t)
                ends.append(np.full(len(person), -1, dtype=np.int64))
        else:
            persons.append(person)
            codes.append(np.full(len(person), OUTCOME_CODES.index(process.produces[0]), dtype=np.int8))
            times.append(time_us)
            ends.append(np.full(len(person), -1, dtype=np.int64))
    person = np.concatenate(persons)
    code = np.concatenate(codes)
    time_us = np.concatenate(times)
    end_us = np.concatenate(ends)
    known_us = time_us.copy()
    for i, name in enumerate(OUTCOME_CODES):
        sel = code == i
        low, mean = KNOWN_LAG_DAYS[name]
        known_us[sel] += np.round((low + rng.exponential(mean, int(sel.sum()))) * US_PER_DAY).astype(np.int64)
    t0, t1 = timeline.start_day * US_PER_DAY, timeline.end_day * US_PER_DAY
    # The extract holds what the council knew by the extract date, from the window start on.
    keep = (time_us >= t0) & (known_us < t1)
    end_us = np.where(end_us >= t1, -1, end_us)
    order = np.lexsort((code[keep], person[keep], time_us[keep]))
    out = Outcomes(
        person=person[keep][order],
        code=code[keep][order],
        time_us=time_us[keep][order],
        known_us=known_us[keep][order],
        end_us=end_us[keep][order],
    )
    return out, bases


def _one_plan_at_a_time(
    rng: np.random.Generator, person: np.ndarray, start_us: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop plan starts that fall inside an earlier plan of the same child; give each plan an end."""
    order = np.lexsort((start_us, person))
    person, start_us = person[order], start_us[order]
    duration = np.round(CPP_MEDIAN_DAYS * np.exp(rng.normal(0.0, CPP_LOG_SD, len(person))) * US_PER_DAY)
    end_us = start_us + duration.astype(np.int64)
    keep = np.ones(len(person), dtype=bool)
    # Plans per child are few, so a short loop over the children with more than one is cheap.
    repeat = np.flatnonzero(np.r_[False, person[1:] == person[:-1]])
    last_end: dict[int, int] = {}
    for i in np.unique(np.r_[repeat - 1, repeat]).astype(np.int64):
        p = int(person[i])
        if p in last_end and start_us[i] < last_end[p]:
            keep[i] = False
            continue
        last_end[p] = int(end_us[i])
    return person[keep], start_us[keep], end_us[keep]

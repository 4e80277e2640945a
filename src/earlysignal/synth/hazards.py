"""The outcome hazard model, shared by the generator (to draw outcomes) and the oracle (to score them).

Each *process* is a Poisson process per eligible person whose daily hazard is

    base * age_multiplier[age band] * exp(betas . latent state bits) * disability_multiplier**disabled
         * recording_bias (only for processes that are themselves recording decisions)

and one event of a process records one or more outcome types (a child protection plan comes with the
referral and section 47 enquiry that led to it). In the null world every hazard is a constant per
eligible person, independent of the latent states and of everything observable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earlysignal.synth.adversity import N_MASKS, mask_bits

# Age bands in years: [0,1) [1,4) [4,10) [10,17) [17,18) [18,65) [65,inf)
AGE_BAND_EDGES = np.array([0.0, 1.0, 4.0, 10.0, 17.0, 18.0, 65.0, 1000.0])
N_BANDS = len(AGE_BAND_EDGES) - 1
CHILD_BANDS = np.array([1, 1, 1, 1, 1, 0, 0], dtype=bool)
ADULT_BANDS = ~CHILD_BANDS


@dataclass(frozen=True)
class Process:
    """One outcome-generating process (see module docstring)."""

    name: str
    produces: tuple[str, ...]
    who: str  # "child" (under 18), "adult" (18+), "reference" (the person answering for a household)
    annual_rate: float  # target mean events per eligible person-year in the standard world
    betas: tuple[float, float, float, float]  # domestic abuse, hardship, mental ill-health, substance misuse
    age_multipliers: tuple[float, ...]  # per age band; 0 = not eligible
    disability_multiplier: float = 1.0
    recorded_by: str | None = None  # a source whose recording bias also scales this process


PROCESSES = (
    Process(
        "child_protection_plan",
        ("csc_referral", "s47_enquiry", "child_protection_plan"),
        "child",
        0.005,
        (2.4, 0.6, 1.1, 1.7),
        (2.0, 1.3, 1.0, 0.8, 0.4, 0.0, 0.0),
    ),
    Process(
        "s47_enquiry",
        ("csc_referral", "s47_enquiry"),
        "child",
        0.015,
        (1.6, 0.5, 0.8, 1.2),
        (1.6, 1.2, 1.0, 0.9, 0.6, 0.0, 0.0),
        recorded_by="social_care",
    ),
    Process(
        "csc_referral",
        ("csc_referral",),
        "child",
        0.030,
        (1.0, 0.5, 0.6, 0.8),
        (1.4, 1.1, 1.0, 1.0, 0.8, 0.0, 0.0),
        recorded_by="social_care",
    ),
    Process(
        "homelessness_acceptance",
        ("homelessness_acceptance",),
        "reference",
        0.005,
        (1.5, 1.8, 0.4, 0.6),
        (0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5),
    ),
    Process(
        "adult_safeguarding_concern",
        ("adult_safeguarding_concern",),
        "adult",
        0.008,
        (1.2, 0.2, 0.9, 1.0),
        (0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 3.0),
        disability_multiplier=2.5,
    ),
)


def age_band(age_days: np.ndarray) -> np.ndarray:
    """Age band index (0..6) of ages given in days."""
    years = np.asarray(age_days) / 365.25
    return (np.searchsorted(AGE_BAND_EDGES, years, side="right") - 1).clip(0, N_BANDS - 1)


def state_multiplier(betas: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """exp(betas . bits) for each of the 16 state masks."""
    return np.exp(mask_bits(np.arange(N_MASKS)) @ np.asarray(betas, dtype=float))


def relative_hazard(
    process: Process | dict,
    band: np.ndarray,
    mask: np.ndarray,
    disabled: np.ndarray,
    null_world: bool,
    state_part: np.ndarray | None = None,
) -> np.ndarray:
    """Hazard relative to the base rate (before recording bias): age x state x disability.

    `state_part` replaces exp(betas . bits[mask]) per person when given (the oracle's chain method
    passes the expected value over the horizon).
    """
    get = (lambda k: process[k]) if isinstance(process, dict) else (lambda k: getattr(process, k))
    age = np.asarray(get("age_multipliers"), dtype=float)[band]
    if null_world:
        return (age > 0).astype(float)
    dis = np.where(disabled, float(get("disability_multiplier")), 1.0)
    state = state_multiplier(get("betas"))[mask] if state_part is None else state_part
    return age * state * dis

"""Latent household adversity the council never sees directly: a monthly Markov chain per household.

Four states, each switching on (onset) and off (remission) month by month: domestic abuse, financial
hardship, parental mental ill-health and substance misuse. Onset of one is more likely when others are
present (hardship raises abuse onset; substance misuse travels with mental ill-health), so they co-occur
the way they do in serious case reviews. A household's state is a 4-bit mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATES = ("domestic_abuse", "financial_hardship", "parental_mental_ill_health", "substance_misuse")
DA, FH, MH, SM = 0, 1, 2, 3
N_MASKS = 16

# Monthly onset probability with no other state present, and monthly remission probability.
ONSET = np.array([0.0020, 0.0090, 0.0055, 0.0012])
REMISSION = np.array([0.035, 0.040, 0.050, 0.030])
# ONSET_BOOST[k, j]: onset of state k is multiplied by this when state j is present.
ONSET_BOOST = np.array(
    [
        [1.0, 2.5, 1.5, 3.0],  # abuse: hardship, mental ill-health, substance misuse raise it
        [1.5, 1.0, 1.5, 2.0],  # hardship
        [2.0, 1.8, 1.0, 2.0],  # mental ill-health
        [1.5, 1.5, 3.0, 1.0],  # substance misuse: strongly with mental ill-health
    ]
)
# Onset multipliers by tenure (council, HA, private rented, owner occupied): hardship concentrates in
# social and private renting.
TENURE_ONSET = np.array(
    [
        [1.2, 1.2, 1.0, 0.6],
        [2.5, 2.2, 1.5, 0.4],
        [1.3, 1.3, 1.0, 0.8],
        [1.4, 1.3, 1.0, 0.6],
    ]
)
# Onset multipliers by household kind (single adult, couple, single parent, couple with children,
# older single, older couple, sharers): abuse needs a partner, current or former.
KIND_ONSET = np.array(
    [
        [0.4, 1.0, 0.8, 1.3, 0.2, 0.4, 0.3],
        [1.0, 0.8, 1.6, 1.0, 0.8, 0.6, 1.0],
        [1.0, 0.9, 1.3, 1.0, 0.9, 0.7, 1.0],
        [1.3, 0.9, 0.9, 1.0, 0.4, 0.3, 1.3],
    ]
)


def mask_bits(masks: np.ndarray) -> np.ndarray:
    """(n, 4) 0/1 array of which states each mask holds."""
    return ((np.asarray(masks)[:, None] >> np.arange(4)) & 1).astype(np.int8)


def _onset_table() -> np.ndarray:
    """ONSET[k] times the boosts of whichever other states a mask holds: shape (4, 16)."""
    bits = mask_bits(np.arange(N_MASKS))
    table = np.empty((4, N_MASKS))
    for k in range(4):
        table[k] = ONSET[k] * np.prod(np.where(bits == 1, ONSET_BOOST[k], 1.0), axis=1)
    return table


@dataclass
class StateGrid:
    """masks[h, m]: household h's state mask in grid month m (burn-in months first)."""

    masks: np.ndarray  # uint8 (households, grid months)


def simulate_states(
    rng: np.random.Generator,
    tenure: np.ndarray,
    kind: np.ndarray,
    grid_months: int,
    start_month: np.ndarray | None = None,
    initial: np.ndarray | None = None,
) -> StateGrid:
    """Run the chain for every household over the whole grid (vectorised over households).

    A household's chain starts at `start_month` (default 0) from `initial` (default: no adversity);
    earlier months hold 0.
    """
    n = len(tenure)
    start_month = np.zeros(n, dtype=np.int64) if start_month is None else start_month
    initial = np.zeros(n, dtype=np.uint8) if initial is None else initial.astype(np.uint8)
    onset_table = _onset_table()
    static = TENURE_ONSET[:, tenure] * KIND_ONSET[:, kind]  # (4, n)
    masks = np.zeros((n, grid_months), dtype=np.uint8)
    state = np.zeros(n, dtype=np.uint8)
    for month in range(grid_months):
        u = rng.random((4, n), dtype=np.float32)
        new_state = np.zeros(n, dtype=np.uint8)
        for k in range(4):
            bit = np.uint8(1 << k)
            present = (state & bit) > 0
            onset = static[k] * onset_table[k][state]
            on = np.where(present, u[k] >= REMISSION[k], u[k] < onset)
            new_state |= np.where(on, bit, np.uint8(0))
        state = np.where(month == start_month, initial, new_state)
        state = np.where(month < start_month, np.uint8(0), state)
        masks[:, month] = state
    return StateGrid(masks=masks)


def state_runs(
    masks: np.ndarray, month_starts: np.ndarray, first_month: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of constant mask from grid month `first_month` on: (household, start_day, end_day, mask).

    Sorted by household then start, so `household * 2**24 + start_day` is an ascending key.
    """
    window = masks[:, first_month:]
    n, m = window.shape
    change = np.ones((n, m), dtype=bool)
    change[:, 1:] = window[:, 1:] != window[:, :-1]
    rows, cols = np.nonzero(change)
    next_col = np.empty_like(cols)
    next_col[:-1] = cols[1:]
    last_in_row = np.ones(len(rows), dtype=bool)
    last_in_row[:-1] = rows[1:] != rows[:-1]
    next_col[last_in_row] = m
    start = month_starts[first_month + cols]
    end = month_starts[first_month + next_col]
    return rows.astype(np.int64), start.astype(np.int64), end.astype(np.int64), window[rows, cols]


RUN_KEY_SHIFT = np.int64(2**24)


def intersect_runs(
    household: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    runs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut each interval [start, end) of a household into pieces of constant state.

    Returns (interval index, piece start, piece end, mask); intervals must lie inside the runs' span.
    """
    run_h, run_start, run_end, run_mask = runs
    key = run_h * RUN_KEY_SHIFT + run_start
    lo = np.searchsorted(key, household * RUN_KEY_SHIFT + start, side="right") - 1
    hi = np.searchsorted(key, household * RUN_KEY_SHIFT + end, side="left")
    count = np.clip(hi - lo, 0, None)
    interval = np.repeat(np.arange(len(household)), count)
    offsets = np.cumsum(count) - count
    run = np.repeat(lo, count) + (np.arange(int(count.sum())) - np.repeat(offsets, count))
    piece_start = np.maximum(run_start[run], start[interval])
    piece_end = np.minimum(run_end[run], end[interval])
    keep = piece_start < piece_end
    return interval[keep], piece_start[keep], piece_end[keep], run_mask[run][keep]


def chain_parameters() -> dict[str, list]:
    """The chain's parameters as plain data (written to ground_truth/hazards.json for the oracle)."""
    return {
        "onset": ONSET.tolist(),
        "remission": REMISSION.tolist(),
        "onset_boost": ONSET_BOOST.tolist(),
        "tenure_onset": TENURE_ONSET.tolist(),
        "kind_onset": KIND_ONSET.tolist(),
    }


def transition_matrices(params: dict[str, list]) -> np.ndarray:
    """Monthly transition probabilities P[tenure, kind, from_mask, to_mask] of the chain in `params`.

    Given the current mask, each state switches independently (one uniform draw each), so a row is a
    product of per-state Bernoulli probabilities, exactly as `simulate_states` draws them.
    """
    onset = np.asarray(params["onset"], dtype=float)
    remission = np.asarray(params["remission"], dtype=float)
    boost = np.asarray(params["onset_boost"], dtype=float)
    by_tenure = np.asarray(params["tenure_onset"], dtype=float)  # (state, tenure)
    by_kind = np.asarray(params["kind_onset"], dtype=float)  # (state, kind)
    bits = mask_bits(np.arange(N_MASKS))  # (mask, state)
    boosted = onset[None, :] * np.prod(np.where(bits[:, None, :] == 1, boost[None, :, :], 1.0), axis=2)
    static = by_tenure.T[:, None, :] * by_kind.T[None, :, :]  # (tenure, kind, state)
    p_onset = np.clip(static[:, :, None, :] * boosted[None, None, :, :], 0.0, 1.0)  # (tenure, kind, mask, state)
    p_on_next = np.where(bits[None, None, :, :] == 1, 1.0 - remission, p_onset)
    to_bits = bits[None, None, None, :, :]  # (1, 1, 1, to_mask, state)
    p = p_on_next[:, :, :, None, :]
    return np.prod(np.where(to_bits == 1, p, 1.0 - p), axis=4)

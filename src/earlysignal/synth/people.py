"""People and places: addresses, the households that occupy them in turn, members, births, splits and deaths.

Everything is arrays (one entry per address, household, person or membership) so a borough of
250,000 people is built in seconds. Days are integers since 1970-01-01 (see `timeline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earlysignal.synth.timeline import DAYS_PER_YEAR, OPEN, Timeline

TENURES = ("council", "housing_association", "private_rented", "owner_occupied")
TENURE_SHARES = np.array([0.23, 0.10, 0.32, 0.35])
# Mean years a household stays at one address, by tenure (inner-London private renting churns fast).
MEAN_STAY_YEARS = np.array([11.0, 9.0, 3.5, 14.0])
MEAN_VACANCY_DAYS = 30.0

ETHNICITIES = ("White", "Asian", "Black", "Mixed", "Other")
ETHNICITY_SHARES = np.array([0.60, 0.16, 0.09, 0.07, 0.08])
# Rows: tenure; chosen so the borough-wide mix matches ETHNICITY_SHARES (Camden-like census profile).
ETHNICITY_BY_TENURE = np.array(
    [
        [0.45, 0.20, 0.18, 0.08, 0.09],
        [0.45, 0.20, 0.18, 0.08, 0.09],
        [0.62, 0.16, 0.06, 0.07, 0.09],
        [0.70, 0.14, 0.04, 0.06, 0.06],
    ]
)
ETHNICITY_UNRECORDED = 0.03
MIXED = 3

HOUSEHOLD_KINDS = (
    "single_adult",
    "couple",
    "single_parent",
    "couple_with_children",
    "older_single",
    "older_couple",
    "sharers",
)
KIND_BY_TENURE = np.array(
    [
        [0.20, 0.07, 0.20, 0.18, 0.22, 0.05, 0.08],
        [0.22, 0.08, 0.18, 0.20, 0.20, 0.05, 0.07],
        [0.30, 0.20, 0.07, 0.15, 0.04, 0.02, 0.22],
        [0.20, 0.22, 0.03, 0.25, 0.15, 0.13, 0.02],
    ]
)
COUPLE_KINDS = np.array([1, 3, 5])
FAMILY_KINDS = np.array([2, 3])
# Share of the first adult being female, by household kind (victim of abuse / mother / liable person).
FIRST_ADULT_FEMALE = np.array([0.5, 0.9, 0.9, 0.9, 0.62, 0.9, 0.5])
BIRTHS_PER_YEAR = np.array([0.0, 0.10, 0.04, 0.08, 0.0, 0.0, 0.0])
# Tenure of the new home after a split (refuge, temporary then social housing, or private renting).
SPLIT_TENURE_SHARES = np.array([0.35, 0.35, 0.30, 0.0])

# Gompertz mortality h(age) = A * exp(B * age) per year: ~0.1%/yr at 40, ~5%/yr at 80.
GOMPERTZ_A = 2.0e-5
GOMPERTZ_B = 0.0978

ROLE_REFERENCE, ROLE_ADULT, ROLE_CHILD = 0, 1, 2
FEMALE, MALE = 0, 1


@dataclass(frozen=True)
class Mix:
    """The borough's tenure and ethnic mix: shares of addresses by tenure (TENURES order), each tenure's
    households' main group (rows: tenure, columns: ETHNICITIES) and the group of members who differ."""

    tenure_shares: np.ndarray
    ethnicity_by_tenure: np.ndarray
    ethnicity_shares: np.ndarray


DEFAULT_MIX = Mix(TENURE_SHARES, ETHNICITY_BY_TENURE, ETHNICITY_SHARES)


def make_mix(tenure_mix: dict[str, float], ethnicity_mix: dict[str, float]) -> Mix:
    """The mix from `synth.tenure_mix` and `synth.ethnicity_mix` ({name: share}); empty: the built-in one.

    Tenure shares replace TENURE_SHARES (every tenure named, shares summing to 1). Ethnicity shares are
    borough-wide targets for households' main group: each group's column of ETHNICITY_BY_TENURE is
    reweighted until the mix over the tenure shares equals them, so groups keep their relative
    over-representation in social housing; the residents' mix lands near it (household sizes differ by
    tenure, 10% of members differ from their household, some children are Mixed).
    Raises ValueError naming the key for an unknown or missing name or shares not summing to 1."""
    tenure = _shares("synth.tenure_mix", tenure_mix, TENURES) if tenure_mix else TENURE_SHARES
    if not ethnicity_mix:
        return Mix(tenure, ETHNICITY_BY_TENURE, ETHNICITY_SHARES)
    target = _shares("synth.ethnicity_mix", ethnicity_mix, ETHNICITIES)
    # Fixed point: reweight the groups until the household-level mix over the tenure shares is the target.
    weights = np.where(target > 0, 1.0, 0.0)
    for _ in range(50):
        by_tenure = ETHNICITY_BY_TENURE * weights[None, :]
        by_tenure = by_tenure / by_tenure.sum(axis=1, keepdims=True)
        implied = tenure @ by_tenure
        weights = weights * np.divide(target, implied, out=np.zeros_like(target), where=implied > 0)
    return Mix(tenure, by_tenure, target)


def _shares(key: str, given: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    unknown = sorted(set(given) - set(names))
    missing = [n for n in names if n not in given]
    if unknown or missing:
        raise ValueError(
            f"{key}: give a share for each of {', '.join(names)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    shares = np.array([float(given[n]) for n in names])
    if (shares < 0).any() or abs(shares.sum() - 1.0) > 1e-6:
        raise ValueError(f"{key}: shares must be >= 0 and sum to 1 (they sum to {shares.sum():.4f})")
    return shares


@dataclass
class Households:
    """One row per household (an occupancy of one address by one group of people)."""

    address: np.ndarray  # int64 address index
    tenure: np.ndarray  # int8 index into TENURES
    kind: np.ndarray  # int8 index into HOUSEHOLD_KINDS
    start: np.ndarray  # int64 day moved in (may precede the data window)
    end: np.ndarray  # int64 day moved out, exclusive; OPEN if still there at the extract date
    split_from: np.ndarray  # int64 household this one split from, -1 if none
    ethnicity: np.ndarray  # int8 the household's main ethnic group

    def __len__(self) -> int:
        return len(self.address)


@dataclass
class People:
    """One row per person who ever lived in the borough during the window (and some who never did)."""

    birth: np.ndarray  # int64 day
    sex: np.ndarray  # int8 FEMALE / MALE
    ethnicity: np.ndarray  # int8 true group
    ethnicity_recorded: np.ndarray  # bool: False -> null in residents.parquet
    disability: np.ndarray  # int8 1 / 0 / -1 (unrecorded)
    death: np.ndarray  # int64 day of death, OPEN if alive at the extract date

    def __len__(self) -> int:
        return len(self.birth)


@dataclass
class Memberships:
    """Who lived in which household when: one row per (person, household) spell [start, end)."""

    person: np.ndarray
    household: np.ndarray
    start: np.ndarray
    end: np.ndarray  # OPEN while still there at the extract date
    role: np.ndarray  # int8 ROLE_*: the first adult, another adult, or someone who joined as a child


def _years(days: np.ndarray | float) -> np.ndarray:
    return np.asarray(days) / DAYS_PER_YEAR


def _days(years: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(years) * DAYS_PER_YEAR).astype(np.int64)


def _choice_rows(rng: np.random.Generator, probabilities: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Draw one category per item from the probability row `rows[i]` (vectorised inverse CDF)."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    u = rng.random(len(rows))
    return (u[:, None] > cumulative[rows]).sum(axis=1).astype(np.int8)


def expected_household_size(mix: Mix = DEFAULT_MIX) -> float:
    """Mean household size implied by the kind mix (used to size the address stock)."""
    sizes = np.array([1, 2, 1 + 1.7, 2 + 1.7, 1, 2, 2.7])
    return float(mix.tenure_shares @ KIND_BY_TENURE @ sizes)


def occupy_addresses(
    rng: np.random.Generator, n_addresses: int, timeline: Timeline, mix: Mix = DEFAULT_MIX
) -> Households:
    """Addresses with a tenure, each occupied by a chain of households from before the window to its end."""
    tenure = rng.choice(len(TENURES), size=n_addresses, p=mix.tenure_shares).astype(np.int8)
    mean_days = MEAN_STAY_YEARS[tenure] * DAYS_PER_YEAR
    t0, t1 = timeline.start_day, timeline.end_day
    # Exponential stays are memoryless, so the occupant at the window start has an exponential
    # time since moving in and an exponential time left.
    first_start = t0 - np.floor(rng.exponential(mean_days)).astype(np.int64)
    first_end = t0 + 1 + np.floor(rng.exponential(mean_days)).astype(np.int64)
    addresses = [np.arange(n_addresses)]
    starts, ends = [first_start], [first_end]
    current, current_end = np.arange(n_addresses), first_end
    while True:
        going = current_end < t1
        current, current_end = current[going], current_end[going]
        if len(current) == 0:
            break
        start = current_end + np.floor(rng.exponential(MEAN_VACANCY_DAYS, len(current))).astype(np.int64)
        moving_in = start < t1
        current, start = current[moving_in], start[moving_in]
        end = start + 1 + np.floor(rng.exponential(mean_days[current])).astype(np.int64)
        addresses.append(current)
        starts.append(start)
        ends.append(end)
        current_end = end
    address = np.concatenate(addresses)
    start = np.concatenate(starts)
    end = np.concatenate(ends)
    end = np.where(end >= t1, OPEN, end)
    order = np.lexsort((start, address))
    address, start, end = address[order], start[order], end[order]
    tenure_h = tenure[address]
    kind = _choice_rows(rng, KIND_BY_TENURE, tenure_h)
    ethnicity = _choice_rows(rng, mix.ethnicity_by_tenure, tenure_h)
    return Households(
        address=address.astype(np.int64),
        tenure=tenure_h,
        kind=kind,
        start=start,
        end=end,
        split_from=np.full(len(address), -1, dtype=np.int64),
        ethnicity=ethnicity,
    )


def _adult_ages(rng: np.random.Generator, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ages in years of the first and (if any) second adult, by household kind."""
    n = len(kind)
    low = np.array([18, 20, 19, 21, 65, 65, 18], dtype=float)
    span = np.array([47, 45, 32, 32, 30, 28, 22], dtype=float)
    shape_a = np.array([1.5, 1.8, 2.0, 2.0, 1.2, 1.2, 1.5])
    shape_b = np.array([2.5, 2.6, 2.5, 2.2, 2.2, 2.4, 2.5])
    first = low[kind] + span[kind] * rng.beta(shape_a[kind], shape_b[kind])
    partner = np.clip(first + rng.normal(1.5, 4.0, n), 18.0, 100.0)
    sharer = low[kind] + span[kind] * rng.beta(shape_a[kind], shape_b[kind])
    second = np.where(kind == 6, sharer, partner)
    return first, second


def populate(
    rng: np.random.Generator, households: Households, timeline: Timeline, mix: Mix = DEFAULT_MIX
) -> tuple[People, Memberships]:
    """Members of every household, with ages as at the later of moving in and the window start."""
    kind = households.kind
    n_h = len(households)
    n_adults = np.array([1, 2, 1, 2, 1, 2, 2])[kind] + np.where(kind == 6, rng.binomial(2, 0.35, n_h), 0)
    n_children = np.where(np.isin(kind, FAMILY_KINDS), np.minimum(1 + rng.poisson(0.7, n_h), 5), 0)
    size = n_adults + n_children
    household = np.repeat(np.arange(n_h), size)
    offsets = np.cumsum(size) - size
    rank = np.arange(len(household)) - offsets[household]
    is_adult = rank < n_adults[household]
    role = np.where(rank == 0, ROLE_REFERENCE, np.where(is_adult, ROLE_ADULT, ROLE_CHILD)).astype(np.int8)

    first_age, second_age = _adult_ages(rng, kind)
    extra_age = 18 + 22 * rng.beta(1.5, 2.5, len(household))
    parent_age = first_age[household]
    child_age = rng.random(len(household)) * np.clip(np.minimum(17.99, parent_age - 18), 0.1, None)
    age = np.where(rank == 0, first_age[household], np.where(rank == 1, second_age[household], extra_age))
    age = np.where(role == ROLE_CHILD, child_age, age)

    h_kind = kind[household]
    first_female = rng.random(n_h) < FIRST_ADULT_FEMALE[kind]
    random_sex = (rng.random(len(household)) < 0.5).astype(np.int8)
    couple_second = np.isin(h_kind, COUPLE_KINDS) & (rank == 1)
    opposite = rng.random(len(household)) < 0.95
    first_sex = np.where(first_female, FEMALE, MALE)[household]
    sex = np.where(rank == 0, first_sex, random_sex)
    sex = np.where(couple_second & opposite, 1 - first_sex, sex).astype(np.int8)

    reference_day = np.maximum(households.start, timeline.start_day)[household]
    birth = reference_day - _days(age)
    ethnicity = _member_ethnicity(rng, households.ethnicity[household], role, mix.ethnicity_shares)
    disability = _disability(rng, age)
    start = np.maximum(households.start[household], birth)
    people = People(
        birth=birth,
        sex=sex,
        ethnicity=ethnicity,
        ethnicity_recorded=rng.random(len(household)) >= ETHNICITY_UNRECORDED,
        disability=disability,
        death=np.full(len(household), OPEN, dtype=np.int64),
    )
    members = Memberships(
        person=np.arange(len(household), dtype=np.int64),
        household=household.astype(np.int64),
        start=start,
        end=households.end[household].copy(),
        role=role,
    )
    return people, members


def _member_ethnicity(
    rng: np.random.Generator, household_ethnicity: np.ndarray, role: np.ndarray, shares: np.ndarray
) -> np.ndarray:
    """Mostly the household's group; some partners differ, and some children are Mixed."""
    n = len(household_ethnicity)
    other = rng.choice(len(ETHNICITIES), size=n, p=shares).astype(np.int8)
    differs = rng.random(n) < 0.10
    ethnicity = np.where(differs, other, household_ethnicity)
    mixed_child = (role == ROLE_CHILD) & (rng.random(n) < 0.06)
    return np.where(mixed_child, MIXED, ethnicity).astype(np.int8)


def _disability(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    """Recorded disability: ~12% of working-age adults, ~35% of over-65s, ~5% of children; ~4% unrecorded."""
    p = np.where(age >= 65, 0.35, np.where(age >= 18, 0.12, 0.05))
    disabled = (rng.random(len(age)) < p).astype(np.int8)
    return np.where(rng.random(len(age)) < 0.04, -1, disabled).astype(np.int8)


def add_births(
    rng: np.random.Generator, households: Households, people: People, members: Memberships, timeline: Timeline
) -> tuple[People, Memberships]:
    """Babies born into couples and families during the window; the first adult is the mother."""
    first = members.role == ROLE_REFERENCE
    mother = members.person[first]
    home = members.household[first]
    eligible = (people.sex[mother] == FEMALE) & (BIRTHS_PER_YEAR[households.kind[home]] > 0)
    mother, home = mother[eligible], home[eligible]
    lo = np.maximum.reduce(
        [households.start[home], np.full(len(home), timeline.start_day), people.birth[mother] + _days(18.0)]
    )
    hi = np.minimum.reduce(
        [
            np.minimum(households.end[home], timeline.end_day),
            np.full(len(home), timeline.end_day),
            people.birth[mother] + _days(45.0),
        ]
    )
    span = np.clip(hi - lo, 0, None)
    count = np.minimum(rng.poisson(BIRTHS_PER_YEAR[households.kind[home]] * _years(span)), 3)
    n = int(count.sum())
    if n == 0:
        return people, members
    mother, home = np.repeat(mother, count), np.repeat(home, count)
    day = np.repeat(lo, count) + np.floor(rng.random(n) * np.repeat(span, count)).astype(np.int64)
    ethnicity = np.where(rng.random(n) < 0.10, MIXED, people.ethnicity[mother]).astype(np.int8)
    new_ids = np.arange(len(people), len(people) + n, dtype=np.int64)
    babies = People(
        birth=day,
        sex=(rng.random(n) < 0.512).astype(np.int8),
        ethnicity=ethnicity,
        ethnicity_recorded=rng.random(n) >= ETHNICITY_UNRECORDED,
        disability=np.where(rng.random(n) < 0.04, -1, (rng.random(n) < 0.03)).astype(np.int8),
        death=np.full(n, OPEN, dtype=np.int64),
    )
    spells = Memberships(
        person=new_ids,
        household=home,
        start=day,
        end=households.end[home].copy(),
        role=np.full(n, ROLE_CHILD, dtype=np.int8),
    )
    return _concat_people(people, babies), _concat_members(members, spells)


def _concat_people(a: People, b: People) -> People:
    return People(**{k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in a.__dataclass_fields__})


def _concat_members(a: Memberships, b: Memberships) -> Memberships:
    return Memberships(**{k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in a.__dataclass_fields__})


def _concat_households(a: Households, b: Households) -> Households:
    return Households(**{k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in a.__dataclass_fields__})


def split_candidates(households: Households) -> np.ndarray:
    """Households where the first adult can leave an abusive partner: couples, with or without children."""
    return np.isin(households.kind, np.array([1, 3]))


def apply_splits(
    rng: np.random.Generator,
    households: Households,
    members: Memberships,
    split_day: np.ndarray,
    n_addresses: int,
    timeline: Timeline,
) -> tuple[Households, Memberships, np.ndarray]:
    """The first adult and the children leave on `split_day` (>= 0) for a new household at a new address.

    Returns the grown household and membership tables and, per new household, the household it left.
    """
    origin = np.flatnonzero(split_day >= 0)
    day = split_day[origin]
    n_new = len(origin)
    if n_new == 0:
        return households, members, origin
    tenure = rng.choice(len(TENURES), size=n_new, p=SPLIT_TENURE_SHARES).astype(np.int8)
    stay = np.floor(rng.exponential(MEAN_STAY_YEARS[tenure] * DAYS_PER_YEAR)).astype(np.int64)
    end = day + 1 + stay
    end = np.where(end >= timeline.end_day, OPEN, end)
    new_ids = np.arange(len(households), len(households) + n_new, dtype=np.int64)
    kind = np.where(households.kind[origin] == 3, 2, 0).astype(np.int8)  # a lone parent or a single adult
    new = Households(
        address=np.arange(n_addresses, n_addresses + n_new, dtype=np.int64),
        tenure=tenure,
        kind=kind,
        start=day,
        end=end,
        split_from=origin.astype(np.int64),
        ethnicity=households.ethnicity[origin],
    )
    target = np.full(len(households), -1, dtype=np.int64)
    target[origin] = new_ids
    dest = target[members.household]
    moving_day = np.where(dest >= 0, split_day[members.household], OPEN)
    leaves = (dest >= 0) & (members.role != ROLE_ADULT)
    # Spells that straddle the split are cut in two; spells that begin after it (babies) move whole.
    straddles = leaves & (members.start < moving_day) & (members.end > moving_day)
    after = leaves & (members.start >= moving_day)
    new_end = households.end.copy()
    new_end = np.concatenate([new_end, end])
    moved = Memberships(
        person=members.person[straddles],
        household=dest[straddles],
        start=moving_day[straddles],
        end=new_end[dest[straddles]],
        role=members.role[straddles],
    )
    end_cut = members.end.copy()
    end_cut[straddles] = moving_day[straddles]
    household_col = members.household.copy()
    household_col[after] = dest[after]
    end_cut[after] = new_end[dest[after]]
    kept = Memberships(
        person=members.person,
        household=household_col,
        start=members.start,
        end=end_cut,
        role=members.role,
    )
    merged = _concat_members(kept, moved)
    valid = merged.start < merged.end
    merged = Memberships(**{k: getattr(merged, k)[valid] for k in merged.__dataclass_fields__})
    return _concat_households(households, new), merged, origin


def apply_deaths(rng: np.random.Generator, people: People, members: Memberships, timeline: Timeline) -> Memberships:
    """Gompertz deaths from each person's first day in the window; spells end at death."""
    n = len(people)
    first_day = np.full(n, OPEN, dtype=np.int64)
    np.minimum.at(first_day, members.person, np.maximum(members.start, timeline.start_day))
    last_day = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_day, members.person, members.end)
    entry_age = np.clip(_years(first_day - people.birth), 0, 150)
    e = rng.exponential(1.0, n)
    death_age = np.log(np.exp(GOMPERTZ_B * entry_age) + GOMPERTZ_B * e / GOMPERTZ_A) / GOMPERTZ_B
    death = people.birth + _days(death_age)
    death = np.maximum(death, first_day + 1)
    dies_here = (death < timeline.end_day) & (death < last_day) & (first_day < OPEN)
    people.death = np.where(dies_here, death, OPEN)
    cut = np.minimum(members.end, people.death[members.person])
    valid = members.start < cut
    return Memberships(
        person=members.person[valid],
        household=members.household[valid],
        start=members.start[valid],
        end=cut[valid],
        role=members.role[valid],
    )


def reference_intervals(
    households: Households, members: Memberships, split_day: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(person, household, start, end) of who answers for each household: the first adult, or the
    remaining partner after the first adult has left in a split.
    """
    n_h = len(households)
    split = np.concatenate([split_day, np.full(n_h - len(split_day), -1)])
    is_ref = members.role == ROLE_REFERENCE
    second = members.role == ROLE_ADULT
    # The remaining partner answers for the origin household from the split day.
    rank_second = second & (split[members.household] >= 0)
    if rank_second.any():
        # Only the earliest-listed other adult takes over, so intervals never overlap.
        idx = np.flatnonzero(rank_second)
        _, first_idx = np.unique(members.household[idx], return_index=True)
        idx = idx[first_idx]
    else:
        idx = np.array([], dtype=np.int64)
    person = np.concatenate([members.person[is_ref], members.person[idx]])
    household = np.concatenate([members.household[is_ref], members.household[idx]])
    start = np.concatenate([members.start[is_ref], np.maximum(members.start[idx], split[members.household[idx]])])
    end = np.concatenate([members.end[is_ref], members.end[idx]])
    valid = start < end
    return person[valid], household[valid], start[valid], end[valid]

"""Planted disagreements on sex, NHS number and UPN between a person's raw records.

Real systems disagree on the fields linkage treats as near-certain: one service records a person's sex
differently from the others, a person's recorded sex changes from some date, an NHS number is keyed with
a digit wrong, a school issues a temporary UPN while it waits for the pupil's permanent one. Without these
disagreements in the synthetic extracts, Splink's EM learns that they never happen and a single one rules
a true match out (docs/adr/0022-disagreement-penalty-floor.md).

Everything here draws from its own random stream (`write_raw_extracts` passes a generator seeded apart
from every other stream), and is applied to field values after the extract builders drew theirs, so
with every rate at zero the raw extracts are byte-identical to those written without this module, and
with the default rates only the sex, title, NHS-number and UPN values of the flagged records differ.
Ground truth keeps the true values (identities.parquet) and flags each record whose value was changed
(raw_records.parquet, column `planted_disagreement`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

# Which raw systems record each field (as the builders in raw_extracts.py write them).
SEX_SOURCES = ("school", "police", "social_care", "ae", "council_tax")
NHS_SOURCES = ("social_care", "ae")
UPN_SOURCES = ("school", "social_care")
FIELDS = ("sex", "nhs_number", "upn")
UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"


@dataclass(frozen=True)
class DisagreementRates:
    """How often each kind of disagreement is planted (shares of people, or of records where per record)."""

    # One system records the other sex for this person (all of that system's records of them). Harron et al.
    # 2017 (BMC Med Res Methodol 17:23, HES linked to PDS by NHS number) found sex or date of birth wrong or
    # missing in 0.11% of hospital records; over the five systems that record sex here, 0.5% of people
    # having one system disagree is a judgement of that order.
    sex_one_source: float = 0.005
    # Every system records the other sex from some date on (a change of recorded gender). ONS Census 2021:
    # 0.5% of people aged 16+ in England and Wales gave a gender identity different from their sex registered
    # at birth; the share whose records change within the window is a judgement (0.2%).
    sex_from_date: float = 0.002
    # An NHS number keyed with one digit changed or two adjacent digits swapped: per A&E attendance (each
    # keyed afresh) and per person in social care's register. A judgement: no published rate was found.
    nhs_typo: float = 0.005
    # Pupils whose school records carry a temporary UPN (the national formula with a letter at the end) for
    # their first weeks, until the previous school's common transfer file arrives (DfE UPN guidance; local
    # authorities report schools forgetting to replace them). The share (3%) is a judgement.
    upn_temporary: float = 0.03
    # A UPN copied into social care's record with one character wrong, per person. A judgement.
    upn_typo: float = 0.005

    @classmethod
    def none(cls) -> DisagreementRates:
        """No planted disagreement at all (the extracts as written before this module existed)."""
        return cls(**{f.name: 0.0 for f in fields(cls)})


class IdentityNoise:
    """Per-person decisions (drawn once, in resident order) and the functions that apply them per record.

    `people`: indexed by resident_id with birth_date; `first_school`: each pupil's first school record time;
    `start` / `end`: the window of the extracts. Decisions come from `rng` only.
    """

    def __init__(self, rng: np.random.Generator, people: pd.DataFrame, first_school: pd.Series,
                 start: pd.Timestamp, end: pd.Timestamp, rates: DisagreementRates) -> None:
        self.rng = rng
        self.rates = rates
        ids = people.index
        n = len(ids)
        u = rng.random((n, 5))
        # Sex in one system only: which system.
        pick = rng.integers(0, len(SEX_SOURCES), n)
        self.sex_source = pd.Series(np.where(u[:, 0] < rates.sex_one_source,
                                             np.asarray(SEX_SOURCES, dtype=object)[pick], None), index=ids)
        # Sex from a date: a day between the later of the window start and the 16th birthday, and the end.
        adult = pd.to_datetime(people["birth_date"]) + pd.DateOffset(years=16)
        low = np.maximum(adult.to_numpy(dtype="datetime64[ns]"), np.datetime64(pd.Timestamp(start), "ns"))
        span = (np.datetime64(pd.Timestamp(end), "ns") - low).astype("timedelta64[D]").astype(np.int64)
        offset = (rng.random(n) * np.maximum(span, 0)).astype(np.int64)
        change = low + offset.astype("timedelta64[D]")
        self.sex_from = pd.Series(np.where((u[:, 1] < rates.sex_from_date) & (span > 0), change,
                                           np.datetime64("NaT")), index=ids).astype("datetime64[ns]")
        # Temporary UPN at school for 30-180 days from the pupil's first school record.
        first = pd.to_datetime(first_school.reindex(ids))
        until = first + pd.to_timedelta(rng.integers(30, 181, n), unit="D")
        self.upn_until = until.where((u[:, 2] < rates.upn_temporary) & first.notna())
        letters = np.asarray(list(UPN_LETTERS))
        self.temporary_upn = pd.Series(
            [f"{a}{b:011d}{c}" for a, b, c in zip(letters[rng.integers(0, len(letters), n)],
                                                  rng.integers(0, 10**11, n), letters[rng.integers(0, len(letters), n)],
                                                  strict=True)], index=ids)
        # Register errors, per person: NHS number in social care, UPN copied into social care.
        self.nhs_register = pd.Series(u[:, 3] < rates.nhs_typo, index=ids)
        self.upn_register = pd.Series(u[:, 4] < rates.upn_typo, index=ids)
        self._typo_draws = pd.DataFrame(rng.random((n, 3)), index=ids)

    def sex(self, source: str, values: pd.Series, resident_ids: pd.Series, when: pd.Series) -> tuple[pd.Series, np.ndarray]:
        """Sex values ("F"/"M") as `source` records them, and which records were changed (bool per record)."""
        if source not in SEX_SOURCES:
            return values, np.zeros(len(values), dtype=bool)
        rid = resident_ids.to_numpy()
        one = (self.sex_source.reindex(rid).to_numpy(dtype=object) == source)
        since = self.sex_from.reindex(rid).to_numpy(dtype="datetime64[ns]")
        at = pd.to_datetime(when).to_numpy(dtype="datetime64[ns]")
        later = ~np.isnat(since) & ~np.isnat(at) & (at >= since)
        # Both at once restore the true value: neither is then a disagreement.
        flip = one ^ later
        flip &= values.isin(["F", "M"]).to_numpy()
        out = values.copy()
        out[flip] = np.where(values[flip].to_numpy(dtype=object) == "F", "M", "F")
        return out, flip

    def nhs_number(self, source: str, values: pd.Series, resident_ids: pd.Series, per_record: bool) -> tuple[pd.Series, np.ndarray]:
        """NHS numbers as `source` keys them (blank ones stay blank), and which were changed."""
        if source not in NHS_SOURCES:
            return values, np.zeros(len(values), dtype=bool)
        rid = resident_ids.to_numpy()
        if per_record:
            hit = self.rng.random(len(values)) < self.rates.nhs_typo
            draws = self.rng.random((len(values), 3))
        else:
            hit = self.nhs_register.reindex(rid).to_numpy(dtype=bool)
            draws = self._typo_draws.reindex(rid).to_numpy()
        return self._mistype(values, hit, draws, "0123456789")

    def upn(self, source: str, values: pd.Series, resident_ids: pd.Series, when: pd.Series) -> tuple[pd.Series, np.ndarray]:
        """UPNs as `source` records them: a temporary UPN at school in a pupil's first weeks, a mistyped
        copy in social care; blank ones stay blank. Returns the values and which were changed."""
        if source not in UPN_SOURCES:
            return values, np.zeros(len(values), dtype=bool)
        rid = resident_ids.to_numpy()
        if source == "school":
            until = self.upn_until.reindex(rid).to_numpy(dtype="datetime64[ns]")
            at = pd.to_datetime(when).to_numpy(dtype="datetime64[ns]")
            hit = ~np.isnat(until) & (at < until) & (values.fillna("").astype(str) != "").to_numpy()
            out = values.copy()
            out[hit] = self.temporary_upn.reindex(rid[hit]).to_numpy(dtype=object)
            return out, hit
        hit = self.upn_register.reindex(rid).to_numpy(dtype=bool)
        return self._mistype(values, hit, self._typo_draws.reindex(rid).to_numpy(), "0123456789", first=4)

    @staticmethod
    def _mistype(values: pd.Series, hit: np.ndarray, draws: np.ndarray, alphabet: str,
                 first: int = 0) -> tuple[pd.Series, np.ndarray]:
        """One keying error per hit value: two adjacent characters swapped, else one character replaced.

        `draws` (n x 3 uniforms): kind, position, replacement. Characters before `first` are never touched.
        """
        text = values.fillna("").astype(str).to_numpy(dtype=object)
        out = values.to_numpy(dtype=object).copy()
        changed = np.zeros(len(values), dtype=bool)
        for i in np.flatnonzero(hit):
            s = text[i]
            if len(s) < first + 2:
                continue
            pos = first + int(draws[i, 1] * (len(s) - first - 1))
            if draws[i, 0] < 0.5 and s[pos] != s[pos + 1]:
                new = s[:pos] + s[pos + 1] + s[pos] + s[pos + 2:]
            else:
                others = [c for c in alphabet if c != s[pos]]
                new = s[:pos] + others[int(draws[i, 2] * len(others))] + s[pos + 1:]
            out[i] = new
            changed[i] = True
        return pd.Series(out, index=values.index, dtype=values.dtype if values.dtype != object else object), changed


def planted_label(**flags: np.ndarray) -> np.ndarray:
    """Per record, the planted disagreements as text ("sex", "nhs_number;upn", ...), None where none."""
    names = [name for name in FIELDS if name in flags]
    n = len(flags[names[0]]) if names else 0
    out = np.full(n, "", dtype=object)
    for name in names:
        hit = np.asarray(flags[name], dtype=bool)
        out = np.where(hit, np.where(out == "", name, out + ";" + name), out).astype(object)
    out[out == ""] = None
    return out

"""The project config: one YAML file, validated by pydantic.

Every stage takes a `ProjectConfig`. Errors name the YAML key and the bad value, so a
typo in `conf/borough.yaml` reads as "label.horizon_months: Input should be greater
than 0 (got -6)" rather than a traceback.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from earlysignal.dates import ConfigDate
from earlysignal.errors import ConfigError
from earlysignal.windows import add_calendar_months, window_length

DEFAULT_CONFIG_PATH = Path("conf/borough.yaml")

Aggregate = Literal[
    "count",
    "sum",
    "mean",
    "max",
    "distinct_types",
    "days_since_last",
    "days_since_first",
    "trend",
    "last",
    "min",
    "first",
]
Scope = Literal["resident", "household", "address"]
# A built-in (age, months_at_address, household_size, household_children) or an attribute the data
# dictionary declares for residents or residency (checked when features are defined).
StaticFeature = str
# Any categorical or boolean attribute the data dictionary declares for residents, or the derived age_band.
ProtectedAttribute = str
AGE_BAND = "age_band"

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def window_days(window: str) -> int | None:
    """Length in days of a fixed-day window such as '30d'; None for 'all'. Month and year windows
    ('3m', '3y') are calendar windows with no fixed length in days: see `earlysignal.windows`.
    Raises ValueError for a malformed window or a calendar one."""
    length = window_length(window)
    if length is None:
        return None
    if length.unit != "d":
        raise ValueError(f"window {window!r} is in calendar months, not a fixed number of days")
    return length.amount


class ProjectSection(_Section):
    name: str = "early-signal"
    seed: int = 42


class DataSection(_Section):
    dir: Path = Path("data/synthetic/demo")


class RecordingBias(_Section):
    """Over-recording of one group's incidents by one or more services (synthetic worlds only)."""

    attribute: str
    group: str
    factor: float = Field(gt=0)
    sources: tuple[str, ...] = ()  # empty: the synthetic world's default sources (synth/bias.py)


class RecordingChange(_Section):
    """From `start` on, a source records only `factor` of what it did before (synthetic worlds only)."""

    source: str
    factor: float = Field(ge=0, le=1)
    start: dt.date


class Disclosure(_Section):
    """Abuse hidden from services (synthetic worlds only; docs/adr/0019-abuse-hidden-from-services.md).

    Each household draws once whether it ever discloses domestic abuse. In households that do not, the
    part of each listed source's event rate that abuse adds is kept at `kept` (0: those services learn
    nothing of the abuse; 1: no thinning). `share: 1` reproduces the world before this setting existed.
    """

    # ONS Crime Survey for England and Wales: fewer than one in five partner-abuse victims reported the
    # abuse (18.9% in the year ending March 2023); docs/synthetic-borough.md cites the figures.
    share: float = Field(default=0.2, ge=0, le=1)
    kept: float = Field(default=0.1, ge=0, le=1)
    sources: tuple[str, ...] = ()  # empty: the synthetic world's default sources (synth/disclosure.py)


class SynthSection(_Section):
    residents: int = Field(default=50_000, gt=0)
    years: int = Field(default=10, gt=0, le=30)
    seed: int = 42
    world: Literal["standard", "null"] = "standard"
    end_date: ConfigDate = dt.date(2026, 1, 1)
    recording_bias: tuple[RecordingBias, ...] = ()
    recording_change: tuple[RecordingChange, ...] = ()
    disclosure: Disclosure = Disclosure()
    # {tenure: share} and {ethnic group: share}; empty: the built-in inner-London mix (synth/people.py).
    tenure_mix: dict[str, float] = Field(default_factory=dict)
    ethnicity_mix: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _mix(self) -> SynthSection:
        from earlysignal.synth.people import make_mix  # synth imports config; import here, not at the top

        make_mix(self.tenure_mix, self.ethnicity_mix)
        return self


class ContractSection(_Section):
    # Outcome types accepted from outcomes; empty: every outcome type the data dictionary declares.
    outcome_types: tuple[str, ...] = ()
    # Validation stops (non-zero exit) when any table quarantines a larger share of its rows than this.
    max_quarantine_share: float = Field(default=0.01, ge=0, le=1)


class TemporalSection(_Section):
    first_as_of: ConfigDate
    last_as_of: ConfigDate
    frequency_months: int = Field(default=3, gt=0, le=24)
    # as_of dates less than this many days after the data start (manifest.json data_start) are
    # refused: too little history for any feature to mean what it says.
    min_history_days: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> TemporalSection:
        if self.last_as_of < self.first_as_of:
            raise ValueError(
                f"last_as_of ({self.last_as_of}) is before first_as_of ({self.first_as_of})"
            )
        return self


class EventKind(_Section):
    """One (source, event_type) of the data dictionary; no event_type: any event of the source."""

    source: str = Field(min_length=1)
    event_type: str | None = None


class RecentEventRule(_Section):
    """Cohort rule: at least one listed event happened, and was known, in the `within_days` days
    before as_of (e.g. screened, referred, released, discharged)."""

    events: tuple[EventKind, ...] = Field(min_length=1)
    within_days: int = Field(gt=0)


class PriorOutcomeRule(_Section):
    """Cohort rule: nobody with a listed outcome that started, and was known, before as_of, ever
    (within_days null) or within the last `within_days` days."""

    outcome_types: tuple[str, ...] = Field(min_length=1)
    within_days: int | None = Field(default=None, gt=0)


class CohortSection(_Section):
    """Who is eligible at each as_of; every rule given must hold (rules compose with AND).
    Outcome types and event kinds come from the project YAML, never from defaults."""

    min_age: int | None = Field(default=None, ge=0)  # null: no lower age bound
    max_age: int | None = Field(default=None, ge=0)  # null: no upper age bound
    require_residency: bool = True
    exclude_open_outcomes: tuple[str, ...] = ()
    require_recent_events: tuple[RecentEventRule, ...] = ()
    exclude_prior_outcomes: tuple[PriorOutcomeRule, ...] = ()
    # A date column of residents (declared in the data dictionary), e.g. a study entry or registration
    # date: a person is in the cohort only at as_of dates on or after it (and, when the dictionary names
    # the column's `known_from`, only once that date was recorded before as_of). Null: no entry rule.
    entry_column: str | None = None

    @property
    def uses_age(self) -> bool:
        """True when an age bound is set (the cohort then needs birth_date)."""
        return self.min_age is not None or self.max_age is not None

    def describe(self, entry_label: str | None = None) -> str:
        """The cohort in words, e.g. 'residents aged 0-17 living in the area at each as-of date';
        `entry_label`: the entry column in words (the data dictionary's label), else its name."""
        parts = ["residents"]
        if self.min_age is not None and self.max_age is not None:
            parts.append(f"aged {self.min_age}-{self.max_age}")
        elif self.min_age is not None:
            parts.append(f"aged {self.min_age} or over")
        elif self.max_age is not None:
            parts.append(f"aged {self.max_age} or under")
        if self.require_residency:
            parts.append("living in the area")
        if self.entry_column:
            parts.append(f"whose {entry_label or self.entry_column} had passed")
        for rule in self.require_recent_events:
            kinds = ", ".join(f"{k.source}/{k.event_type or '*'}" for k in rule.events)
            parts.append(f"with {kinds} in the {rule.within_days} days before")
        return " ".join(parts) + " at each as-of date"


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def horizon_end(as_of: dt.date, *, days: float | None = None, weeks: float | None = None,
                months: float | None = None) -> dt.date:
    """The first day after a label window that starts on `as_of` (the window is [as_of, end)).

    The calendar rule: days and weeks (7 days) are rounded to the nearest whole day, halves up.
    Months: the whole months are calendar months (the day clamped to the month's end, so 31 Aug +
    6 months = 28/29 Feb); a fraction f of a month is f times the length in days of the calendar
    month that follows, rounded to the nearest day, halves up (1 Jan + 0.25 months = 1 Jan + 8 days,
    as 0.25 x 31 = 7.75; 1 Feb 2025 + 0.25 months = 8 Feb). Decimal inputs are used exactly
    (0.1 is 1/10, not its binary float). A window is at least one day. Raises ValueError if no
    unit or more than one is given.
    """
    given = [v for v in (days, weeks, months) if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of days, weeks, months")
    if months is not None:
        exact = Fraction(str(months))
        whole = math.floor(exact)
        base = add_calendar_months(as_of, whole)
        span = (add_calendar_months(as_of, whole + 1) - base).days
        end = base + dt.timedelta(days=_round_half_up((exact - whole) * span))
    else:
        length = Fraction(str(days)) if days is not None else Fraction(str(weeks)) * 7
        end = as_of + dt.timedelta(days=_round_half_up(length))
    return max(end, as_of + dt.timedelta(days=1))


class Horizon(_Section):
    """A label horizon in one unit: {months: 6}, {weeks: 13} or {days: 91}; floats allowed."""

    days: int | float | None = Field(default=None, gt=0)
    weeks: int | float | None = Field(default=None, gt=0)
    months: int | float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_unit(self) -> Horizon:
        given = [n for n in ("days", "weeks", "months") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of days, weeks, months (got {given or 'none'})")
        return self


class LabelCensoring(_Section):
    """What ends a person's follow-up. A row whose follow-up ends inside its label window without
    the outcome gets a null label (censored), never 0. The extract date always ends follow-up."""

    residency: bool = True  # leaving the area: the end of the residency run covering as_of
    death: bool = True  # residents.death_date
    end_column: str | None = None  # a date column of residents, e.g. an end-of-follow-up date


class LabelSection(_Section):
    """The outcome to predict. Outcome types come from the project YAML (no defaults). The horizon
    is given once: `horizon: {months: 6}` or one of horizon_days / horizon_weeks / horizon_months."""

    name: str = Field(default="label", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # No default outcome: building labels with none named is an error (features/labels.py).
    outcome_types: tuple[str, ...] = ()
    horizon: Horizon | None = None
    # int | float: a whole number stays an int (6 months reads as "6 months", not "6.0").
    horizon_days: int | float | None = Field(default=None, gt=0)
    horizon_weeks: int | float | None = Field(default=None, gt=0)
    horizon_months: int | float | None = Field(default=None, gt=0)
    censoring: LabelCensoring = LabelCensoring()

    @model_validator(mode="before")
    @classmethod
    def _default_horizon(cls, raw: Any) -> Any:
        # No horizon given at all: 6 calendar months (the documented default).
        keys = ("horizon", "horizon_days", "horizon_weeks", "horizon_months")
        if isinstance(raw, dict) and all(raw.get(key) is None for key in keys):
            return {**raw, "horizon_months": 6}
        return raw

    @model_validator(mode="after")
    def _one_horizon(self) -> LabelSection:
        given = [
            key for key in ("horizon", "horizon_days", "horizon_weeks", "horizon_months")
            if getattr(self, key) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give the label horizon at most once: horizon: {months: 6}, or one of horizon_days, "
                f"horizon_weeks, horizon_months (got {given})"
            )
        return self

    @property
    def horizon_unit(self) -> tuple[str, int | float]:
        """('days' | 'weeks' | 'months', amount)."""
        if self.horizon is not None:
            for unit in ("days", "weeks", "months"):
                value = getattr(self.horizon, unit)
                if value is not None:
                    return unit, value
        for unit in ("days", "weeks", "months"):
            value = getattr(self, f"horizon_{unit}")
            if value is not None:
                return unit, value
        raise AssertionError("validated: one horizon is set")  # pragma: no cover

    @property
    def horizon_text(self) -> str:
        """The horizon in words, e.g. '6 months', '0.25 months', '91 days'."""
        unit, amount = self.horizon_unit
        number = f"{amount:g}"
        return f"{number} {unit[:-1] if amount == 1 else unit}"

    def window_end(self, as_of: dt.date) -> dt.date:
        """First day after the label window [as_of, end) (see `horizon_end` for the calendar rule)."""
        unit, amount = self.horizon_unit
        return horizon_end(as_of, **{unit: amount})


class MissingRule(_Section):
    """What a feature holds when there is nothing to aggregate (e.g. days since last with no event)."""

    rule: Literal["zero", "null", "constant"] = "zero"
    value: float | None = None

    @model_validator(mode="after")
    def _constant_has_value(self) -> MissingRule:
        if self.rule == "constant" and self.value is None:
            raise ValueError("rule 'constant' needs a value")
        return self


class FeatureFamily(_Section):
    """One source's events, aggregated over windows at one or more scopes."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    source: str
    event_types: tuple[str, ...] = ()  # empty: every event type of the source
    per_event_type: bool = True  # one feature set per event type, plus none for the whole family
    scopes: tuple[Scope, ...] = ("resident",)
    windows: tuple[str, ...] = ("3m", "12m", "3y")  # calendar months/years (earlysignal.windows)
    aggregates: tuple[Aggregate, ...] = ("count",)
    missing: dict[str, MissingRule] = Field(default_factory=dict)
    description: str = ""  # plural noun phrase, e.g. "door replacements"

    @field_validator("windows")
    @classmethod
    def _windows_parse(cls, windows: tuple[str, ...]) -> tuple[str, ...]:
        for window in windows:
            window_length(window)
        return windows

    @field_validator("missing")
    @classmethod
    def _missing_names_aggregates(cls, missing: dict[str, MissingRule]) -> dict[str, MissingRule]:
        allowed = set(Aggregate.__args__)  # type: ignore[attr-defined]
        for key in missing:
            if key not in allowed:
                raise ValueError(f"missing rule for unknown aggregate {key!r}; use one of {sorted(allowed)}")
        return missing


class FeaturesSection(_Section):
    static: tuple[StaticFeature, ...] = (
        "age",
        "months_at_address",
        "household_size",
        "household_children",
    )
    # Protected characteristics travel alongside for the audit; they become model inputs
    # only when listed here, deliberately.
    protected_as_features: tuple[ProtectedAttribute, ...] = ()
    families: tuple[FeatureFamily, ...] = ()

    @model_validator(mode="after")
    def _unique_family_names(self) -> FeaturesSection:
        names = [f.name for f in self.families]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature family names must be unique; repeated: {duplicates}")
        return self


class ModelSection(_Section):
    """LightGBM settings. The defaults are deliberately conservative: escalations are rare (a few
    hundred positives in a borough's training window), and small, regularised trees beat large
    ones on held-out average precision (docs/modeling.md)."""

    name: str = "earlysignal-cpp"
    n_estimators: int = Field(default=1000, gt=0)
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=7, gt=1)
    min_child_samples: int = Field(default=300, gt=0)
    feature_fraction: float = Field(default=0.5, gt=0, le=1)
    bagging_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_freq: int = Field(default=1, ge=0)
    lambda_l2: float = Field(default=10.0, ge=0)
    early_stopping_rounds: int = Field(default=50, gt=0)
    calibration: Literal["isotonic", "platt"] = "isotonic"


class TrainingSection(_Section):
    history_years: float = Field(default=4, gt=0)
    n_test_splits: int = Field(default=4, ge=0)  # 0: train only the final model (NOT EVALUATED)
    validation_as_of_count: int = Field(default=1, gt=0)
    calibration_as_of_count: int = Field(default=1, gt=0)
    bootstrap: int = Field(default=200, ge=0)
    # Feature the one-feature baseline ranks by; empty: the first household count over the whole record.
    one_feature_baseline: str | None = None
    # LightGBM threads, fixed so results do not depend on the machine. One by default: on a shared
    # 2-core machine OpenMP threads spin-wait and two ran ~3x slower than one (docs/performance.md).
    num_threads: int = Field(default=1, gt=0)
    # Share of negative rows of each fit slice the booster learns from (every positive is kept;
    # kept negatives weigh 1 / share). 1.0: no sampling. Validation, calibration and test use all rows.
    negative_sample_fraction: float = Field(default=1.0, gt=0, le=1)
    # Worker processes for the independent fits (test splits, final model), each with num_threads
    # LightGBM threads and one BLAS thread: every fit is seeded, so results do not depend on it.
    n_jobs: int = Field(default=2, gt=0)
    # Inverse L2 strength of the logistic baseline (on standardised features). Strong by default: a few
    # hundred correlated features and a few dozen positives overfit at C=1 and ranked below chance.
    logistic_c: float = Field(default=0.01, gt=0)


class CapacitySection(_Section):
    """How many cases the team can look at per as_of: an absolute k, a top share, or both (smaller wins)."""

    k: int | None = Field(default=100, gt=0)
    top_percent: float | None = Field(default=None, gt=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _share_alone_means_share(cls, data: Any) -> Any:
        # `top_percent: 10` alone means 10% of the cohort; the default k of 100 would otherwise cap it silently
        # (on 6,000 rows the team would review 100, not 600). Both given explicitly: the smaller wins.
        if isinstance(data, dict) and data.get("top_percent") is not None and "k" not in data:
            return {**data, "k": None}
        return data

    @model_validator(mode="after")
    def _something_set(self) -> CapacitySection:
        if self.k is None and self.top_percent is None:
            raise ValueError("set capacity.k, capacity.top_percent or both")
        return self


class SuccessCriterion(_Section):
    metric: Literal[
        "precision_at_capacity", "recall_at_capacity", "roc_auc", "average_precision", "lift_at_capacity"
    ] = "precision_at_capacity"
    threshold: float = Field(default=0.65, ge=0)

    @model_validator(mode="after")
    def _threshold_in_range(self) -> SuccessCriterion:
        # Lift is a multiple of the base rate (e.g. 10); every other metric is a share between 0 and 1.
        if self.metric != "lift_at_capacity" and self.threshold > 1:
            raise ValueError(
                f"threshold {self.threshold} is above 1, but {self.metric} is a share between 0 and 1; "
                "only lift_at_capacity (a multiple of the base rate) takes thresholds above 1"
            )
        return self


class AuditSection(_Section):
    # Empty: every category/boolean attribute the data dictionary declares for residents, plus age_band
    # when it declares birth_date (filled in by ProjectConfig).
    protected: tuple[ProtectedAttribute, ...] = ()
    intersections: tuple[tuple[ProtectedAttribute, ...], ...] = ()
    reference_groups: dict[str, str] = Field(default_factory=dict)  # default: largest group
    min_cell: int = Field(default=10, gt=0)
    round_to: int = Field(default=5, gt=0)
    ratio_band: tuple[float, float] = (0.8, 1.25)
    bootstrap: int = Field(default=200, ge=0)


class ScoringSection(_Section):
    drift_warn_psi: float = Field(default=0.25, gt=0)
    # A feature's missing share (0-1) moving by more than this between training and scoring is reported
    # apart from its PSI (which compares known values only), e.g. a 3-year window that had too little history.
    drift_warn_null_share: float = Field(default=0.1, gt=0, le=1)


class GovernanceSection(_Section):
    """Algorithmic Transparency Recording Standard fields; empty ones show as NOT PROVIDED."""

    owner: str = ""
    purpose: str = ""
    decision_point: str = ""
    human_oversight: str = ""
    lawful_basis: str = ""
    dpia_reference: str = ""
    equality_impact_assessment: str = ""
    data_sharing_agreements: str = ""
    challenge_contact: str = ""
    monitoring: str = ""
    retraining_cadence: str = ""
    switch_off_criteria: str = ""


class ScoreBand(_Section):
    label: str
    min_percentile: float = Field(ge=0, le=100)


class CaseworkerSection(_Section):
    """The case list, journeys and explanations (docs/caseworker.md)."""

    access_log: str = "reports/access/access-log.jsonl"
    case_list_rows: int = Field(default=500, gt=0)
    flagged_band: str = "flagged for review"
    bands: tuple[ScoreBand, ...] = (
        ScoreBand(label="top 10%", min_percentile=90),
        ScoreBand(label="top 25%", min_percentile=75),
        ScoreBand(label="lower 75%", min_percentile=0),
    )

    @field_validator("bands")
    @classmethod
    def _bands_cover_everyone(cls, bands: tuple[ScoreBand, ...]) -> tuple[ScoreBand, ...]:
        if not bands or min(b.min_percentile for b in bands) > 0:
            raise ValueError("needs a band with min_percentile 0, so every resident falls in one")
        return bands


class MlflowSection(_Section):
    experiment: str = "early-signal"


class ApproverEntry(_Section):
    """One person allowed to approve: name, role and Ed25519 public key (OpenSSH line or a path to it)."""

    name: str = Field(min_length=1)
    role: str = ""
    public_key: str = Field(min_length=1)


class ApprovalSection(_Section):
    """The approval ledger's folder and who may sign approvals (docs/audit.md)."""

    store: Path = Path("reports/approval")
    approvers: tuple[ApproverEntry, ...] = ()
    # Trust the key pair `earlysignal demo` makes in <store>/demo/ (synthetic data only; false for a real borough).
    trust_demo_key: bool = False


class ReleaseSection(_Section):
    """Release bundles and pooling across boroughs (docs/federation.md): this borough's name as it
    appears in a pooled report, and the output checkers whose Ed25519 sign-off a bundle needs."""

    borough: str = ""
    checkers: tuple[ApproverEntry, ...] = ()
    # Bundle folders (or release.json files) this borough has released before: a new release withholds what
    # they withheld at the same test dates, and is checked against them read together (docs/federation.md).
    # Its own bundles are read from the register whatever this lists; this adds bundles written elsewhere.
    earlier: tuple[str, ...] = ()
    # The release register: every bundle `release` wrote (or `release-sign` signed) here, with a copy of its
    # release.json; each new release is checked against this borough's (ADR 0024, "A borough's own bundles").
    # $EARLYSIGNAL_RELEASE_REGISTER overrides it.
    register_dir: Path = Path("reports/release-register")


class LinkageComparison(_Section):
    """One Splink comparison over columns of the standard person schema (docs/ingest-and-link.md).

    kinds: forename_surname (forename + surname, with swaps), name, date_of_birth, postcode, exact.
    """

    kind: Literal["forename_surname", "name", "date_of_birth", "postcode", "exact"]
    column: str | None = None
    forename: str | None = None
    surname: str | None = None
    term_frequency: bool = False

    @model_validator(mode="after")
    def _columns_named(self) -> LinkageComparison:
        if self.kind == "forename_surname":
            if not (self.forename and self.surname):
                raise ValueError("a forename_surname comparison needs forename and surname")
        elif not self.column:
            raise ValueError(f"a {self.kind} comparison needs column")
        return self


class LinkageSection(_Section):
    """How `earlysignal link` joins person records into residents (Splink on DuckDB)."""

    # Pairs at or above this match probability are the same person (connected components).
    threshold: float = Field(default=0.8, gt=0, lt=1)
    # A rule is a list of columns that must be equal, or a Splink SQL condition over l. and r. columns.
    blocking_rules: tuple[tuple[str, ...] | str, ...] = (
        ("source_person_key",),
        ("nhs_number",),
        ("upn",),
        # No rule on a name alone: at 250k residents a common name is shared by hundreds of records
        # (103M pairs); every rule below keeps its blocks small whatever the borough's size.
        ("first_name", "last_name", "postcode"),
        ("first_name", "last_name", "uprn"),
        ("birth_date", "postcode"),
        ("birth_date", "last_name"),
        ("birth_date", "first_name"),
        ("last_name", "first_name_initial", "birth_year"),
        'l."first_name" = r."last_name" AND l."last_name" = r."first_name" AND l."birth_year" = r."birth_year"',
    )
    comparisons: tuple[LinkageComparison, ...] = (
        LinkageComparison(kind="forename_surname", forename="first_name", surname="last_name", term_frequency=True),
        LinkageComparison(kind="date_of_birth", column="birth_date"),
        LinkageComparison(kind="postcode", column="postcode"),
        LinkageComparison(kind="exact", column="uprn"),
        LinkageComparison(kind="exact", column="source_person_key"),
        LinkageComparison(kind="exact", column="nhs_number"),
        LinkageComparison(kind="exact", column="upn"),
        LinkageComparison(kind="exact", column="sex"),
    )
    # Rules trusted to admit almost no false matches: they estimate the prior match probability.
    deterministic_rules: tuple[tuple[str, ...] | str, ...] = (
        ("first_name", "last_name", "birth_date"),
        ("nhs_number",),
        ("upn",),
    )
    deterministic_recall: float = Field(default=0.7, gt=0, le=1)
    # EM runs once per rule; each rule must leave the comparisons it does not use free to vary.
    # (birth_date alone gives 35M pairs at 250k; with the first initial, 1.2M.) Postcode + surname alone
    # holds whole households, whose members skew the m probabilities: + first initial (docs/config.md).
    em_blocking_rules: tuple[tuple[str, ...] | str, ...] = (
        ("birth_date", "first_name_initial"), ("postcode", "last_name", "first_name_initial"))
    # However rarely EM saw them disagree, a disagreement on one of `disagreement_penalty_columns` counts
    # at most this many bits (match weight) against a match: real systems record sex differently and
    # mistype identifiers (docs/adr/0022-disagreement-penalty-floor.md). null: EM's weights as trained.
    max_disagreement_penalty: float | None = Field(default=10.0, gt=0)
    disagreement_penalty_columns: tuple[str, ...] = ("sex", "nhs_number", "upn")
    u_max_pairs: float = Field(default=2e6, gt=0)
    # A previous link run's link_model.json: predict with its parameters instead of training (the same
    # pair then gets the same weight whatever else the extract holds). null: train on this extract.
    trained_model: Path | None = None
    # DuckDB's memory cap while Splink runs (it spills to a private temporary folder beyond it).
    duckdb_memory_limit: str = Field(default="4GB", pattern=r"^\d+(\.\d+)?\s*(MB|GB|MiB|GiB)$")
    # DuckDB's cap for link's per-record work (grouping repeats, mapping events, person links), which runs
    # while pandas holds the kept records: a smaller cap spills sooner and keeps the process's peak down.
    records_memory_limit: str = Field(default="2GB", pattern=r"^\d+(\.\d+)?\s*(MB|GB|MiB|GiB)$")
    # The secret that keys resident, household and address IDs (HMAC-SHA256): an env var, else a file.
    secret_env: str = "EARLYSIGNAL_LINK_SECRET"
    secret_file: Path | None = None
    # Raw codes of each source system -> contract values.
    sex_codes: dict[str, Literal["F", "M"]] = Field(default_factory=dict)
    ethnicity_column: str = "attr_ethnicity"
    ethnicity_codes: dict[str, str] = Field(default_factory=dict)
    disability_column: str = "attr_disability"
    disability_codes: dict[str, bool] = Field(default_factory=dict)
    # Gazetteer tenure -> contract tenure; addresses with none get default_tenure.
    tenure_codes: dict[str, str] = Field(default_factory=dict)
    default_tenure: str | None = None  # required by `link`: the data dictionary names the values
    # Sources whose person events are also recorded against the person record's address.
    address_events_sources: tuple[str, ...] = ()
    # Residency (docs/ingest-and-link.md): a spell whose evidence stops for longer than this many days
    # ends that many days after its last record (people leave the borough without telling every
    # service); null keeps a spell open until another address is seen.
    residency_lapse_days: int | None = Field(default=None, gt=0)
    # Sources whose records without a seen_until are current (an open liability): evidence of living
    # at the address up to the extract date.
    ongoing_record_sources: tuple[str, ...] = ()
    # Synthetic worlds: the true person behind each record (source, record_id, person_id); a relative
    # path is looked for in the ingested folder, then data.dir, then beside the ingested folder
    # (linkage/truth.py). Real data: clerically reviewed pairs
    # (source_l, record_id_l, source_r, record_id_r, is_match).
    ground_truth: Path | None = Path("ground_truth/raw_records.parquet")
    clerical_review: Path | None = None


class SwitchOffCriterion(_Section):
    """One switch-off criterion the board declared; `monitor` shows it green, amber or red.

    - precision_below_promise / recall_below_promise: a list's realised value below the lower bound of
      the audit's interval; red after `consecutive` such lists in a row (the latest included), amber after one.
    - source_volume_drop: a source's monthly volume in the recent months fell by more than `amber` / `red`
      (fractions, e.g. 0.5 = 50%) against the reference period; a month with no records at all is red.
    - source_psi: a source's largest windowed-feature PSI in the latest list above `amber` / `red` (window "all" not judged).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["precision_below_promise", "recall_below_promise", "source_volume_drop", "source_psi"]
    consecutive: int = Field(default=2, gt=0)
    amber: float | None = Field(default=None, ge=0)
    red: float | None = Field(default=None, ge=0)
    text: str = ""  # the board's own wording, shown beside the status

    @model_validator(mode="after")
    def _thresholds(self) -> SwitchOffCriterion:
        if self.kind in ("source_volume_drop", "source_psi"):
            if self.red is None:
                raise ValueError(f"criterion {self.name!r} ({self.kind}) needs a 'red' threshold")
            if self.amber is not None and self.amber > self.red:
                raise ValueError(f"criterion {self.name!r}: amber ({self.amber}) is above red ({self.red})")
        return self


class ServiceResponse(_Section):
    """The event that shows a flagged resident received a service response (e.g. an early help contact)."""

    source: str
    event_types: tuple[str, ...] = ()  # empty: any event of the source
    within_days: int = Field(default=90, gt=0)


def _default_switch_off() -> tuple[SwitchOffCriterion, ...]:
    return (
        SwitchOffCriterion(name="precision_below_promise", kind="precision_below_promise", consecutive=2),
        SwitchOffCriterion(name="source_volume_drop", kind="source_volume_drop", amber=0.25, red=0.5),
        SwitchOffCriterion(name="source_psi", kind="source_psi", amber=0.1, red=0.25),
    )


class MonitoringSection(_Section):
    """`earlysignal monitor`: how past lists are judged and what would switch the model off."""

    scores_dir: Path = Path("reports/scores")
    audit: Path | None = None  # audit.json holding the promise; default: reports/audit/<model>-v<version>/
    bootstrap: int = Field(default=200, ge=0)
    recent_months: int = Field(default=3, gt=0)  # complete months before the extract date compared
    volume_alpha: float = Field(default=0.01, gt=0, lt=1)  # a volume drop chance explains (p >= alpha) stays green
    reference_start: dt.date | None = None  # default: temporal.first_as_of
    reference_end: dt.date | None = None  # default: the earliest list's as_of, else the recent months' start
    response: ServiceResponse | None = None
    switch_off: tuple[SwitchOffCriterion, ...] = Field(default_factory=_default_switch_off)


class ProxyGroup(_Section):
    """Features that stand in for a protected characteristic, left out together by `necessity`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    features: tuple[str, ...] = Field(min_length=1)  # feature names or shell patterns, e.g. static__age*
    why: str = ""  # which characteristic they stand in for, shown in the report


class NegligibleLoss(_Section):
    """Losses small enough to call "costs nothing" when the whole 95% interval stays under them."""

    precision_at_capacity: float = Field(default=0.005, ge=0)
    roc_auc: float = Field(default=0.01, ge=0)


class NecessitySection(_Section):
    """`earlysignal necessity`: retrain without each source and each proxy group (UK GDPR data minimisation)."""

    bootstrap: int = Field(default=200, ge=0)  # paired resamples of each test date's residents
    fairness_bootstrap: int = Field(default=50, ge=0)  # resamples for the fairness findings of each variant
    # A source not shown to be necessary "costs nothing" only when its loss interval lies under these.
    negligible: NegligibleLoss = NegligibleLoss()
    proxy_groups: tuple[ProxyGroup, ...] = ()


class EvaluationSection(_Section):
    """The local evaluation store for resident-level evaluation data (never MLflow); see docs/modeling.md."""

    # Folder of the store; empty: `evaluation/` beside the local MLflow store.
    dir: str | None = None
    # Days a training run's resident-level evaluation data is kept; `earlysignal evaluation-purge` deletes it after.
    retention_days: int = Field(default=365, gt=0)


class IngestSection(_Section):
    """Where `earlysignal ingest` finds one mapping YAML per source (globs, relative to the working folder)."""

    mappings: list[str] = Field(default_factory=lambda: ["conf/sources/*.yaml"])


# The least build.memory_budget_gb accepted: `earlysignal features` holds 0.20 GB (libraries, DuckDB, Arrow)
# before it reads a row, and no partitioned build measured peaked under 0.57 GB (20,000 residents: 0.58 GB with
# budgets of 0.5 down to 0.05, 6 to 56 partitions; 120,000: 0.67 GB), so a budget under this one cannot be met
# by any partition count and only multiplies partitions (docs/performance.md, "A budget below the floor").
MIN_MEMORY_BUDGET_GB = 0.25


class BuildSection(_Section):
    """How the feature matrix is built: which engine runs the SQL and how the population is partitioned
    (docs/config.md). None of it changes a feature value, so none of it is in the spec hash."""

    engine: Literal["duckdb", "spark"] = "duckdb"
    # Partitions are chosen so each one's estimated build fits this many GB (features/partition.py);
    # None: the whole population in one partition (one Parquet file).
    memory_budget_gb: float | None = Field(default=None, gt=0)
    partitions: int | None = Field(default=None, gt=0)  # a fixed count overrides the budget
    # With engine spark: each partition's whole build (its SQL on an in-process DuckDB, then the NumPy
    # step) runs in a Spark task through applyInPandas, instead of the SQL on Spark and the NumPy step
    # on the driver (features/spark_partitions.py). Needs memory_budget_gb or partitions.
    spark_tasks: bool = False

    @field_validator("memory_budget_gb")
    @classmethod
    def _budget_at_least_the_floor(cls, value: float | None) -> float | None:
        if value is not None and value < MIN_MEMORY_BUDGET_GB:
            raise ValueError(
                f"{value} GB is below what any build needs: the process holds about 0.2 GB before it reads a row "
                f"and partitioned builds peaked at 0.58 GB or more (docs/config.md); give at least "
                f"{MIN_MEMORY_BUDGET_GB}, or build.partitions for a fixed count"
            )
        return value

    @property
    def bounded(self) -> bool:
        """Whether memory is to be bounded (memory_budget_gb or partitions set): stages after the build then
        read the matrix or the data per partition instead of whole (docs/config.md, build)."""
        return self.memory_budget_gb is not None or self.partitions is not None


class ProjectConfig(_Section):
    # The data dictionary file (docs/data-contract.md); relative paths are resolved against the config
    # file's folder by load_config. None: the packaged synthetic-borough dictionary.
    dictionary: str | None = None
    project: ProjectSection = ProjectSection()
    data: DataSection = DataSection()
    synth: SynthSection = SynthSection()
    contract: ContractSection = ContractSection()
    temporal: TemporalSection
    cohort: CohortSection = CohortSection()
    label: LabelSection = LabelSection()
    features: FeaturesSection = FeaturesSection()
    model: ModelSection = ModelSection()
    training: TrainingSection = TrainingSection()
    capacity: CapacitySection = CapacitySection()
    success_criterion: SuccessCriterion = SuccessCriterion()
    audit: AuditSection = AuditSection()
    scoring: ScoringSection = ScoringSection()
    governance: GovernanceSection = GovernanceSection()
    mlflow: MlflowSection = MlflowSection()
    linkage: LinkageSection = LinkageSection()
    evaluation: EvaluationSection = EvaluationSection()
    caseworker: CaseworkerSection = CaseworkerSection()
    approval: ApprovalSection = ApprovalSection()
    monitoring: MonitoringSection = MonitoringSection()
    necessity: NecessitySection = NecessitySection()
    ingest: IngestSection = IngestSection()
    build: BuildSection = BuildSection()
    release: ReleaseSection = ReleaseSection()

    @field_validator("dictionary")
    @classmethod
    def _dictionary_found(cls, path: str | None) -> str | None:
        """A relative path not resolved by load_config (a config built in code): try the working directory,
        then the folder of the default config, then the packaged conf/ folder."""
        if path is None or Path(path).is_absolute():
            return path
        for base in (Path.cwd(), DEFAULT_CONFIG_PATH.parent, packaged_config_path().parent):
            if (base / path).is_file():
                return str((base / path).resolve())
        return path

    @model_validator(mode="before")
    @classmethod
    def _default_protected(cls, raw: Any) -> Any:
        """audit.protected defaults to the dictionary's groupable attributes (names live in YAML, not here)."""
        if not isinstance(raw, dict):
            return raw
        audit = raw.get("audit")
        if isinstance(audit, AuditSection) or (isinstance(audit, dict) and audit.get("protected")):
            return raw
        from earlysignal.dictionary import load_dictionary, packaged_dictionary_path

        dictionary = load_dictionary(ProjectConfig._dictionary_found(raw.get("dictionary")) or packaged_dictionary_path())
        protected = list(dictionary.categorical_attributes())
        if "birth_date" in dictionary.residents:
            protected.append(AGE_BAND)
        return {**raw, "audit": {**(audit if isinstance(audit, dict) else {}), "protected": protected}}

    @model_validator(mode="after")
    def _cross_checks(self) -> ProjectConfig:
        from earlysignal.dictionary import AttributeSpec, dictionary_for

        dictionary = dictionary_for(self)
        declared = set(dictionary.outcomes)
        unknown_contract = sorted(set(self.contract.outcome_types) - declared)
        if unknown_contract:
            raise ValueError(
                f"contract.outcome_types names outcome types not declared in the data dictionary: {unknown_contract}"
            )
        known = set(self.contract.outcome_types) or declared
        groupable: dict[str, AttributeSpec] = dictionary.categorical_attributes()
        for key, attributes in (
            ("audit.protected", self.audit.protected),
            ("audit.intersections", tuple(a for group in self.audit.intersections for a in group)),
            ("features.protected_as_features", self.features.protected_as_features),
        ):
            unknown = sorted({a for a in attributes if a != AGE_BAND and a not in groupable})
            if unknown:
                raise ValueError(
                    f"{key} names attributes the data dictionary does not declare as category or boolean columns "
                    f"of residents: {unknown}; declared: {sorted(groupable)} (and {AGE_BAND})"
                )
        for key, values in (
            ("label.outcome_types", self.label.outcome_types),
            ("cohort.exclude_open_outcomes", self.cohort.exclude_open_outcomes),
            *(
                (f"cohort.exclude_prior_outcomes.{i}.outcome_types", rule.outcome_types)
                for i, rule in enumerate(self.cohort.exclude_prior_outcomes)
            ),
        ):
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"{key} names outcome types not in the data dictionary's outcomes: {unknown}")
        if (
            self.cohort.max_age is not None
            and self.cohort.min_age is not None
            and self.cohort.max_age < self.cohort.min_age
        ):
            raise ValueError("cohort.max_age is below cohort.min_age")
        return self

    def as_of_dates(self) -> list[dt.date]:
        """The as_of grid: first_as_of, then every frequency_months, up to last_as_of."""
        dates: list[dt.date] = []
        t = self.temporal
        index = 0
        while True:
            months = t.first_as_of.month - 1 + index * t.frequency_months
            current = dt.date(t.first_as_of.year + months // 12, months % 12 + 1, t.first_as_of.day)
            if current > t.last_as_of:
                return dates
            dates.append(current)
            index += 1


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid Early Signal config:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        # A check across sections (empty loc) gets the whole config as input: echoing it buries the message.
        if "input" in item and item["type"] != "missing" and item["loc"]:
            got = repr(item["input"])
            got = got if len(got) <= 200 else got[:200] + " …"
            lines.append(f"  {key}: {message} (got {got})")
        else:
            lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def config_from_dict(raw: dict[str, Any], source: str = "config") -> ProjectConfig:
    """Validate a config dict; raise ConfigError naming each bad key and value."""
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None


def load_config(path: str | os.PathLike[str] | None = None) -> ProjectConfig:
    """Read and validate a YAML config (default conf/borough.yaml, else the packaged copy)."""
    if path is None:
        path = DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else packaged_config_path()
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; pass --config PATH or create conf/borough.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections at the top level")
    if isinstance(raw.get("dictionary"), str) and not Path(raw["dictionary"]).is_absolute():
        # The dictionary travels with its config file, wherever `earlysignal` is run from. A copy of a
        # config without its dictionary folder finds the same relative path the way configs built in
        # code do (working directory, conf/, the packaged conf/).
        beside = path.parent / raw["dictionary"]
        if beside.is_file():
            raw["dictionary"] = str(beside.resolve())
    return config_from_dict(raw, source=str(path))


def packaged_config_path() -> Path:
    """The default borough config shipped inside the package (a copy of conf/borough.yaml)."""
    return Path(__file__).parent / "conf" / "borough.yaml"


def config_to_dict(config: ProjectConfig) -> dict[str, Any]:
    """The config as plain JSON-compatible data (for hashing and MLflow logging)."""
    return config.model_dump(mode="json")

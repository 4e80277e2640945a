"""The project config: one YAML file, validated by pydantic.

Every stage takes a `ProjectConfig`. Errors name the YAML key and the bad value, so a
typo in `conf/borough.yaml` reads as "label.horizon_months: Input should be greater
than 0 (got -6)" rather than a traceback.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from earlysignal.dates import ConfigDate
from earlysignal.errors import ConfigError

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

_WINDOW_RE = re.compile(r"^(?:(\d+)([dmy])|all)$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def window_days(window: str) -> int | None:
    """Length of a window such as '30d', '6m' or '3y' in days; None for 'all'.

    Months are 30 days and years 365 days, so windows are fixed lengths that SQL and
    NumPy agree on exactly.
    """
    match = _WINDOW_RE.match(window)
    if not match:
        raise ValueError(f"window {window!r} is not of the form 30d, 6m, 3y or all")
    if window == "all":
        return None
    number, unit = int(match.group(1)), match.group(2)
    if number <= 0:
        raise ValueError(f"window {window!r} must be longer than zero")
    return number * {"d": 1, "m": 30, "y": 365}[unit]


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


class SynthSection(_Section):
    residents: int = Field(default=50_000, gt=0)
    years: int = Field(default=10, gt=0, le=30)
    seed: int = 42
    world: Literal["standard", "null"] = "standard"
    end_date: ConfigDate = dt.date(2026, 1, 1)
    recording_bias: tuple[RecordingBias, ...] = ()


class ContractSection(_Section):
    # Outcome types accepted from outcomes; empty: every outcome type the data dictionary declares.
    outcome_types: tuple[str, ...] = ()
    # Validation stops (non-zero exit) when any table quarantines a larger share of its rows than this.
    max_quarantine_share: float = Field(default=0.01, ge=0, le=1)


class TemporalSection(_Section):
    first_as_of: ConfigDate
    last_as_of: ConfigDate
    frequency_months: int = Field(default=3, gt=0, le=24)

    @model_validator(mode="after")
    def _ordered(self) -> TemporalSection:
        if self.last_as_of < self.first_as_of:
            raise ValueError(
                f"last_as_of ({self.last_as_of}) is before first_as_of ({self.first_as_of})"
            )
        return self


class CohortSection(_Section):
    min_age: int = Field(default=0, ge=0)
    max_age: int = Field(default=17, ge=0)
    require_residency: bool = True
    exclude_open_outcomes: tuple[str, ...] = ("child_protection_plan",)


class LabelSection(_Section):
    name: str = "cpp_within_6m"
    outcome_types: tuple[str, ...] = ("child_protection_plan",)
    horizon_months: int = Field(default=6, gt=0)


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
    windows: tuple[str, ...] = ("90d", "365d", "3y")
    aggregates: tuple[Aggregate, ...] = ("count",)
    missing: dict[str, MissingRule] = Field(default_factory=dict)
    description: str = ""  # plural noun phrase, e.g. "door replacements"

    @field_validator("windows")
    @classmethod
    def _windows_parse(cls, windows: tuple[str, ...]) -> tuple[str, ...]:
        for window in windows:
            window_days(window)
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
    n_test_splits: int = Field(default=4, gt=0)
    validation_as_of_count: int = Field(default=1, gt=0)
    calibration_as_of_count: int = Field(default=1, gt=0)
    bootstrap: int = Field(default=200, ge=0)
    # Feature the one-feature baseline ranks by; empty: the first household count over the whole record.
    one_feature_baseline: str | None = None
    # LightGBM threads, fixed so results do not depend on the machine. One by default: on a shared
    # 2-core machine OpenMP threads spin-wait and two ran ~3x slower than one (docs/performance.md).
    num_threads: int = Field(default=1, gt=0)


class CapacitySection(_Section):
    """How many cases the team can look at per as_of: an absolute k, a top share, or both (smaller wins)."""

    k: int | None = Field(default=100, gt=0)
    top_percent: float | None = Field(default=None, gt=0, le=100)

    @model_validator(mode="after")
    def _something_set(self) -> CapacitySection:
        if self.k is None and self.top_percent is None:
            raise ValueError("set capacity.k, capacity.top_percent or both")
        return self


class SuccessCriterion(_Section):
    metric: Literal["precision_at_capacity", "recall_at_capacity", "roc_auc", "average_precision"] = (
        "precision_at_capacity"
    )
    threshold: float = Field(default=0.65, ge=0, le=1)


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
        ("first_name", "last_name"),
        ("birth_date", "postcode"),
        ("birth_date", "last_name"),
        ("birth_date", "first_name"),
        ("last_name", "first_name_initial", "birth_year"),
        'l."first_name" = r."last_name" AND l."last_name" = r."first_name"',
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
    em_blocking_rules: tuple[tuple[str, ...] | str, ...] = (("birth_date",), ("postcode", "last_name"))
    u_max_pairs: float = Field(default=2e6, gt=0)
    # DuckDB's memory cap while Splink runs (it spills to a private temporary folder beyond it).
    duckdb_memory_limit: str = Field(default="4GB", pattern=r"^\d+(\.\d+)?\s*(MB|GB|MiB|GiB)$")
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
    # Synthetic worlds: the true person behind each record (source, record_id, person_id); relative
    # paths are read from the ingested folder. Real data: clerically reviewed pairs
    # (source_l, record_id_l, source_r, record_id_r, is_match).
    ground_truth: Path | None = Path("ground_truth/person_records.parquet")
    clerical_review: Path | None = None


class IngestSection(_Section):
    """Where `earlysignal ingest` finds one mapping YAML per source (globs, relative to the working folder)."""

    mappings: list[str] = Field(default_factory=lambda: ["conf/sources/*.yaml"])


class BuildSection(_Section):
    """How the feature matrix is built: which engine runs the SQL and how the population is partitioned
    (docs/config.md). None of it changes a feature value, so none of it is in the spec hash."""

    engine: Literal["duckdb", "spark"] = "duckdb"
    # Partitions are chosen so each one's estimated build fits this many GB (features/partition.py);
    # None: the whole population in one partition (one Parquet file).
    memory_budget_gb: float | None = Field(default=None, gt=0)
    partitions: int | None = Field(default=None, gt=0)  # a fixed count overrides the budget


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
    caseworker: CaseworkerSection = CaseworkerSection()
    approval: ApprovalSection = ApprovalSection()

    ingest: IngestSection = IngestSection()
    build: BuildSection = BuildSection()

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
        ):
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"{key} names outcome types not in the data dictionary's outcomes: {unknown}")
        if self.cohort.max_age < self.cohort.min_age:
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
        if "input" in item and item["type"] != "missing":
            lines.append(f"  {key}: {message} (got {item['input']!r})")
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

"""The data dictionary: what a borough's data holds, declared in YAML, never in code.

A dictionary names the event sources and their event types (with a human label, what `value`
measures, whether it may be negative, and whether the type may ever become a feature), the
outcome types, and the person attributes of `residents` (and `residency`) with their kinds,
allowed codes and reporting groups. The contract validates against it, the feature spec takes
its wording from it, and the audit takes its groups from it. Code knows kinds; YAML knows names.

The project config points at a dictionary file with its top-level `dictionary:` key (relative
to the config file); docs/data-contract.md describes the format with a worked example.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from earlysignal.errors import ConfigError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_./:-]*$"
AttributeKind = Literal["category", "number", "date", "boolean"]
ValueMeaning = Literal["none", "count", "days", "money", "measure"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(_Model):
    """What an event's `value` column means for one event type.

    meaning: none (value unused), count (e.g. sessions), days, money (in `unit`, e.g. GBP) or
    measure (a lab result or reading in `unit`, e.g. mg/dl). `phrase` is the wording of one value
    in reasons, with a `{value}` slot ("{value} school sessions missed"); empty: built from meaning
    and unit. `negative: true` lets values below zero pass validation.
    """

    meaning: ValueMeaning = "none"
    unit: str = ""
    negative: bool = False
    phrase: str = ""
    # The wording of a value below zero, its `{value}` slot taking the size ("£{value} in credit");
    # empty: the phrase with a minus sign ("rent balance -£50").
    negative_phrase: str = ""
    # Digits after the point when a value is shown; None: 2 for money (pence), else up to one.
    decimals: int | None = Field(default=None, ge=0, le=6)

    @field_validator("phrase", "negative_phrase")
    @classmethod
    def _phrase_has_slot(cls, phrase: str) -> str:
        if phrase and "{value}" not in phrase:
            raise ValueError(f"phrase {phrase!r} needs a {{value}} slot")
        return phrase

    @model_validator(mode="after")
    def _negative_phrase_needs_negatives(self) -> ValueSpec:
        if self.negative_phrase and not self.negative:
            raise ValueError("negative_phrase applies only with negative: true (values below zero are refused otherwise)")
        if self.meaning == "money" and self.negative and not self.negative_phrase and self.phrase:
            # A minus sign reads only when the amount ends the phrase ("a balance of -£50"); with words after
            # it ("-£50 owed", "-£50 in arrears") the sentence says the opposite of what it means.
            after = self.phrase.split("{value}", 1)[1].strip()
            if after:
                raise ValueError(
                    f"phrase {self.phrase!r} has words after the amount, so a value below zero would read "
                    f"'-£50{' ' + after}'; add negative_phrase with the words for it (e.g. '£{{value}} in credit'), "
                    "its {value} slot taking the amount's size"
                )
        return self

    @property
    def shown_decimals(self) -> int | None:
        """Digits after the point in reasons: as declared, 2 (pence) for money, else None (up to one)."""
        if self.decimals is not None:
            return self.decimals
        return 2 if self.meaning == "money" else None

    def negative_wording(self, label: str) -> str:
        """The phrase for a value below zero with `{value}` its size: `negative_phrase`, or for pounds the phrase
        with the minus before the pound sign ('£{value} owed' -> '-£{value} owed'); "" when values cannot be
        negative or a signed number reads right as it is ('-3.5 °C')."""
        if not self.negative:
            return ""
        if self.negative_phrase:
            return self.negative_phrase
        phrase = self.wording(label)
        return phrase.replace("£{value}", "-£{value}", 1) if "£{value}" in phrase else ""

    def wording(self, label: str) -> str:
        """The phrase for one value of this event type, e.g. '£{value} owed' or 'bilirubin {value} mg/dl'."""
        if self.phrase:
            return self.phrase
        if self.meaning == "money":
            return "£{value}" if self.unit.upper() in ("GBP", "£", "") else f"{{value}} {self.unit}"
        if self.meaning == "days":
            return "{value} days"
        if self.meaning == "measure":
            return f"{label} {{value}} {self.unit}".rstrip()
        if self.meaning == "count":
            return f"{{value}} {self.unit}".rstrip() if self.unit else "{value}"
        return "{value} in recorded value"


class EventTypeSpec(_Model):
    """One event type of a source: its label (singular, and plural), value, and whether it may be a feature."""

    label: str
    plural: str = ""
    # One event in counts and recency when `label` names a measurement ('bilirubin' -> 'bilirubin result').
    singular: str = ""
    value: ValueSpec | None = None  # None: the source's value spec
    feature: bool = True  # false: never a model input (e.g. works done because abuse is already known)
    why_not_feature: str = ""

    @property
    def plural_label(self) -> str:
        """The plural label ('door replacements'), defaulting to label + 's'."""
        return self.plural or f"{self.label}s"


class SourceSpec(_Model):
    """One event source (a service's system) and its event types."""

    label: str
    value: ValueSpec = ValueSpec()
    event_types: dict[str, EventTypeSpec]

    @field_validator("event_types")
    @classmethod
    def _some_types(cls, types: dict[str, EventTypeSpec]) -> dict[str, EventTypeSpec]:
        if not types:
            raise ValueError("a source needs at least one event type")
        return types


class OutcomeSpec(_Model):
    """One outcome type: its wording in reports and whether it is a state with an end (e.g. a plan)."""

    label: str
    has_end: bool = False


class AttributeSpec(_Model):
    """A column of `residents` or `residency`, as the data has it.

    kind: category (text codes), number, date or boolean. For categories, `values` lists the allowed
    raw codes (empty: any), `groups` maps raw codes to reporting groups (codes not listed report as
    themselves), and `labels` gives wording for a code in reasons ("a social tenancy").
    `known_from` names a date column of the same table from which the value is known (static
    features use the value only from then on).
    """

    kind: AttributeKind
    label: str = ""
    values: tuple[str, ...] = ()
    groups: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    negative: bool = True
    known_from: str | None = None
    # A boolean's reporting groups in words (e.g. "Care leaver" / "Not a care leaver"); empty: from the column name.
    yes_group: str = ""
    no_group: str = ""

    @model_validator(mode="after")
    def _codes_are_declared(self) -> AttributeSpec:
        if self.kind != "category" and (self.values or self.groups or self.labels):
            raise ValueError(f"values, groups and labels apply only to kind 'category' (this is {self.kind!r})")
        if self.kind != "boolean" and (self.yes_group or self.no_group):
            raise ValueError(f"yes_group and no_group apply only to kind 'boolean' (this is {self.kind!r})")
        if self.values:
            unknown = sorted((set(self.groups) | set(self.labels)) - set(self.values))
            if unknown:
                raise ValueError(f"groups/labels name codes not in values: {unknown}")
        return self

    def group_of(self, code: str) -> str:
        """The reporting group of a raw code (the code itself when no group is declared)."""
        return self.groups.get(code, code)

    def reporting_groups(self) -> tuple[str, ...]:
        """Distinct reporting groups in declaration order (empty when values are not declared)."""
        seen: dict[str, None] = {}
        for code in self.values:
            seen.setdefault(self.group_of(code), None)
        return tuple(seen)


class NotRecordedSpec(_Model):
    """Raw values that mean 'not recorded' (matched ignoring case and surrounding spaces), and their group."""

    group: str = "Not recorded"
    values: tuple[str, ...] = ("", "Unknown", "Not known", "Not stated", "Refused", "NA", "N/A", "Not recorded")


# Columns the contract itself defines; a dictionary may not redeclare them.
RESIDENT_KEY_COLUMNS = ("resident_id",)
RESIDENCY_KEY_COLUMNS = ("resident_id", "household_id", "address_id", "start_date", "end_date")


class DataDictionary(_Model):
    """A borough's data dictionary (see module docstring); `path` is where it was read from."""

    name: str
    description: str = ""
    not_recorded: NotRecordedSpec = NotRecordedSpec()
    residents: dict[str, AttributeSpec] = Field(default_factory=dict)
    residency: dict[str, AttributeSpec] = Field(default_factory=dict)
    sources: dict[str, SourceSpec]
    outcomes: dict[str, OutcomeSpec] = Field(default_factory=dict)
    path: str = ""

    @model_validator(mode="after")
    def _names(self) -> DataDictionary:
        for table, attributes, reserved in (
            ("residents", self.residents, RESIDENT_KEY_COLUMNS),
            ("residency", self.residency, RESIDENCY_KEY_COLUMNS),
        ):
            clash = sorted(set(attributes) & set(reserved))
            if clash:
                raise ValueError(f"{table}: {clash} are contract key columns and cannot be declared as attributes")
            for name, spec in attributes.items():
                if spec.known_from is not None and (
                    spec.known_from not in attributes or attributes[spec.known_from].kind != "date"
                ):
                    raise ValueError(f"{table}.{name}.known_from: {spec.known_from!r} is not a declared date column")
        for key in ("birth_date", "death_date"):
            if key in self.residents and self.residents[key].kind != "date":
                raise ValueError(f"residents.{key} must be of kind 'date'")
        return self

    # ---- lookups -------------------------------------------------------------------------

    def event_type(self, source: str, event_type: str) -> EventTypeSpec:
        """The spec of one (source, event_type); ConfigError naming the dictionary if it is not declared."""
        if source not in self.sources:
            raise ConfigError(
                f"source {source!r} is not declared in data dictionary {self.path or self.name}; "
                f"declared sources: {sorted(self.sources)}"
            )
        types = self.sources[source].event_types
        if event_type not in types:
            raise ConfigError(
                f"event type {source}/{event_type} is not declared in data dictionary {self.path or self.name}; "
                f"{source} declares {sorted(types)}"
            )
        return types[event_type]

    def value_spec(self, source: str, event_type: str) -> ValueSpec:
        """The value spec of one event type (its own, else its source's)."""
        spec = self.event_type(source, event_type)
        return spec.value if spec.value is not None else self.sources[source].value

    def event_pairs(self) -> set[tuple[str, str]]:
        """Every declared (source, event_type)."""
        return {(s, t) for s, source in self.sources.items() for t in source.event_types}

    def event_types_by_source(self) -> dict[str, tuple[str, ...]]:
        """Each source's declared event types, in declaration order (what `ingest` may code raw rows into)."""
        return {name: tuple(source.event_types) for name, source in self.sources.items()}

    def negative_allowed_pairs(self) -> set[tuple[str, str]]:
        """(source, event_type) pairs whose value may be negative."""
        return {(s, t) for s, t in self.event_pairs() if self.value_spec(s, t).negative}

    def outcome_label(self, outcome_type: str) -> str:
        """The outcome's wording in reports (its type name with spaces when it is not declared)."""
        spec = self.outcomes.get(outcome_type)
        return spec.label if spec is not None else outcome_type.replace("_", " ")

    def attribute(self, table: str, name: str) -> AttributeSpec | None:
        """The declared attribute `name` of residents or residency, or None."""
        return (self.residents if table == "residents" else self.residency).get(name)

    def categorical_attributes(self) -> dict[str, AttributeSpec]:
        """Residents' attributes that can define groups (category and boolean)."""
        return {n: s for n, s in self.residents.items() if s.kind in ("category", "boolean")}

    def boolean_group_words(self) -> dict[str, dict[str, str]]:
        """Per boolean attribute of residents with declared words: raw value ('Yes', 'True', '1', 'No', ...) ->
        its reporting group (its yes_group or no_group)."""
        words: dict[str, dict[str, str]] = {}
        for name, spec in self.residents.items():
            if spec.kind == "boolean" and spec.yes_group and spec.no_group:
                words[name] = {**dict.fromkeys(("Yes", "True", "1", "true"), spec.yes_group),
                               **dict.fromkeys(("No", "False", "0", "false"), spec.no_group)}
        return words

    def not_recorded_tokens(self) -> frozenset[str]:
        """The 'not recorded' raw values, stripped and lower-cased; a blank (empty or only spaces) always is one."""
        return frozenset(v.strip().lower() for v in self.not_recorded.values) | {""}


def _format_error(error: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid data dictionary:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def dictionary_from_dict(raw: dict[str, Any], source: str = "data dictionary") -> DataDictionary:
    """Validate a dictionary mapping; ConfigError naming each bad key."""
    try:
        return DataDictionary.model_validate({**raw, "path": source})
    except ValidationError as error:
        raise ConfigError(_format_error(error, source)) from None


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int) -> DataDictionary:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"data dictionary {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"data dictionary {path} must hold a mapping at the top level")
    return dictionary_from_dict(raw, source=path)


def load_dictionary(path: str | os.PathLike[str]) -> DataDictionary:
    """Read and validate a dictionary YAML file (cached per path and modification time)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"data dictionary {path} does not exist; set the config's `dictionary:` key to a dictionary file "
            "(relative to the config file)"
        )
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)


def packaged_dictionary_path() -> Path:
    """The synthetic borough's dictionary shipped inside the package (used when a config names none)."""
    return Path(__file__).parent / "conf" / "dictionary" / "synthetic-borough.yaml"


def dictionary_for(config: Any) -> DataDictionary:
    """The data dictionary a ProjectConfig points at (the packaged demo dictionary when it names none)."""
    path = getattr(config, "dictionary", None)
    return load_dictionary(path if path else packaged_dictionary_path())

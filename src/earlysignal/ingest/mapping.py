"""Per-source ingest mappings: one YAML file per source system, validated by pydantic.

A mapping says where a source's extract files are, what each column means (record ID, person fields
used only for linkage, address fields, event time and its format), when each record became known
(`known_at` rule), which rows are excluded, and how raw codes and free text become event and outcome
types: exact code lists first, then ordered, named regular-expression rules. docs/ingest-and-link.md
documents every key; docs/config.md lists the project-config keys that point at the mappings.
"""

from __future__ import annotations

import codecs
import glob as globlib
import hashlib
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from earlysignal.errors import ConfigError

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DateColumn(_Model):
    """A date or timestamp column and its strptime format (e.g. '%d/%m/%Y'); `null` format: ISO 8601."""

    column: str
    format: str | None = None


class Term(_Model):
    """Months of the year (1-12) whose records are complete at `ends` (MM-DD) of the same school year."""

    months: list[int]
    ends: str

    @field_validator("ends")
    @classmethod
    def _month_day(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2}-\d{2}", value):
            raise ValueError(f"ends must be MM-DD (got {value!r})")
        return value


class KnownAt(_Model):
    """When a record became known: `lag` (event time + `days`), `column` (a recorded-date column) or
    `term_end` (end of the school term holding the event month, or of the `terms_in_arrears`-th term
    after it, + `days`)."""

    rule: Literal["lag", "column", "term_end"]
    days: float = 0.0
    column: str | None = None
    format: str | None = None
    terms: list[Term] = Field(default_factory=list)
    terms_in_arrears: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> KnownAt:
        if self.rule == "column" and not self.column:
            raise ValueError("known_at.rule 'column' needs known_at.column")
        if self.rule == "term_end" and not self.terms:
            raise ValueError("known_at.rule 'term_end' needs known_at.terms")
        if self.terms_in_arrears and self.rule != "term_end":
            raise ValueError("known_at.terms_in_arrears needs known_at.rule 'term_end'")
        return self


class Exclusion(_Model):
    """Rows whose `column` value is one of `in` are excluded (counted under `name`, never coded)."""

    name: str
    column: str
    in_: list[str] = Field(alias="in")


class CodeEntry(_Model):
    """An exact code list entry: these raw codes mean this event or outcome type."""

    name: str
    codes: list[str]
    event_type: str | None = None
    outcome_type: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> CodeEntry:
        if (self.event_type is None) == (self.outcome_type is None):
            raise ValueError(f"code entry {self.name!r} needs exactly one of event_type or outcome_type")
        return self


class Codes(_Model):
    """Exact code lists over one code column."""

    column: str
    entries: list[CodeEntry]


class Rule(_Model):
    """A named regular-expression rule over a free-text column, with `exclude` patterns and conditions
    (`when`: column -> allowed values) on other columns; tried in order after the code lists."""

    name: str
    column: str
    pattern: str
    exclude: str | None = None
    when: dict[str, list[str]] = Field(default_factory=dict)
    event_type: str | None = None
    outcome_type: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> Rule:
        if (self.event_type is None) == (self.outcome_type is None):
            raise ValueError(f"rule {self.name!r} needs exactly one of event_type or outcome_type")
        for pattern in (self.pattern, self.exclude):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as error:
                    raise ValueError(f"rule {self.name!r}: {pattern!r} is not a regular expression: {error}") from None
        return self


class PersonColumns(_Model):
    """Columns holding a person's details (for linkage only). `address_text` may join several columns."""

    source_person_id: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None
    birth_date: DateColumn | None = None
    sex: str | None = None
    postcode: str | None = None
    address_text: list[str] = Field(default_factory=list)
    uprn: str | None = None
    nhs_number: str | None = None
    upn: str | None = None
    seen_date: DateColumn | None = None  # default: the event time
    seen_until: DateColumn | None = None
    attributes: dict[str, str] = Field(default_factory=dict)  # attribute name -> column (written as attr_<name>)


class AddressColumns(_Model):
    """Columns of an address-only record (e.g. a repair job keyed by property)."""

    address_text: list[str] = Field(default_factory=list)
    postcode: str | None = None
    uprn: str | None = None
    property_ref: str | None = None


class GazetteerColumns(_Model):
    """Columns of the council's address base extract."""

    uprn: str
    parent_uprn: str | None = None
    address_text: list[str]
    postcode: str | None = None
    classification: str | None = None
    tenure: str | None = None
    tenure_values: dict[str, str] = Field(default_factory=dict)  # raw tenure -> contract tenure


class Extract(_Model):
    """One kind of file of a source (a source may export several, e.g. contacts and episodes)."""

    name: str
    glob: str
    format: Literal["csv", "parquet"] = "csv"
    encoding: str = "utf-8"
    delimiter: str = ","
    record_id: str | None = None
    person: PersonColumns | None = None
    address: AddressColumns | None = None
    gazetteer: GazetteerColumns | None = None
    time: DateColumn | None = None
    known_at: KnownAt | None = None
    value: str | None = None
    end_time: DateColumn | None = None
    exclude: list[Exclusion] = Field(default_factory=list)
    codes: Codes | None = None
    rules: list[Rule] = Field(default_factory=list)
    unmapped: Literal["quarantine", "exclude"] = "quarantine"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}; use a Python codec name such as utf-8, utf-8-sig, cp1252 or latin-1"
            ) from None
        return value

    @model_validator(mode="after")
    def _shape(self) -> Extract:
        roles = [r for r in (self.person, self.address, self.gazetteer) if r is not None]
        if len(roles) != 1:
            raise ValueError(f"extract {self.name!r} needs exactly one of person, address or gazetteer")
        if self.gazetteer is None:
            if not self.record_id:
                raise ValueError(f"extract {self.name!r} needs record_id")
            coded = self.codes is not None or bool(self.rules)
            if coded and (self.time is None or self.known_at is None):
                raise ValueError(f"extract {self.name!r} codes events, so it needs time and known_at")
            if self.address is not None and not coded:
                raise ValueError(f"extract {self.name!r} is address-only, so it needs codes or rules")
        return self


class SourceMapping(_Model):
    """A source system's mapping: its extracts and the version of its code lists."""

    source: str
    version: str
    description: str = ""
    non_feature_event_types: list[str] = Field(default_factory=list)
    extracts: list[Extract]


def mapping_hash(path: Path) -> str:
    """sha256 of a mapping's parsed content (comments and key order do not change it)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    canonical = yaml.safe_dump(data, sort_keys=True, allow_unicode=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_mapping(path: Path) -> SourceMapping:
    """Read and validate one mapping YAML; ConfigError names the file and each bad key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"ingest mapping {path} cannot be read: {error}") from None
    try:
        return SourceMapping.model_validate(raw)
    except ValidationError as error:
        lines = [f"ingest mapping {path} is not valid:"]
        for item in error.errors():
            key = ".".join(str(part) for part in item["loc"]) or "(top level)"
            lines.append(f"  {key}: {item['msg']}")
        raise ConfigError("\n".join(lines)) from None


def resolve_mapping_paths(patterns: list[str], fallback_dir: Path | None = None) -> list[Path]:
    """Mapping files matching the config's globs (relative to the working folder; else the packaged copies)."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(Path(p) for p in globlib.glob(pattern))
        if not matches and fallback_dir is not None and pattern.startswith("conf/"):
            # Run outside the repository: the package ships a copy of conf/ (see packaged_config_path).
            matches = sorted(fallback_dir.glob(pattern.removeprefix("conf/")))
        found.extend(matches)
    if not found:
        raise ConfigError(f"ingest.mappings {patterns} match no mapping files; create conf/sources/<source>.yaml")
    return found

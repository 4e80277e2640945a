"""The feature spec: `config.features` expanded into named, described feature definitions.

Names follow `scope__family__event_type-or-all__aggregate__window` (static features:
`static__<name>`, tenure one-hot: `static__tenure__<tenure>`, imputation flags:
`<feature>_imputed`). Descriptions are plain-English templates with a `{value}` slot,
used verbatim as reason codes ("4 door replacements at home in the last 12 months").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from earlysignal.config import FeatureFamily, ProjectConfig, config_from_dict, config_to_dict, window_days
from earlysignal.contract import EVENT_VOCABULARY
from earlysignal.errors import ConfigError
from earlysignal.fingerprint import stable_hash


# Human labels (plural, singular) per (source, event_type); "contact" means different things per source.
EVENT_LABELS: dict[tuple[str, str], tuple[str, str]] = {
    ("housing_repairs", "door_replacement"): ("door replacements", "door replacement"),
    ("housing_repairs", "lock_change"): ("lock changes", "lock change"),
    ("housing_repairs", "window_repair"): ("window repairs", "window repair"),
    ("housing_repairs", "damp_mould"): ("damp and mould repairs", "damp and mould repair"),
    ("housing_repairs", "general_repair"): ("general repairs", "general repair"),
    ("council_tax", "arrears_reminder"): ("council tax arrears reminders", "council tax arrears reminder"),
    ("council_tax", "summons"): ("council tax summonses", "council tax summons"),
    ("council_tax", "liability_order"): ("council tax liability orders", "council tax liability order"),
    ("benefits", "claim_start"): ("benefit claims started", "benefit claim started"),
    ("benefits", "change_of_circumstances"): (
        "benefit changes of circumstances",
        "benefit change of circumstances",
    ),
    ("benefits", "sanction"): ("benefit sanctions", "benefit sanction"),
    ("school", "absence"): ("months with school absence", "month with school absence"),
    ("school", "fixed_term_exclusion"): ("fixed-term school exclusions", "fixed-term school exclusion"),
    ("school", "permanent_exclusion"): ("permanent school exclusions", "permanent school exclusion"),
    ("police", "domestic_incident"): ("domestic incidents reported to police", "domestic incident reported to police"),
    ("police", "callout"): ("police call-outs", "police call-out"),
    ("police", "missing_person"): ("missing person reports", "missing person report"),
    ("fire", "fire_callout"): ("fire service call-outs", "fire service call-out"),
    ("ae", "attendance"): ("A&E attendances", "A&E attendance"),
    ("ae", "injury_attendance"): ("A&E attendances for injury", "A&E attendance for injury"),
    ("asb", "asb_report"): ("anti-social behaviour reports", "anti-social behaviour report"),
    ("homelessness", "approach"): ("homelessness approaches", "homelessness approach"),
    ("early_help", "contact"): ("early help contacts", "early help contact"),
    ("social_care", "contact"): ("children's social care contacts", "children's social care contact"),
}

# What an event's `value` measures, as a phrase around "{value}" (sum/mean/max descriptions).
VALUE_PHRASES: dict[str, str] = {
    "council_tax": "£{value} owed",
    "school": "{value} school sessions missed",
}

SCOPE_PHRASES = {"resident": "", "household": " in the household", "address": " at home"}

TENURES = ("council", "housing_association", "private_rented", "owner_occupied")
TENURE_LABELS = {
    "council": "a council tenancy",
    "housing_association": "a housing association tenancy",
    "private_rented": "privately rented",
    "owner_occupied": "owner occupied",
}

# Aggregates that are always defined (0 when nothing happened) versus those that can be undefined.
ALWAYS_DEFINED = ("count", "sum", "distinct_types", "trend")
CAN_BE_MISSING = ("mean", "max", "days_since_last", "days_since_first")
WINDOWLESS = ("days_since_last", "days_since_first")

AGE_BANDS = ((0, 4), (5, 10), (11, 15), (16, 17), (18, 24), (25, 34), (35, 44), (45, 54), (55, 64))
NOT_RECORDED = "Not recorded"
PROTECTED_COLUMNS = ("attr__sex", "attr__ethnicity", "attr__disability", "attr__age_band")


@dataclass(frozen=True)
class FeatureDefinition:
    """One generated column: what it aggregates, how it is named and described, and its missing rule."""

    name: str
    family: str
    source: str
    event_type: str  # an event type, "all" (the family's types pooled) or "" for static features
    scope: str  # resident, household, address or static
    window: str  # 30d, 90d, 365d, 3y, all, or "" for static features
    aggregate: str
    description: str
    is_imputed_flag: bool = False
    event_types: tuple[str, ...] = ()  # the event types this feature reads
    missing_rule: str = "zero"  # zero, null or constant: what an undefined value becomes
    missing_value: float | None = None
    imputed_flag: str | None = None  # name of the 0/1 column marking imputed rows, if any
    window_days: int | None = None

    def public_record(self) -> dict[str, Any]:
        """The sidecar's view of this feature."""
        keys = ("name", "family", "source", "event_type", "scope", "window", "aggregate", "description")
        record = {key: getattr(self, key) for key in keys}
        record["is_imputed_flag"] = self.is_imputed_flag
        record["missing_rule"] = self.missing_rule
        record["missing_value"] = self.missing_value
        return record


def event_labels(source: str, event_type: str) -> tuple[str, str]:
    """(plural, singular) human label for an event type, falling back to the type name."""
    if (source, event_type) in EVENT_LABELS:
        return EVENT_LABELS[(source, event_type)]
    words = event_type.replace("_", " ")
    return f"{words} events", f"{words} event"


def window_phrase(window: str) -> str:
    """'the last 12 months' for 365d, 'the last 3 years' for 3y, 'on record' for all."""
    days = window_days(window)
    if days is None:
        return "on record"
    if days % 365 == 0:
        years = days // 365
        return "the last 12 months" if years == 1 else f"the last {years} years"
    if days % 30 == 0:
        months = days // 30
        return "the last month" if months == 1 else f"the last {months} months"
    if days % 7 == 0 and days < 30:
        weeks = days // 7
        return "the last week" if weeks == 1 else f"the last {weeks} weeks"
    return f"the last {days} days"


def _period(window: str) -> str:
    return window_phrase(window).removeprefix("the last ")


def family_event_types(family: FeatureFamily) -> tuple[str, ...]:
    """The family's event types: as listed, else the source's whole vocabulary."""
    if family.event_types:
        return family.event_types
    if family.source in EVENT_VOCABULARY:
        return EVENT_VOCABULARY[family.source]
    raise ConfigError(
        f"features.families[{family.name}].event_types is empty and source {family.source!r} is not in the "
        f"built-in vocabulary ({sorted(EVENT_VOCABULARY)}); list the event types to use"
    )


def _missing_rule(family: FeatureFamily, aggregate: str) -> tuple[str, float | None]:
    rule = family.missing.get(aggregate)
    if aggregate in ALWAYS_DEFINED:
        if rule is not None and rule.rule != "zero":
            raise ConfigError(
                f"features.families[{family.name}].missing.{aggregate}: {aggregate} is always defined (0 when "
                f"nothing happened), so only rule 'zero' applies; missing rules matter for {list(CAN_BE_MISSING)}"
            )
        return "zero", None
    if rule is None:
        return "null", None  # undefined stays missing unless the config says how to fill it
    if rule.rule == "zero":
        return "zero", 0.0
    if rule.rule == "constant":
        return "constant", float(rule.value)  # type: ignore[arg-type]
    return "null", None


def _describe(family: FeatureFamily, key: str, scope: str, aggregate: str, window: str) -> str:
    if key == "all":
        plural = family.description or family.name.replace("_", " ") + " events"
        singular = plural[:-1] if plural.endswith("s") else plural
    else:
        plural, singular = event_labels(family.source, key)
    where = SCOPE_PHRASES[scope]
    value_phrase = VALUE_PHRASES.get(family.source, "{value} in recorded value")
    span = window_phrase(window)
    if aggregate == "count":
        return f"{{value}} {plural}{where} {span}" if window == "all" else f"{{value}} {plural}{where} in {span}"
    if aggregate == "sum":
        return f"{value_phrase} in total across {plural}{where} {'' if window == 'all' else 'in '}{span}"
    if aggregate == "mean":
        return f"{value_phrase} on average per {singular}{where} {'' if window == 'all' else 'in '}{span}"
    if aggregate == "max":
        return f"{value_phrase} at most in one {singular}{where} {'' if window == 'all' else 'in '}{span}"
    if aggregate == "trend":
        period = _period(window)
        return f"{plural}{where} in {span} rose by {{value}} on the {period} before"
    if aggregate == "distinct_types":
        kinds = family.description or family.name.replace("_", " ")
        return f"{{value}} different kinds of {kinds}{where} {'' if window == 'all' else 'in '}{span}"
    if aggregate == "days_since_last":
        return f"{{value}} days since the last {singular}{where}"
    if aggregate == "days_since_first":
        return f"{{value}} days since the first {singular}{where}"
    raise ConfigError(f"features.families[{family.name}]: unknown aggregate {aggregate!r}")


def _windows_for(family: FeatureFamily, aggregate: str) -> tuple[str, ...]:
    if aggregate in WINDOWLESS:
        return ("all",)  # recency looks at the whole history; a window would only repeat the count
    if aggregate == "trend":
        return tuple(w for w in family.windows if w != "all")  # no "window before" the whole history
    return family.windows


def family_definitions(family: FeatureFamily) -> list[FeatureDefinition]:
    """Every feature (and imputation flag) one family generates, in a stable order."""
    types = family_event_types(family)
    keys = list(types) if family.per_event_type else ["all"]
    definitions: list[FeatureDefinition] = []
    for scope in family.scopes:
        for aggregate in family.aggregates:
            rule, value = _missing_rule(family, aggregate)
            aggregate_keys = ["all"] if aggregate == "distinct_types" else keys
            for key in aggregate_keys:
                for window in _windows_for(family, aggregate):
                    name = f"{scope}__{family.name}__{key}__{aggregate}__{window}"
                    flag = f"{name}_imputed" if rule in ("zero", "constant") and aggregate in CAN_BE_MISSING else None
                    definition = FeatureDefinition(
                        name=name,
                        family=family.name,
                        source=family.source,
                        event_type=key,
                        scope=scope,
                        window=window,
                        aggregate=aggregate,
                        description=_describe(family, key, scope, aggregate, window),
                        event_types=types if key == "all" else (key,),
                        missing_rule=rule,
                        missing_value=value,
                        imputed_flag=flag,
                        window_days=window_days(window),
                    )
                    definitions.append(definition)
                    if flag:
                        plural, singular = (
                            event_labels(family.source, key) if key != "all" else (family.description, "event")
                        )
                        definitions.append(
                            dataclasses.replace(
                                definition,
                                name=flag,
                                description=(
                                    f"no {singular}{SCOPE_PHRASES[scope]} on record, so "
                                    f"'{aggregate.replace('_', ' ')}' was filled in (flag = {{value}})"
                                ),
                                is_imputed_flag=True,
                                missing_rule="zero",
                                missing_value=None,
                                imputed_flag=None,
                            )
                        )
    return definitions


def static_definitions(config: ProjectConfig) -> list[FeatureDefinition]:
    """Static features at as_of (age, months at address, household size/children, tenure one-hot),
    plus protected characteristics when `features.protected_as_features` lists them."""
    descriptions = {
        "age": "aged {value}",
        "months_at_address": "{value} months at the current address",
        "household_size": "{value} people in the household",
        "household_children": "{value} children (under 18) in the household",
    }
    definitions: list[FeatureDefinition] = []
    for static in config.features.static:
        if static == "tenure":
            for tenure in TENURES:
                definitions.append(
                    FeatureDefinition(
                        name=f"static__tenure__{tenure}",
                        family="static",
                        source="residency",
                        event_type="",
                        scope="static",
                        window="",
                        aggregate="tenure",
                        description=f"home is {TENURE_LABELS[tenure]} (1 = yes, 0 = no): {{value}}",
                    )
                )
        else:
            definitions.append(
                FeatureDefinition(
                    name=f"static__{static}",
                    family="static",
                    source="residents" if static == "age" else "residency",
                    event_type="",
                    scope="static",
                    window="",
                    aggregate=static,
                    description=descriptions[static],
                )
            )
    for attribute in config.features.protected_as_features:
        definitions.append(
            FeatureDefinition(
                name=f"protected__{attribute}",
                family="protected",
                source="residents",
                event_type="",
                scope="static",
                window="",
                aggregate=attribute,
                description=_PROTECTED_DESCRIPTIONS[attribute],
                missing_rule="null",
            )
        )
    return definitions


_PROTECTED_DESCRIPTIONS = {
    "sex": "sex recorded as female (1) or male (0): {value}",
    "ethnicity": "recorded ethnic group (code {value}: 0 White, 1 Asian, 2 Black, 3 Mixed, 4 Other)",
    "disability": "recorded disability (1 = yes, 0 = no): {value}",
    "age_band": "age band (code {value})",
}
ETHNICITY_CODES = {"White": 0, "Asian": 1, "Black": 2, "Mixed": 3, "Other": 4}


def feature_definitions(config: ProjectConfig) -> list[FeatureDefinition]:
    """All model-input definitions in column order: static first, then each family's features."""
    definitions = static_definitions(config)
    for family in config.features.families:
        definitions.extend(family_definitions(family))
    names = [d.name for d in definitions]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"features: generated feature names repeat: {repeated[:5]}")
    return definitions


def spec_dict(config: ProjectConfig) -> dict[str, Any]:
    """The parts of the config that determine the matrix: cohort, label, temporal, features."""
    full = config_to_dict(config)
    return {key: full[key] for key in ("cohort", "label", "temporal", "features")}


def spec_hash(config: ProjectConfig) -> str:
    """SHA-256 of the spec (cohort + label + temporal + features config)."""
    return stable_hash(spec_dict(config))


def config_with_spec(config: ProjectConfig, spec: dict[str, Any]) -> ProjectConfig:
    """`config` with its cohort/label/temporal/features replaced by a recorded spec (e.g. from a
    model's sidecar), so scoring uses exactly the spec the model was trained with."""
    missing = sorted({"cohort", "label", "temporal", "features"} - set(spec))
    if missing:
        raise ConfigError(f"recorded feature spec lacks sections {missing}")
    full = config_to_dict(config)
    full.update({key: spec[key] for key in ("cohort", "label", "temporal", "features")})
    return config_from_dict(full, source="recorded feature spec")


def age_band(age: int) -> str:
    """The audit age band for a whole-years age: 0-4, 5-10, 11-15, 16-17, then adult bands, 65+."""
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"{low}-{high}"
    return "65+"


def definitions_as_records(definitions: list[FeatureDefinition]) -> list[dict[str, Any]]:
    """Sidecar records for a list of definitions."""
    return [d.public_record() for d in definitions]


__all__ = [
    "EVENT_LABELS",
    "EVENT_VOCABULARY",
    "FeatureDefinition",
    "PROTECTED_COLUMNS",
    "age_band",
    "config_with_spec",
    "definitions_as_records",
    "event_labels",
    "family_definitions",
    "feature_definitions",
    "spec_dict",
    "spec_hash",
    "static_definitions",
    "window_phrase",
]

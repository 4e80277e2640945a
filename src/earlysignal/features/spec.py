"""The feature spec: `config.features` expanded into named, described feature definitions.

Names follow `scope__family__event_type-or-all__aggregate__window` (static features:
`static__<name>`, a category attribute one-hot: `static__<attribute>__<code>`, imputation flags:
`<feature>_imputed`). Descriptions are plain-English templates with a `{value}` slot,
used verbatim as reason codes ("4 door replacements at home in the last 12 months").
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earlysignal.config import FeatureFamily, ProjectConfig, config_from_dict, config_to_dict
from earlysignal.dictionary import AttributeSpec, DataDictionary, ValueSpec, dictionary_for
from earlysignal.errors import ConfigError
from earlysignal.fingerprint import python_sources_sha256, stable_hash
from earlysignal.windows import WindowLength, window_length


SCOPE_PHRASES = {"resident": "", "household": " in the household", "address": " at home"}

# Aggregates that are always defined (0 when nothing happened) versus those that can be undefined.
ALWAYS_DEFINED = ("count", "sum", "distinct_types", "trend")
CAN_BE_MISSING = ("mean", "max", "min", "last", "first", "days_since_last", "days_since_first")
WINDOWLESS = ("days_since_last", "days_since_first")

AGE_BANDS = ((0, 4), (5, 10), (11, 15), (16, 17), (18, 24), (25, 34), (35, 44), (45, 54), (55, 64))
NOT_RECORDED = "Not recorded"
AGE_BAND_ATTRIBUTE = "age_band"


@dataclass(frozen=True)
class FeatureDefinition:
    """One generated column: what it aggregates, how it is named and described, and its missing rule."""

    name: str
    family: str
    source: str
    event_type: str  # an event type, "all" (the family's types pooled) or "" for static features
    scope: str  # resident, household, address or static
    window: str  # 30d, 3m, 12m, 3y, all, or "" for static features
    aggregate: str
    description: str
    is_imputed_flag: bool = False
    event_types: tuple[str, ...] = ()  # the event types this feature reads
    missing_rule: str = "zero"  # zero, null or constant: what an undefined value becomes
    missing_value: float | None = None
    imputed_flag: str | None = None  # name of the 0/1 column marking imputed rows, if any
    window_length: WindowLength | None = None  # None: the whole history (or a static feature)
    description_one: str = ""  # the wording when the value is exactly 1 ("1 month ..."), when it differs
    description_negative: str = ""  # the wording of a value below zero, {value} its size ("-£{value} ...")
    value_decimals: int | None = None  # digits after the point in reasons (2 for money); None: up to one

    def public_record(self) -> dict[str, Any]:
        """The sidecar's view of this feature."""
        keys = ("name", "family", "source", "event_type", "scope", "window", "aggregate", "description")
        record = {key: getattr(self, key) for key in keys}
        record["is_imputed_flag"] = self.is_imputed_flag
        record["missing_rule"] = self.missing_rule
        record["missing_value"] = self.missing_value
        if self.description_one:
            record["description_one"] = self.description_one
        if self.description_negative:
            record["description_negative"] = self.description_negative
        if self.value_decimals is not None:
            record["value_decimals"] = self.value_decimals
        return record


def event_labels(source: str, event_type: str, dictionary: DataDictionary | None = None) -> tuple[str, str]:
    """(plural, singular) human label for an event type from the data dictionary, else from the type name."""
    if dictionary is not None and (source, event_type) in dictionary.event_pairs():
        spec = dictionary.event_type(source, event_type)
        return spec.plural_label, spec.singular or spec.label
    words = event_type.replace("_", " ")
    return f"{words} events", f"{words} event"


def window_phrase(window: str) -> str:
    """'the last 3 months' for 3m, 'the last 12 months' for 12m, 'the last 3 years' for 3y, 'the last 90 days'
    for 90d, 'on record' for all."""
    length = window_length(window)
    return "on record" if length is None else length.phrase


def _period(window: str) -> str:
    return window_phrase(window).removeprefix("the last ")


def family_event_types(family: FeatureFamily, dictionary: DataDictionary) -> tuple[str, ...]:
    """The family's event types: as listed, else every type of the source the dictionary allows as a feature.

    Raises ConfigError for a source or type the dictionary does not declare, or a type it marks
    `feature: false` (e.g. works done because abuse is already known).
    """
    key = f"features.families[{family.name}]"
    if family.source not in dictionary.sources:
        raise ConfigError(
            f"{key}.source: {family.source!r} is not a source of data dictionary {dictionary.path or dictionary.name}; "
            f"declared sources: {sorted(dictionary.sources)}"
        )
    declared = dictionary.sources[family.source].event_types
    if not family.event_types:
        return tuple(t for t, spec in declared.items() if spec.feature)
    for event_type in family.event_types:
        if event_type not in declared:
            raise ConfigError(
                f"{key}.event_types: {event_type!r} is not an event type of source {family.source} in data dictionary "
                f"{dictionary.path or dictionary.name}; declared: {sorted(declared)}"
            )
        if not declared[event_type].feature:
            why = declared[event_type].why_not_feature or "the data dictionary marks it feature: false"
            raise ConfigError(
                f"{key}.event_types: {family.source}/{event_type} must never be a feature ({why}); "
                "remove it from the family"
            )
    return family.event_types


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


# Aggregates whose value is an event's `value` (money, a reading...), worded with the dictionary's value phrase.
VALUE_AGGREGATES = ("sum", "mean", "max", "min", "last", "first")


def _value_spec(
    family: FeatureFamily, key: str, types: tuple[str, ...], dictionary: DataDictionary
) -> tuple[ValueSpec, str]:
    """(value spec, label) whose wording a feature's value takes: the type's, or the source's for a pool of
    types that do not all read alike."""
    if key != "all":
        return dictionary.value_spec(family.source, key), dictionary.event_type(family.source, key).label
    pairs = [(dictionary.value_spec(family.source, t), dictionary.event_type(family.source, t).label) for t in types]
    if len({spec.wording(label) for spec, label in pairs}) == 1 and len({spec for spec, _ in pairs}) == 1:
        return pairs[0]
    source = dictionary.sources[family.source]
    return source.value, source.label


def _value_phrase(family: FeatureFamily, key: str, types: tuple[str, ...], dictionary: DataDictionary) -> str:
    """How one value reads ('£{value} owed', 'bilirubin {value} mg/dl'): the type's, or the source's for a pool."""
    if key != "all":
        return dictionary.value_spec(family.source, key).wording(dictionary.event_type(family.source, key).label)
    phrases = {dictionary.value_spec(family.source, t).wording(dictionary.event_type(family.source, t).label) for t in types}
    if len(phrases) == 1:
        return phrases.pop()
    source = dictionary.sources[family.source]
    return source.value.wording(source.label)


def _value_wording(
    family: FeatureFamily, key: str, aggregate: str, window: str, scope: str, dictionary: DataDictionary,
    types: tuple[str, ...],
) -> tuple[str, int | None]:
    """(template for a value below zero, digits after the point) of a feature whose value is an event's value:
    ("-£{value} owed in total ...", 2) for money; ("", None) for counts, trends and recency."""
    if aggregate not in VALUE_AGGREGATES:
        return "", None
    spec, label = _value_spec(family, key, types, dictionary)
    negative = spec.negative_wording(label)
    template = _describe(family, key, scope, aggregate, window, dictionary, types, value_phrase=negative) if negative else ""
    return template, spec.shown_decimals


def _describe(
    family: FeatureFamily, key: str, scope: str, aggregate: str, window: str, dictionary: DataDictionary,
    types: tuple[str, ...], value_phrase: str = "",
) -> str:
    if key == "all":
        plural = family.description or family.name.replace("_", " ") + " events"
        singular = plural[:-1] if plural.endswith("s") else plural
    else:
        plural, singular = event_labels(family.source, key, dictionary)
    where = SCOPE_PHRASES[scope]
    value_phrase = value_phrase or _value_phrase(family, key, types, dictionary)
    span = window_phrase(window)
    if aggregate == "count":
        return f"{{value}} {plural}{where} {span}" if window == "all" else f"{{value}} {plural}{where} in {span}"
    if aggregate == "sum":
        return f"{value_phrase} in total across {plural}{where} {'' if window == 'all' else 'in '}{span}"
    if aggregate == "mean":
        return f"{value_phrase} on average per {singular}{where} {'' if window == 'all' else 'in '}{span}"
    when = f"{'' if window == 'all' else 'in '}{span}"
    if aggregate in ("min", "max", "last", "first") and _is_reading(family, key, dictionary):
        # A reading such as a lab value: "bilirubin last value 3.2 mg/dl in the last 12 months".
        which = {"min": "lowest value", "max": "highest value", "last": "last value", "first": "first value"}[aggregate]
        return f"{value_phrase.replace('{value}', which + ' {value}', 1)}{where} {when}"
    if aggregate == "max":
        # "at most in one" read as a bound; the maximum is the highest record, as the minimum is the lowest.
        return f"{value_phrase} at the highest {singular}{where} {when}"
    if aggregate == "min":
        # "at least in one" read as a lower bound on one record; the minimum is the lowest record.
        return f"{value_phrase} at the lowest {singular}{where} {when}"
    if aggregate == "last":
        return f"{value_phrase} at the last {singular}{where} {when}"
    if aggregate == "first":
        return f"{value_phrase} at the first {singular}{where} {when}"
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


def _is_reading(family: FeatureFamily, key: str, dictionary: DataDictionary) -> bool:
    """Whether the value is a measurement worded by default ('<label> {value} <unit>')."""
    types = (key,) if key != "all" else dictionary.sources[family.source].event_types
    specs = [dictionary.value_spec(family.source, t) for t in types]
    return all(spec.meaning == "measure" and not spec.phrase for spec in specs)


def _windows_for(family: FeatureFamily, aggregate: str) -> tuple[str, ...]:
    if aggregate in WINDOWLESS:
        return ("all",)  # recency looks at the whole history; a window would only repeat the count
    if aggregate == "trend":
        return tuple(w for w in family.windows if w != "all")  # no "window before" the whole history
    return family.windows


def family_definitions(family: FeatureFamily, dictionary: DataDictionary) -> list[FeatureDefinition]:
    """Every feature (and imputation flag) one family generates, in a stable order (wording from the dictionary)."""
    types = family_event_types(family, dictionary)
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
                    negative, decimals = _value_wording(family, key, aggregate, window, scope, dictionary, types)
                    definition = FeatureDefinition(
                        name=name,
                        family=family.name,
                        source=family.source,
                        event_type=key,
                        scope=scope,
                        window=window,
                        aggregate=aggregate,
                        description=_describe(family, key, scope, aggregate, window, dictionary, types),
                        description_one=_describe_one(family, key, scope, aggregate, window, dictionary, types),
                        description_negative=negative,
                        value_decimals=decimals,
                        event_types=types if key == "all" else (key,),
                        missing_rule=rule,
                        missing_value=value,
                        imputed_flag=flag,
                        window_length=window_length(window),
                    )
                    definitions.append(definition)
                    if flag:
                        plural, singular = (
                            event_labels(family.source, key, dictionary) if key != "all" else (family.description, "event")
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
                                description_one="",
                                description_negative="",
                                value_decimals=None,
                                missing_rule="zero",
                                missing_value=None,
                                imputed_flag=None,
                            )
                        )
    return definitions


def _describe_one(
    family: FeatureFamily, key: str, scope: str, aggregate: str, window: str, dictionary: DataDictionary,
    types: tuple[str, ...],
) -> str:
    """A count's wording for exactly one event ("1 month with school absence"); "" for other aggregates."""
    if aggregate != "count":
        return ""
    if key == "all":
        plural = family.description or family.name.replace("_", " ") + " events"
        singular = plural[:-1] if plural.endswith("s") else plural
    else:
        plural, singular = event_labels(family.source, key, dictionary)
    many = _describe(family, key, scope, aggregate, window, dictionary, types)
    return many.replace(f"{{value}} {plural}", f"{{value}} {singular}", 1)


BUILT_IN_STATIC_ONE = {
    "months_at_address": "{value} month at the current address",
    "household_size": "{value} person in the household",
    "household_children": "{value} child (under 18) in the household",
}

BUILT_IN_STATIC = {
    "age": ("residents", "aged {value}"),
    "months_at_address": ("residency", "{value} months at the current address"),
    "household_size": ("residency", "{value} people in the household"),
    "household_children": ("residency", "{value} children (under 18) in the household"),
}


def static_attribute(dictionary: DataDictionary, name: str) -> tuple[str, AttributeSpec]:
    """(table, spec) of a declared attribute used as a static feature; ConfigError if it cannot be one."""
    for table in ("residents", "residency"):
        spec = dictionary.attribute(table, name)
        if spec is not None:
            if spec.kind == "date":
                raise ConfigError(f"features.static: {name} is a date; dates are not features (use age for birth_date)")
            if spec.kind == "category" and not spec.values:
                raise ConfigError(
                    f"features.static: {name} is a category without declared values in data dictionary "
                    f"{dictionary.path or dictionary.name}; list its values so its one-hot columns are fixed"
                )
            return table, spec
    built_in = ", ".join(BUILT_IN_STATIC)
    raise ConfigError(
        f"features.static: {name!r} is neither a built-in static feature ({built_in}) nor an attribute declared in "
        f"data dictionary {dictionary.path or dictionary.name} (residents: {sorted(dictionary.residents)}; "
        f"residency: {sorted(dictionary.residency)})"
    )


def _attribute_definitions(name: str, table: str, spec: AttributeSpec) -> list[FeatureDefinition]:
    label = spec.label or name.replace("_", " ")
    common = dict(family="static", source=table, scope="static", window="", aggregate="attribute")
    if spec.kind == "category":
        where = "home is" if table == "residency" else f"{label} recorded as"
        return [
            FeatureDefinition(
                name=f"static__{name}__{code}",
                event_type=code,
                description=f"{where} {spec.labels.get(code, spec.group_of(code))} (1 = yes, 0 = no): {{value}}",
                missing_rule="zero",
                **common,  # type: ignore[arg-type]
            )
            for code in spec.values
        ]
    if spec.kind == "boolean":
        description = f"{label} (1 = yes, 0 = no): {{value}}"
    else:
        description = f"{label} {{value}}"
    return [
        FeatureDefinition(
            name=f"static__{name}", event_type="", description=description, missing_rule="null", **common  # type: ignore[arg-type]
        )
    ]


def static_definitions(config: ProjectConfig) -> list[FeatureDefinition]:
    """Static features at as_of: built-ins (age, months at address, household size/children) and declared
    attributes (category one-hot over its declared codes; number and boolean as they are), plus protected
    characteristics when `features.protected_as_features` lists them. Wording comes from the dictionary."""
    dictionary = dictionary_for(config)
    definitions: list[FeatureDefinition] = []
    for static in config.features.static:
        if static in BUILT_IN_STATIC:
            source, description = BUILT_IN_STATIC[static]
            definitions.append(
                FeatureDefinition(
                    name=f"static__{static}",
                    family="static",
                    source=source,
                    event_type="",
                    scope="static",
                    window="",
                    aggregate=static,
                    description=description,
                    description_one=BUILT_IN_STATIC_ONE.get(static, ""),
                )
            )
        else:
            table, spec = static_attribute(dictionary, static)
            definitions.extend(_attribute_definitions(static, table, spec))
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
                description=protected_description(dictionary, attribute),
                missing_rule="null",
            )
        )
    return definitions


def protected_codes(dictionary: DataDictionary, attribute: str) -> dict[str, float]:
    """Numeric code of each reporting group of a protected attribute, when it is a model input."""
    if attribute == AGE_BAND_ATTRIBUTE:
        bands = [f"{low}-{high}" for low, high in AGE_BANDS] + ["65+"]
        return {band: float(i) for i, band in enumerate(bands)}
    spec = dictionary.residents[attribute]
    if spec.kind == "boolean":
        return {"Yes": 1.0, "No": 0.0}
    return {group: float(i) for i, group in enumerate(spec.reporting_groups())}


def protected_description(dictionary: DataDictionary, attribute: str) -> str:
    """Reason wording of a protected attribute used as a model input, with its code table."""
    if attribute == AGE_BAND_ATTRIBUTE:
        return "age band (code {value})"
    spec = dictionary.residents[attribute]
    label = spec.label or attribute.replace("_", " ")
    if spec.kind == "boolean":
        return f"{label} (1 = yes, 0 = no): {{value}}"
    codes = ", ".join(f"{int(code)} {group}" for group, code in protected_codes(dictionary, attribute).items())
    return f"recorded {label} (code {{value}}: {codes})"


def feature_definitions(config: ProjectConfig) -> list[FeatureDefinition]:
    """All model-input definitions in column order: static first, then each family's features."""
    definitions = static_definitions(config)
    dictionary = dictionary_for(config)
    for family in config.features.families:
        definitions.extend(family_definitions(family, dictionary))
    names = [d.name for d in definitions]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise ConfigError(f"features: generated feature names repeat: {repeated[:5]}{more}")
    return definitions


def spec_dict(config: ProjectConfig) -> dict[str, Any]:
    """The parts of the config that determine the matrix: cohort, label, temporal, features."""
    full = config_to_dict(config)
    return {key: full[key] for key in ("cohort", "label", "temporal", "features")}


def spec_hash(config: ProjectConfig) -> str:
    """SHA-256 of the spec (cohort + label + temporal + features config) and the data dictionary's content,
    whose codes and wording shape the matrix and its descriptions (wherever the file lives)."""
    dictionary = dictionary_for(config).model_dump(mode="json", exclude={"path"})
    return stable_hash({**spec_dict(config), "dictionary": dictionary})


# The package's modules whose code decides a matrix's values (relative to src/earlysignal): reading and
# checking the linked data, windows and labels' calendar rules, the SQL and the NumPy builder, the engines.
MATRIX_CODE = ("features", "engines", "contract", "windows.py", "config.py", "dictionary.py", "dates.py")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> dict[str, str]:
    """{'earlysignal': the installed package version, 'sources_sha256': SHA-256 of the MATRIX_CODE source
    files}: what a cached feature matrix's values depend on besides the spec and the data (computed once
    per process)."""
    try:
        version = importlib.metadata.version("earlysignal")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        from earlysignal import __version__ as version
    package = Path(__file__).resolve().parents[1]
    return {"earlysignal": version, "sources_sha256": python_sources_sha256(package, MATRIX_CODE)}


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
    "FeatureDefinition",
    "age_band",
    "code_fingerprint",
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

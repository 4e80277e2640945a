"""The data dictionary: names live in YAML, never in code; the synthetic borough is one dictionary among others."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from earlysignal.config import config_from_dict, load_config
from earlysignal.dictionary import dictionary_from_dict, load_dictionary, packaged_dictionary_path
from earlysignal.errors import ConfigError
from earlysignal.features.spec import feature_definitions

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "earlysignal"
SYNTHETIC = REPO / "conf" / "dictionary" / "synthetic-borough.yaml"

# Generic English words that are also names in the synthetic borough. They may appear as ordinary words
# ("linked council records", "contact" a person, the CSS class "callout" in a template) but never as a
# quoted string literal in Python, which is how a vocabulary constant would spell them.
GENERIC_WORDS = frozenset({"council", "contact", "callout", "approach", "absence", "attendance", "Other", "fire", "school"})
# One-letter codes (sex F/M) cannot be told from NumPy's order="F", a TypeVar F or `metrics as M` by any
# pattern; the contract and features read them from the dictionary like every other code.
TOO_SHORT_TO_SEARCH = frozenset({"F", "M"})


def _synthetic_names() -> set[str]:
    dictionary = load_dictionary(SYNTHETIC)
    names: set[str] = set(dictionary.sources) | set(dictionary.outcomes)
    for source in dictionary.sources.values():
        names |= set(source.event_types)
    for attributes in (dictionary.residents, dictionary.residency):
        for spec in attributes.values():
            names |= set(spec.values) | set(spec.groups.values())
            # A boolean's group words ("Disabled") are the borough's wording as much as a category's groups are.
            names |= {word for word in (spec.yes_group, spec.no_group) if word}
    return names


def _code_files() -> list[Path]:
    return sorted(
        path
        for path in SRC.rglob("*")
        if path.suffix in (".py", ".html", ".j2", ".jinja")
        and "synth" not in path.relative_to(SRC).parts[:1]
    )


def test_no_name_of_the_synthetic_borough_appears_in_code_outside_synth():
    names = _synthetic_names()
    assert {"housing_repairs", "sanctuary_works", "child_protection_plan", "owner_occupied", "White", "Disabled",
            "Not disabled"} <= names
    found: list[str] = []
    for path in _code_files():
        text = path.read_text(encoding="utf-8")
        for name in sorted(names - TOO_SHORT_TO_SEARCH):
            if name in GENERIC_WORDS and path.suffix != ".py":
                continue
            if name in GENERIC_WORDS:
                pattern = rf"""(?<![\w])["']{re.escape(name)}["']"""
            else:
                pattern = rf"(?<![\w]){re.escape(name)}(?![\w])"
            for match in re.finditer(pattern, text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert found == []


def test_the_packaged_dictionary_is_the_repository_copy():
    assert packaged_dictionary_path().read_bytes() == SYNTHETIC.read_bytes()


def test_config_resolves_its_dictionary_relative_to_the_config_file(tmp_path):
    folder = tmp_path / "council"
    (folder / "dicts").mkdir(parents=True)
    (folder / "dicts" / "ours.yaml").write_text(
        "name: ours\nsources:\n  libraries:\n    event_types:\n      late_return: {label: late return}\n"
        "    label: libraries\noutcomes:\n  referral: {label: a referral}\n",
        encoding="utf-8",
    )
    (folder / "project.yaml").write_text(
        "dictionary: dicts/ours.yaml\ntemporal: {first_as_of: 2024-01-01, last_as_of: 2024-01-01}\n"
        "cohort: {exclude_open_outcomes: []}\nlabel: {outcome_types: [referral], horizon_months: 6}\nfeatures: {static: []}\n",
        encoding="utf-8",
    )
    config = load_config(folder / "project.yaml")
    assert config.dictionary == str((folder / "dicts" / "ours.yaml").resolve())
    assert config.audit.protected == ()  # the dictionary declares no person attributes


def test_label_outcome_not_in_the_dictionary_is_a_config_error():
    with pytest.raises(ConfigError, match=r"label.outcome_types names outcome types not in the data dictionary.*'jail'"):
        config_from_dict(
            {"temporal": {"first_as_of": "2024-01-01", "last_as_of": "2024-01-01"}, "label": {"outcome_types": ["jail"], "horizon_months": 6}}
        )


def test_audit_protected_accepts_only_declared_category_attributes_or_age_band():
    base = {"temporal": {"first_as_of": "2024-01-01", "last_as_of": "2024-01-01"}, "label": {"outcome_types": ["child_protection_plan"], "horizon_months": 6}}
    assert config_from_dict({**base, "audit": {"protected": ["ethnicity", "age_band"]}}).audit.protected == (
        "ethnicity",
        "age_band",
    )
    with pytest.raises(ConfigError, match=r"audit.protected names attributes .*\['race'\]"):
        config_from_dict({**base, "audit": {"protected": ["race"]}})


def test_an_event_type_marked_never_a_feature_is_refused_by_the_feature_spec():
    family = {"name": "repairs", "source": "housing_repairs", "event_types": ["door_replacement", "sanctuary_works"],
              "scopes": ["address"], "windows": ["365d"], "aggregates": ["count"]}
    config = config_from_dict({"temporal": {"first_as_of": "2024-01-01", "last_as_of": "2024-01-01"}, "label": {"outcome_types": ["child_protection_plan"], "horizon_months": 6},
                               "features": {"static": [], "families": [family]}})
    with pytest.raises(ConfigError, match=r"housing_repairs/sanctuary_works must never be a feature \(done because abuse"):
        feature_definitions(config)


def test_a_family_listing_no_types_takes_every_type_allowed_as_a_feature():
    family = {"name": "repairs", "source": "housing_repairs", "scopes": ["address"], "windows": ["365d"],
              "aggregates": ["count"]}
    config = config_from_dict({"temporal": {"first_as_of": "2024-01-01", "last_as_of": "2024-01-01"}, "label": {"outcome_types": ["child_protection_plan"], "horizon_months": 6},
                               "features": {"static": [], "families": [family]}})
    types = {d.event_type for d in feature_definitions(config)}
    assert types == {"door_replacement", "lock_change", "window_repair", "damp_mould", "general_repair"}


def test_dictionary_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"sources.x.event_types.t.value.phrase: .*needs a \{value\} slot"):
        dictionary_from_dict(
            {"name": "bad", "sources": {"x": {"label": "x", "event_types": {"t": {"label": "t", "value": {"phrase": "owed"}}}}}}
        )
    with pytest.raises(ConfigError, match=r"residents.sex: .*groups/labels name codes not in values: \['X'\]"):
        dictionary_from_dict(
            {"name": "bad", "sources": {}, "residents": {"sex": {"kind": "category", "values": ["F"], "groups": {"X": "x"}}}}
        )


def test_value_wording_comes_from_meaning_and_unit():
    dictionary = dictionary_from_dict(
        {
            "name": "clinic",
            "sources": {
                "lab": {
                    "label": "lab",
                    "event_types": {
                        "bilirubin": {"label": "bilirubin", "value": {"meaning": "measure", "unit": "mg/dl"}},
                        "fee": {"label": "fee", "value": {"meaning": "money", "unit": "GBP"}},
                    },
                }
            },
        }
    )
    assert dictionary.value_spec("lab", "bilirubin").wording("bilirubin") == "bilirubin {value} mg/dl"
    assert dictionary.value_spec("lab", "fee").wording("fee") == "£{value}"


def test_the_name_check_would_catch_a_boolean_group_worded_in_code(tmp_path):
    # What src/earlysignal/audit/groups.py once held: the synthetic borough's disability wording as a constant.
    leaked = tmp_path / "groups.py"
    leaked.write_text('_DISPLAY = {"disability": {"True": "Disabled", "False": "Not disabled"}}\n', encoding="utf-8")
    text = leaked.read_text(encoding="utf-8")
    caught = [n for n in sorted(_synthetic_names() - TOO_SHORT_TO_SEARCH)
              if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", text)]
    assert caught == ["Disabled", "Not disabled"]


def test_boolean_groups_read_in_the_dictionary_s_words():
    import pandas as pd

    from earlysignal.audit.groups import group_labels

    dictionary = load_dictionary(SYNTHETIC)
    frame = pd.DataFrame({"attr__disability": ["Yes", "No", None, " "]})
    labels = group_labels(frame, "disability", dictionary.boolean_group_words())
    assert list(labels) == ["Disabled", "Not disabled", "Not recorded", "Not recorded"]
    # Without declared words a boolean reads from its name, never as bare Yes/No.
    assert list(group_labels(frame.rename(columns={"attr__disability": "attr__care_leaver"}), "care_leaver")) == [
        "Care leaver", "Not care leaver", "Not recorded", "Not recorded"]
    with pytest.raises(Exception, match="yes_group and no_group apply only to kind 'boolean'"):
        dictionary_from_dict({"name": "x", "sources": {}, "residents": {"sex": {"kind": "category", "yes_group": "A"}}})

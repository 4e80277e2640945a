"""A synthetic borough's tenure and ethnic mix (synth.tenure_mix, synth.ethnicity_mix): boroughs that
differ from the built-in inner-London mix, for trials of several boroughs (docs/synthetic-borough.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from earlysignal.config import SynthSection, load_config
from earlysignal.errors import ConfigError
from earlysignal.synth import generate_borough
from earlysignal.synth.people import (
    ETHNICITIES,
    ETHNICITY_BY_TENURE,
    ETHNICITY_SHARES,
    TENURE_SHARES,
    make_mix,
)

OUTER = {"council": 0.10, "housing_association": 0.05, "private_rented": 0.25, "owner_occupied": 0.60}
GROUPS = {"White": 0.40, "Asian": 0.30, "Black": 0.18, "Mixed": 0.06, "Other": 0.06}


@pytest.fixture(scope="module")
def outer_borough(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("outer_borough")
    generate_borough(out, SynthSection(residents=8_000, years=3, seed=5, tenure_mix=OUTER, ethnicity_mix=GROUPS))
    return out


def test_without_a_mix_the_built_in_inner_london_mix_is_used_unchanged() -> None:
    mix = make_mix({}, {})
    assert mix.tenure_shares is TENURE_SHARES
    assert mix.ethnicity_by_tenure is ETHNICITY_BY_TENURE
    assert mix.ethnicity_shares is ETHNICITY_SHARES


def test_ethnicity_mix_makes_the_households_main_groups_over_the_tenures_equal_the_target() -> None:
    mix = make_mix(OUTER, GROUPS)
    target = np.array([GROUPS[g] for g in ETHNICITIES])
    np.testing.assert_allclose(mix.tenure_shares @ mix.ethnicity_by_tenure, target, atol=1e-9)
    np.testing.assert_allclose(mix.ethnicity_by_tenure.sum(axis=1), 1.0)
    np.testing.assert_array_equal(mix.ethnicity_shares, target)
    # Each group keeps its relative over-representation by tenure: the odds of Black against White
    # in council homes against owner-occupied homes are the built-in world's.
    def odds_ratio(p: np.ndarray) -> float:
        return (p[0, 2] / p[0, 0]) / (p[3, 2] / p[3, 0])

    assert odds_ratio(mix.ethnicity_by_tenure) == pytest.approx(odds_ratio(ETHNICITY_BY_TENURE))


def test_the_generated_borough_has_the_tenure_and_ethnic_mix_asked_for(outer_borough: Path) -> None:
    households = pd.read_parquet(outer_borough / "ground_truth" / "households.parquet")
    # Addresses draw their tenure once; split households' new homes follow their own shares, so count
    # the addresses of households that did not split off.
    addresses = households[households["split_from"].isna()].drop_duplicates("address_id")
    shares = addresses["tenure"].value_counts(normalize=True)
    for tenure, target in OUTER.items():
        assert shares[tenure] == pytest.approx(target, abs=0.03), tenure
    people = pd.read_parquet(outer_borough / "ground_truth" / "people.parquet")
    groups = people["ethnicity"].value_counts(normalize=True)
    # Residents land near the target, not on it: 10% of members differ from their household's group
    # and some children are Mixed.
    for group, target in GROUPS.items():
        assert groups[group] == pytest.approx(target, abs=0.04), group
    assert groups["Asian"] > 0.25 and groups["White"] < 0.45  # far from the built-in 16% and 58%


def test_the_manifest_records_the_mix_only_when_one_is_set(outer_borough: Path, tmp_path: Path) -> None:
    generator = json.loads((outer_borough / "manifest.json").read_text())["generator"]
    assert generator["tenure_mix"] == OUTER
    assert generator["ethnicity_mix"] == GROUPS
    generate_borough(tmp_path, SynthSection(residents=500, years=1, seed=5))
    plain = json.loads((tmp_path / "manifest.json").read_text())["generator"]
    assert "tenure_mix" not in plain and "ethnicity_mix" not in plain


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tenure_mix", {"council": 1.0}, "missing: housing_association, private_rented, owner_occupied"),
        ("tenure_mix", {**OUTER, "social": 0.0}, "unknown: social"),
        ("ethnicity_mix", {**GROUPS, "White": 0.5}, "sum to 1 (they sum to 1.1000)"),
    ],
)
def test_a_bad_mix_is_refused_naming_the_key_and_what_is_wrong(
    tmp_path: Path, key: str, value: dict[str, float], message: str
) -> None:
    raw = yaml.safe_load(Path("conf/borough.yaml").read_text())
    raw["synth"][key] = value
    raw["dictionary"] = str(Path("conf/dictionary/synthetic-borough.yaml").resolve())
    path = tmp_path / "borough.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"synth.{key}" in str(error.value)
    assert message in str(error.value)


"""The synthetic borough: contract shape, determinism, the planted structure, null world, bias, oracle."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from earlysignal.cli import app
from earlysignal.config import RecordingBias, SynthSection
from earlysignal.contract import load_linked_data
from earlysignal.dictionary import load_dictionary, packaged_dictionary_path
from earlysignal.errors import ConfigError
from earlysignal.synth import generate_borough, oracle_risk, parse_recording_bias
from earlysignal.synth.bias import DEFAULT_BIAS_SOURCES

EXTRACT = dt.date(2026, 1, 1)
AS_OF_DATES = [dt.date(y, m, 1) for y in (2021, 2022, 2023, 2024) for m in (1, 4, 7, 10)] + [dt.date(2025, 1, 1)]
# Half-yearly, so 6-month outcome windows do not overlap and no outcome is counted twice.
HALF_YEARS = [dt.date(y, m, 1) for y in (2021, 2022, 2023, 2024, 2025) for m in (1, 7)]


@pytest.fixture(scope="module")
def null_borough(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The null world with the same people and states as synth_borough_small."""
    out = tmp_path_factory.mktemp("null_borough")
    generate_borough(out, SynthSection(residents=12_000, years=5, seed=7, world="null"))
    return out


@pytest.fixture(scope="module")
def biased_borough(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth_borough_small with Black residents' incidents recorded 3x as often by police and social care."""
    out = tmp_path_factory.mktemp("biased_borough")
    bias = RecordingBias(attribute="ethnicity", group="Black", factor=3.0, sources=("police", "social_care"))
    generate_borough(out, SynthSection(residents=12_000, years=5, seed=7, recording_bias=(bias,)))
    return out


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pq.read_table(folder / name).to_pandas()


def _children_at(folder: Path, as_of: dt.date) -> pd.DataFrame:
    """Children (0-17) living in the borough at as_of, with their household's true states then."""
    residency = _read(folder, "residency.parquet")
    residents = _read(folder, "residents.parquet").set_index("resident_id")
    states = _read(folder, "ground_truth/household_states.parquet")
    living = residency[
        (residency["start_date"] <= as_of) & (residency["end_date"].isna() | (residency["end_date"] > as_of))
    ]
    birth = pd.to_datetime(residents.loc[living["resident_id"], "birth_date"]).to_numpy()
    age_years = (np.datetime64(as_of) - birth).astype("timedelta64[D]").astype(int) / 365.25
    children = living[age_years < 18][["resident_id", "household_id"]].copy()
    current = states[(states["start_date"] <= as_of) & (states["end_date"].isna() | (states["end_date"] > as_of))]
    abused = set(current.loc[current["state"] == "domestic_abuse", "household_id"])
    children["abuse"] = children["household_id"].isin(abused)
    adverse = set(current["household_id"])
    children["any_adversity"] = children["household_id"].isin(adverse)
    return children.reset_index(drop=True)


def _had_outcome(folder: Path, resident_ids: pd.Series, as_of: dt.date, months: int, types: list[str]) -> np.ndarray:
    outcomes = _read(folder, "outcomes.parquet")
    end = pd.Timestamp(as_of) + pd.DateOffset(months=months)
    hits = outcomes[
        outcomes["outcome_type"].isin(types)
        & (outcomes["outcome_time"] >= pd.Timestamp(as_of))
        & (outcomes["outcome_time"] < end)
    ]
    return resident_ids.isin(set(hits["resident_id"])).to_numpy()


def _stacked_children(folder: Path, types: list[str], months: int = 6) -> pd.DataFrame:
    frames = []
    for as_of in HALF_YEARS:
        children = _children_at(folder, as_of)
        children["as_of"] = as_of
        children["label"] = _had_outcome(folder, children["resident_id"], as_of, months, types)
        frames.append(children)
    return pd.concat(frames, ignore_index=True)


def _rate_ratio_ci(frame: pd.DataFrame, exposed: str) -> tuple[float, float, float]:
    """Rate ratio of `label` between exposed and unexposed rows, with a 99% interval (log scale).

    99% rather than 95% because the same child appears at several as_of dates (rows are clustered),
    which makes the simple Poisson interval a little too narrow."""
    a = frame.loc[frame[exposed], "label"].sum()
    n1 = frame[exposed].sum()
    b = frame.loc[~frame[exposed], "label"].sum()
    n0 = (~frame[exposed]).sum()
    ratio = (a / n1) / (b / n0)
    half = 2.58 * np.sqrt(1 / max(a, 0.5) + 1 / max(b, 0.5))
    return float(ratio), float(ratio * np.exp(-half)), float(ratio * np.exp(half))


# --- the data contract ------------------------------------------------------------------------------


def test_tables_have_exactly_the_contract_columns_and_types(synth_borough_small: Path) -> None:
    expected = {
        "residents.parquet": "resident_id: string, birth_date: date32[day], death_date: date32[day], sex: string, "
        "ethnicity: string, disability: bool",
        "residency.parquet": "resident_id: string, household_id: string, address_id: string, "
        "start_date: date32[day], end_date: date32[day], tenure: string",
        "events.parquet": "event_id: string, resident_id: string, address_id: string, source: string, "
        "event_type: string, event_time: timestamp[us], known_at: timestamp[us], value: double",
        "outcomes.parquet": "resident_id: string, outcome_type: string, outcome_time: timestamp[us], "
        "known_at: timestamp[us], end_time: timestamp[us]",
    }
    for name, columns in expected.items():
        schema = pq.read_schema(synth_borough_small / name)
        assert ", ".join(f"{f.name}: {f.type}" for f in schema) == columns, name


def test_events_use_the_shared_vocabulary_and_are_known_after_they_happen(synth_borough_small: Path) -> None:
    events = _read(synth_borough_small, "events.parquet")
    pairs = set(map(tuple, events[["source", "event_type"]].drop_duplicates().to_numpy()))
    dictionary = load_dictionary(packaged_dictionary_path())
    declared = dictionary.event_pairs()
    features = {(s, t) for s, t in declared if dictionary.event_type(s, t).feature}
    assert pairs <= declared  # nothing outside the synthetic borough's dictionary
    assert features <= pairs  # every event type a feature can use appears
    assert events["event_id"].is_unique
    assert (events["known_at"] >= events["event_time"]).all()
    assert (events["resident_id"].notna() | events["address_id"].notna()).all()
    assert (events["known_at"] < pd.Timestamp(EXTRACT)).all()
    assert (events["event_time"] >= pd.Timestamp("2021-01-01")).all()
    repairs = events[events["source"] == "housing_repairs"]
    assert repairs["resident_id"].isna().all() and repairs["address_id"].notna().all()
    owed = events[events["source"] == "council_tax"]
    assert owed["value"].gt(0).all() and owed["resident_id"].notna().all() and owed["address_id"].notna().all()


def test_school_absence_is_known_only_after_the_term_ends(synth_borough_small: Path) -> None:
    events = _read(synth_borough_small, "events.parquet")
    absence = events[(events["source"] == "school") & (events["event_type"] == "absence")]
    month_end = absence["event_time"] + pd.offsets.MonthBegin(1)
    assert (absence["known_at"] >= month_end).all()
    assert (absence["event_time"].dt.month != 8).all()
    assert absence["value"].between(0, 40).all()


def test_output_passes_contract_validation_with_nothing_quarantined(synth_borough_small: Path) -> None:
    linked = load_linked_data(synth_borough_small, write_quarantine=False)
    assert linked.report.total_quarantined == 0
    assert linked.extract_date == EXTRACT
    manifest = json.loads((synth_borough_small / "manifest.json").read_text())
    for table, counts in linked.report.tables.items():
        assert counts.read == manifest["row_counts"][table] > 0


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    settings = SynthSection(residents=3_000, years=2, seed=11)
    generate_borough(tmp_path / "a", settings)
    generate_borough(tmp_path / "b", settings)
    generate_borough(tmp_path / "c", settings.model_copy(update={"seed": 12}))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert Path("events.parquet") in files and Path("ground_truth/household_states.parquet") in files
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "events.parquet").read_bytes() != (tmp_path / "c" / "events.parquet").read_bytes()


# --- people and places -------------------------------------------------------------------------------


def test_population_looks_like_an_inner_london_borough(synth_borough_small: Path) -> None:
    residency = _read(synth_borough_small, "residency.parquet")
    residents = _read(synth_borough_small, "residents.parquet").set_index("resident_id")
    day = dt.date(2023, 6, 1)
    living = residency[(residency["start_date"] <= day) & (residency["end_date"].isna() | (residency["end_date"] > day))]
    assert living["resident_id"].is_unique
    assert 10_800 <= len(living) <= 13_200  # --residents is the number living there at any time
    people = residents.loc[living["resident_id"]]
    shares = people["ethnicity"].value_counts(normalize=True, dropna=False)
    assert shares["White"] == pytest.approx(0.58, abs=0.05)
    assert shares["Asian"] == pytest.approx(0.16, abs=0.03)
    assert shares["Black"] == pytest.approx(0.09, abs=0.03)
    assert people["ethnicity"].isna().mean() == pytest.approx(0.03, abs=0.015)
    households = living.drop_duplicates("household_id")
    tenure = households["tenure"].value_counts(normalize=True)
    for name, share in {"council": 0.23, "housing_association": 0.10, "private_rented": 0.32, "owner_occupied": 0.35}.items():
        assert tenure[name] == pytest.approx(share, abs=0.03), name
    age = (np.datetime64(day) - pd.to_datetime(people["birth_date"]).to_numpy()).astype("timedelta64[D]").astype(int) / 365.25
    adults = people[age >= 18]
    assert adults["disability"].mean() == pytest.approx(0.15, abs=0.03)
    assert 0.15 <= (age < 18).mean() <= 0.30 and 0.06 <= (age >= 65).mean() <= 0.16
    assert 1.8 <= living.groupby("household_id").size().mean() <= 2.6


def test_people_are_born_die_move_and_leave_abusive_homes(synth_borough_small: Path) -> None:
    residents = _read(synth_borough_small, "residents.parquet")
    residency = _read(synth_borough_small, "residency.parquet")
    households = _read(synth_borough_small, "ground_truth/households.parquet")
    assert (residents["birth_date"] >= dt.date(2021, 1, 1)).sum() > 100  # births in the window
    assert residents["death_date"].notna().sum() > 20
    assert residency["end_date"].notna().mean() > 0.2  # people move out
    assert (residency["start_date"] > dt.date(2021, 1, 1)).mean() > 0.2  # and in
    split = households.dropna(subset=["split_from"])
    assert len(split) > 10
    # The person who leaves has a spell in the old household ending the day the new one starts,
    # at a different address.
    spells = residency.merge(split[["household_id", "split_from", "start_date"]], on="household_id", suffixes=("", "_new"))
    movers = spells[spells["start_date"] == spells["start_date_new"]]
    before = residency.merge(movers[["resident_id", "split_from", "start_date", "address_id"]],
                             left_on=["resident_id", "household_id", "end_date"],
                             right_on=["resident_id", "split_from", "start_date"], suffixes=("", "_new"))
    assert len(before) >= len(split) * 0.9
    assert (before["address_id"] != before["address_id_new"]).all()


# --- the planted signals ---------------------------------------------------------------------------


def test_door_replacements_rise_sharply_under_domestic_abuse_only_in_social_housing(synth_borough_small: Path) -> None:
    folder = synth_borough_small
    sql = f"""
    WITH hh AS (
        SELECT household_id, min(address_id) AS address_id, min(tenure) AS tenure,
               greatest(min(start_date), DATE '2021-01-01') AS s,
               max(coalesce(end_date, DATE '2026-01-01')) AS e
        FROM '{folder}/residency.parquet' GROUP BY household_id),
    abuse AS (
        SELECT household_id, start_date AS s, coalesce(end_date, DATE '2026-01-01') AS e
        FROM '{folder}/ground_truth/household_states.parquet' WHERE state = 'domestic_abuse'),
    exposure AS (
        SELECT hh.household_id, hh.tenure, (hh.e - hh.s) AS days,
               -- least/greatest skip NULLs in DuckDB, so households without abuse need the CASE.
               sum(CASE WHEN abuse.s IS NULL THEN 0
                        ELSE greatest(least(abuse.e, hh.e) - greatest(abuse.s, hh.s), 0) END) AS abuse_days
        FROM hh LEFT JOIN abuse USING (household_id) GROUP BY ALL),
    doors AS (
        SELECT hh.household_id, hh.tenure,
               EXISTS (SELECT 1 FROM abuse a WHERE a.household_id = hh.household_id
                       AND CAST(ev.event_time AS DATE) >= a.s AND CAST(ev.event_time AS DATE) < a.e) AS in_abuse
        FROM '{folder}/events.parquet' ev JOIN hh
          ON ev.address_id = hh.address_id AND CAST(ev.event_time AS DATE) >= hh.s AND CAST(ev.event_time AS DATE) < hh.e
        WHERE ev.event_type = 'door_replacement')
    SELECT x.social, x.abuse_days, x.other_days, coalesce(d.abuse_doors, 0) AS abuse_doors,
           coalesce(d.other_doors, 0) AS other_doors
    FROM (SELECT tenure IN ('council', 'housing_association') AS social, sum(abuse_days) AS abuse_days,
                 sum(days - abuse_days) AS other_days FROM exposure GROUP BY 1) x
    LEFT JOIN (SELECT tenure IN ('council', 'housing_association') AS social,
                      count(*) FILTER (in_abuse) AS abuse_doors, count(*) FILTER (NOT in_abuse) AS other_doors
               FROM doors GROUP BY 1) d USING (social)
    """
    rows = {r[0]: r[1:] for r in duckdb.sql(sql).fetchall()}
    abuse_days, other_days, abuse_doors, other_doors = rows[True]
    assert abuse_doors >= 10
    ratio = (abuse_doors / abuse_days) / (other_doors / other_days)
    assert ratio > 3
    events = _read(folder, "events.parquet")
    residency = _read(folder, "residency.parquet")
    private = set(residency.loc[residency["tenure"].isin(["private_rented", "owner_occupied"]), "address_id"])
    assert not events.loc[events["source"] == "housing_repairs", "address_id"].isin(private).any()


def test_outcome_rates_fall_in_published_england_ranges(synth_borough_small: Path) -> None:
    residency = _read(synth_borough_small, "residency.parquet")
    residents = _read(synth_borough_small, "residents.parquet").set_index("resident_id")
    outcomes = _read(synth_borough_small, "outcomes.parquet")
    birth = pd.to_datetime(residents.loc[residency["resident_id"], "birth_date"]).to_numpy()
    start = np.maximum(pd.to_datetime(residency["start_date"]).to_numpy(), np.datetime64("2021-01-01"))
    start = np.maximum(start, birth)
    end = pd.to_datetime(residency["end_date"].fillna(EXTRACT)).to_numpy()
    end = np.minimum(end, birth + np.timedelta64(int(18 * 365.25), "D"))
    child_years = np.clip((end - start).astype("timedelta64[D]").astype(int), 0, None).sum() / 365.25
    rates = outcomes["outcome_type"].value_counts() / child_years
    assert 0.035 <= rates["csc_referral"] <= 0.07  # ~5% of children a year
    assert 0.013 <= rates["s47_enquiry"] <= 0.03  # ~2%
    assert 0.0025 <= rates["child_protection_plan"] <= 0.008  # ~0.5%
    plans = outcomes[outcomes["outcome_type"] == "child_protection_plan"].dropna(subset=["end_time"])
    months = (plans["end_time"] - plans["outcome_time"]).dt.days / 30.44
    assert 7.5 <= months.median() <= 12.5
    assert outcomes.loc[outcomes["outcome_type"] != "child_protection_plan", "end_time"].isna().all()


def test_latent_states_drive_child_outcomes_strongly_in_the_standard_world(synth_borough_small: Path) -> None:
    stacked = _stacked_children(synth_borough_small, ["csc_referral"])
    ratio, low, _ = _rate_ratio_ci(stacked, "abuse")
    assert low > 2.0, ratio


def test_null_world_outcomes_are_independent_of_latent_states(null_borough: Path, synth_borough_small: Path) -> None:
    # Same seed: identical people and latent states, different outcome model.
    assert (null_borough / "ground_truth/household_states.parquet").read_bytes() == (
        synth_borough_small / "ground_truth/household_states.parquet"
    ).read_bytes()
    stacked = _stacked_children(null_borough, ["csc_referral"])
    for exposed in ("abuse", "any_adversity"):
        ratio, low, high = _rate_ratio_ci(stacked, exposed)
        assert low < 1 < high, (exposed, ratio)
    # Same marginal rates as the standard world.
    null_counts = _read(null_borough, "outcomes.parquet")["outcome_type"].value_counts()
    standard_counts = _read(synth_borough_small, "outcomes.parquet")["outcome_type"].value_counts()
    for kind in ("csc_referral", "s47_enquiry"):
        assert null_counts[kind] == pytest.approx(standard_counts[kind], rel=0.2), kind
    # And the oracle knows there is nothing to know.
    children = _children_at(null_borough, dt.date(2023, 1, 1))
    risk = oracle_risk(null_borough, children["resident_id"].tolist(), dt.date(2023, 1, 1), 6, ["child_protection_plan"])
    assert np.nanstd(risk) < 1e-12 and np.nanmean(risk) > 0


# --- recording bias ----------------------------------------------------------------------------------


def test_recording_bias_raises_the_groups_recorded_events_for_the_same_latent_state(
    biased_borough: Path, synth_borough_small: Path
) -> None:
    assert (biased_borough / "ground_truth/household_states.parquet").read_bytes() == (
        synth_borough_small / "ground_truth/household_states.parquet"
    ).read_bytes()
    truth = _read(synth_borough_small, "ground_truth/people.parquet").set_index("resident_id")

    def per_group(folder: Path, source: str) -> pd.Series:
        events = _read(folder, "events.parquet")
        chosen = events[(events["source"] == source) & events["resident_id"].notna()]
        black = truth.loc[chosen["resident_id"], "ethnicity"].to_numpy() == "Black"
        return pd.Series({"Black": black.sum(), "other": (~black).sum()})

    for source in ("police", "social_care"):
        standard, biased = per_group(synth_borough_small, source), per_group(biased_borough, source)
        assert biased["Black"] / standard["Black"] > 2.0, source
        assert biased["other"] / standard["other"] == pytest.approx(1.0, abs=0.2), source
    school_standard, school_biased = per_group(synth_borough_small, "ae"), per_group(biased_borough, "ae")
    assert school_biased["Black"] / school_standard["Black"] == pytest.approx(1.0, abs=0.15)
    manifest = json.loads((biased_borough / "manifest.json").read_text())
    assert manifest["generator"]["recording_bias"] == [
        {"attribute": "ethnicity", "group": "Black", "factor": 3.0, "sources": ["police", "social_care"]}
    ]


def test_recording_bias_option_parses_and_rejects_bad_forms() -> None:
    bias = parse_recording_bias("ethnicity=Black:1.8@police,social_care")
    assert (bias.attribute, bias.group, bias.factor, bias.sources) == ("ethnicity", "Black", 1.8, ("police", "social_care"))
    assert parse_recording_bias("sex=M:2").sources == DEFAULT_BIAS_SOURCES
    for bad, message in (
        ("ethnicity=Black", "not of the form"),
        ("ethnicity=Purple:2", "Purple"),
        ("ethnicity=Black:two", "not a number"),
        ("ethnicity=Black:-1", "factor"),
        ("ethnicity=Black:2@polic", "polic"),
        ("height=tall:2", "attribute"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_recording_bias(bad)


# --- the oracle -----------------------------------------------------------------------------------


def test_oracle_is_higher_in_adversity_and_calibrated_on_average(synth_borough_small: Path) -> None:
    frames = []
    for as_of in AS_OF_DATES:
        children = _children_at(synth_borough_small, as_of)
        children["referral"] = _had_outcome(synth_borough_small, children["resident_id"], as_of, 6, ["csc_referral"])
        children["cpp"] = _had_outcome(synth_borough_small, children["resident_id"], as_of, 6, ["child_protection_plan"])
        ids = children["resident_id"].tolist()
        children["p_referral"] = oracle_risk(synth_borough_small, ids, as_of, 6, ["csc_referral"])
        children["p_cpp"] = oracle_risk(synth_borough_small, ids, as_of, 6, ["child_protection_plan"])
        frames.append(children)
    stacked = pd.concat(frames, ignore_index=True)
    assert stacked[["p_referral", "p_cpp"]].notna().all().all()
    assert (stacked["p_cpp"] <= stacked["p_referral"]).all()  # every plan comes with a referral
    in_abuse = stacked.groupby("abuse")["p_cpp"].mean()
    assert in_abuse[True] > 4 * in_abuse[False]
    for label, risk in (("referral", "p_referral"), ("cpp", "p_cpp")):
        expected, observed = stacked[risk].sum(), stacked[label].sum()
        assert abs(observed - expected) < 3 * np.sqrt(expected) + 0.1 * expected, (label, observed, expected)
    assert roc_auc_score(stacked["cpp"], stacked["p_cpp"]) > 0.75
    assert roc_auc_score(stacked["referral"], stacked["p_referral"]) > 0.6


def test_oracle_chain_method_averages_the_state_over_the_horizon_and_stays_calibrated(synth_borough_small: Path) -> None:
    frames = []
    for as_of in HALF_YEARS[:-1]:
        children = _children_at(synth_borough_small, as_of)
        ids = children["resident_id"].tolist()
        children["label"] = _had_outcome(synth_borough_small, children["resident_id"], as_of, 6, ["csc_referral"])
        children["persist"] = oracle_risk(synth_borough_small, ids, as_of, 6, ["csc_referral"])
        children["chain"] = oracle_risk(synth_borough_small, ids, as_of, 6, ["csc_referral"], method="chain")
        frames.append(children)
    stacked = pd.concat(frames, ignore_index=True)
    expected, observed = stacked["chain"].sum(), stacked["label"].sum()
    assert abs(observed - expected) < 3 * np.sqrt(expected) + 0.1 * expected
    # Without adversity, states can only arrive over the horizon, so the chain's risk is never lower.
    adverse = stacked["any_adversity"]
    assert (stacked.loc[~adverse, "chain"] >= stacked.loc[~adverse, "persist"]).all()
    assert (stacked.loc[adverse, "chain"] != stacked.loc[adverse, "persist"]).mean() > 0.9
    # Over a single month the chain has no time to move: both methods agree.
    ids, as_of = stacked["resident_id"][:500].tolist(), HALF_YEARS[0]
    one_month = [oracle_risk(synth_borough_small, ids, as_of, 1, ["csc_referral"], method=m) for m in ("persist", "chain")]
    np.testing.assert_allclose(one_month[0], one_month[1], rtol=1e-12)
    with pytest.raises(ValueError, match="method"):
        oracle_risk(synth_borough_small, stacked["resident_id"][:3].tolist(), HALF_YEARS[0], 6, ["csc_referral"], method="x")


def test_transition_matrices_match_the_simulated_chain() -> None:
    from earlysignal.synth.adversity import chain_parameters, simulate_states, transition_matrices

    matrices = transition_matrices(chain_parameters())
    assert np.allclose(matrices.sum(axis=-1), 1.0)
    rng = np.random.default_rng(0)
    n = 100_000
    for tenure, kind, start in ((0, 3, 0), (0, 3, 11), (3, 0, 6)):
        masks = simulate_states(
            rng, np.full(n, tenure, dtype=np.int8), np.full(n, kind, dtype=np.int8), 2,
            start_month=np.zeros(n, dtype=np.int64), initial=np.full(n, start, dtype=np.uint8),
        ).masks
        observed = np.bincount(masks[:, 1], minlength=16) / n
        assert np.abs(observed - matrices[tenure, kind, start]).max() < 0.005


def test_oracle_is_nan_for_people_not_living_in_the_borough_and_rejects_unknown_ids(synth_borough_small: Path) -> None:
    residency = _read(synth_borough_small, "residency.parquet")
    later = residency.loc[residency["start_date"] > dt.date(2024, 1, 1), "resident_id"]
    moved_in_later = sorted(set(later) - set(residency.loc[residency["start_date"] <= dt.date(2022, 1, 1), "resident_id"]))[:5]
    risk = oracle_risk(synth_borough_small, moved_in_later, dt.date(2022, 1, 1), 6, ["csc_referral"])
    assert np.isnan(risk).all()
    with pytest.raises(Exception, match="not in residents"):
        oracle_risk(synth_borough_small, ["R-unknown"], dt.date(2022, 1, 1), 6, ["csc_referral"])
    with pytest.raises(Exception, match="unknown outcome types"):
        oracle_risk(synth_borough_small, moved_in_later, dt.date(2022, 1, 1), 6, ["arrest"])


# --- the command ------------------------------------------------------------------------------------


def test_synth_command_writes_a_borough_and_explains_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "borough"
    result = runner.invoke(
        app,
        ["synth", "--residents", "1500", "--years", "2", "--seed", "3", "--out", str(out),
         "--recording-bias", "ethnicity=Black:1.8@police", "--world", "null"],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extract_date"] == "2026-01-01" and manifest["window_start"] == "2024-01-01"
    assert manifest["generator"]["world"] == "null" and manifest["generator"]["seed"] == 3
    assert (out / "ground_truth" / "hazards.json").exists()
    bad = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--recording-bias", "ethnicity=Black"])
    assert bad.exit_code == 2 and "--recording-bias" in bad.output and "Traceback" not in bad.output
    bad_world = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--world", "nul"])
    assert bad_world.exit_code == 2 and "--world" in bad_world.output


# --- internal invariants ----------------------------------------------------------------------------


def test_state_pieces_tile_each_interval_exactly_and_carry_the_month_state() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from earlysignal.synth.adversity import intersect_runs, state_runs

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        n_households = data.draw(st.integers(1, 5))
        n_months = data.draw(st.integers(1, 8))
        masks = np.array(
            data.draw(st.lists(st.lists(st.integers(0, 3), min_size=n_months + 1, max_size=n_months + 1),
                               min_size=n_households, max_size=n_households)),
            dtype=np.uint8,
        )
        month_starts = np.cumsum([0] + data.draw(st.lists(st.integers(28, 31), min_size=n_months + 1,
                                                          max_size=n_months + 1))).astype(np.int64) + 1000
        runs = state_runs(masks, month_starts, first_month=1)  # month 0 is burn-in
        lo, hi = int(month_starts[1]), int(month_starts[-1])
        n = data.draw(st.integers(1, 6))
        household = np.array(data.draw(st.lists(st.integers(0, n_households - 1), min_size=n, max_size=n)))
        a = np.array(data.draw(st.lists(st.integers(lo, hi - 1), min_size=n, max_size=n)))
        b = np.array([data.draw(st.integers(int(x) + 1, hi)) for x in a])
        interval, start, end, mask = intersect_runs(household, a, b, runs)
        for i in range(n):
            mine = interval == i
            assert (end[mine] - start[mine]).sum() == b[i] - a[i]
            assert start[mine].min() == a[i] and end[mine].max() == b[i]
            assert (start[mine][1:] == end[mine][:-1]).all()  # contiguous, no overlaps
            for s, m in zip(start[mine], mask[mine], strict=True):
                month = np.searchsorted(month_starts, s, side="right") - 1
                assert m == masks[household[i], month]

    check()


def test_a_child_on_a_plan_never_starts_another_and_plans_are_for_children(synth_borough_small: Path) -> None:
    outcomes = _read(synth_borough_small, "outcomes.parquet")
    residents = _read(synth_borough_small, "residents.parquet").set_index("resident_id")
    plans = outcomes[outcomes["outcome_type"] == "child_protection_plan"].sort_values(["resident_id", "outcome_time"])
    previous_end = plans.groupby("resident_id")["end_time"].shift()
    assert not (plans["outcome_time"] < previous_end).any()
    birth = pd.to_datetime(residents.loc[plans["resident_id"], "birth_date"]).to_numpy()
    age = (plans["outcome_time"].to_numpy() - birth).astype("timedelta64[D]").astype(int) / 365.25
    assert (age < 18).all()
    # Each plan comes with the referral and s47 enquiry that led to it, a few weeks earlier.
    referrals = outcomes[outcomes["outcome_type"] == "csc_referral"]
    paired = plans.merge(referrals, on="resident_id", suffixes=("", "_referral"))
    gap = (paired["outcome_time"] - paired["outcome_time_referral"]).dt.days
    led_to_plan = paired[(gap >= 14) & (gap <= 42)]
    assert len(led_to_plan.drop_duplicates(["resident_id", "outcome_time"])) >= 0.9 * len(plans)


def test_null_world_shares_people_and_events_with_the_standard_world(null_borough: Path, synth_borough_small: Path) -> None:
    for name in ("residents.parquet", "residency.parquet", "events.parquet"):
        assert (null_borough / name).read_bytes() == (synth_borough_small / name).read_bytes(), name


def test_recording_bias_in_social_care_also_raises_the_groups_referrals_but_not_plans(
    biased_borough: Path, synth_borough_small: Path
) -> None:
    truth = _read(synth_borough_small, "ground_truth/people.parquet").set_index("resident_id")

    def counts(folder: Path) -> pd.DataFrame:
        outcomes = _read(folder, "outcomes.parquet")
        outcomes["black"] = truth.loc[outcomes["resident_id"], "ethnicity"].to_numpy() == "Black"
        return outcomes.groupby(["outcome_type", "black"]).size()

    standard, biased = counts(synth_borough_small), counts(biased_borough)
    assert biased[("csc_referral", True)] / standard[("csc_referral", True)] > 1.8
    assert biased[("csc_referral", False)] / standard[("csc_referral", False)] == pytest.approx(1.0, abs=0.15)
    plans_standard = standard[("child_protection_plan", False)] + standard[("child_protection_plan", True)]
    plans_biased = biased[("child_protection_plan", False)] + biased[("child_protection_plan", True)]
    assert plans_biased == pytest.approx(plans_standard, rel=0.3)
    hazards = json.loads((biased_borough / "ground_truth" / "hazards.json").read_text())
    biased_processes = {p["name"] for p in hazards["processes"] if p["recorded_by"] == "social_care"}
    assert biased_processes == {"csc_referral", "s47_enquiry"}

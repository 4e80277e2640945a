"""Every engine's feature matrix agrees value-for-value with a naive pandas reference (each test runs
on DuckDB and on Spark through the `feature_engine` fixture)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from earlysignal.features import build_feature_matrix
from features_borough import every_aggregate_config, random_borough
from reference_features import describe_differences, reference_matrix


@pytest.fixture(scope="module")
def borough():
    return random_borough(seed=1, households=25, events_per_resident=40)


def _assert_agrees(config, borough, engine, as_of_dates=None):
    built = build_feature_matrix(config, borough, as_of_dates=as_of_dates, engine=engine)
    expected = reference_matrix(config, borough, as_of_dates=as_of_dates)
    actual = built.frame
    assert list(actual["resident_id"]) == list(expected["resident_id"]), "cohort rows differ from the reference"
    assert list(actual["as_of"]) == list(expected["as_of"])
    assert list(actual["label"].astype(object).fillna(-1)) == list(expected["label"].astype(object).fillna(-1))
    diff = describe_differences(expected, actual, built.feature_columns)
    assert not diff, "engine disagrees with the naive reference:\n" + diff
    return built


def test_every_aggregate_and_scope_matches_the_naive_reference(borough, feature_engine):
    config = every_aggregate_config()
    built = _assert_agrees(config, borough, feature_engine)
    aggregates = {f["aggregate"] for f in built.metadata["features"]}
    scopes = {f["scope"] for f in built.metadata["features"]}
    assert {"count", "sum", "mean", "max", "min", "last", "first", "distinct_types", "days_since_last",
            "days_since_first", "trend"} <= aggregates
    assert {"resident", "household", "address", "static"} <= scopes
    # The comparison means something only if features actually vary.
    varying = [c for c in built.feature_columns if built.frame[c].nunique() > 1]
    assert len(varying) > 0.6 * len(built.feature_columns)


def test_off_grid_as_of_dates_match_the_naive_reference(borough, feature_engine):
    # Scoring asks for one arbitrary date; mid-month dates exercise the window edges differently.
    config = every_aggregate_config()
    _assert_agrees(config, borough, feature_engine, as_of_dates=[dt.date(2021, 3, 17)])
    _assert_agrees(config, borough, feature_engine, as_of_dates=[dt.date(2020, 2, 29), dt.date(2023, 8, 9)])


def test_default_borough_config_matches_the_naive_reference(borough, feature_engine):
    from earlysignal.config import load_config

    config = load_config("conf/borough.yaml")
    dates = config.as_of_dates()[::5]
    built = _assert_agrees(config, borough, feature_engine, as_of_dates=dates)
    assert np.all(np.isfinite(built.frame[built.feature_columns].to_numpy(dtype=np.float64)))


def test_residents_not_living_in_the_borough_match_the_reference_when_residency_is_not_required(borough, feature_engine):
    # Without a covering spell there is no household or address: counts are 0, recency and the
    # household/address static features are missing, tenure is all zeros.
    config = every_aggregate_config(
        cohort__require_residency=False, cohort__exclude_open_outcomes=[], cohort__max_age=30
    )
    built = _assert_agrees(config, borough, feature_engine, as_of_dates=[dt.date(2016, 6, 1), dt.date(2024, 1, 1)])
    unhoused = built.frame["static__household_size"].isna()
    assert unhoused.any() and (~unhoused).any()

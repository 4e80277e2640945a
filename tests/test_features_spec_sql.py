"""Feature names and descriptions read well; the SQL layer renders per dialect and runs on an engine."""

from __future__ import annotations

import bisect
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earlysignal.config import config_from_dict, load_config
from earlysignal.engines import Dialect, get_engine
from earlysignal.errors import ConfigError, EarlySignalError
from earlysignal.features.spec import event_labels, feature_definitions, window_phrase
from earlysignal.features.sql import bucket_expression, cohort_sql


def _family(**overrides):
    family = {"name": "housing", "source": "housing_repairs", "event_types": ["door_replacement"],
              "scopes": ["address"], "windows": ["12m"], "aggregates": ["count"]}
    family.update(overrides)
    return config_from_dict({"temporal": {"first_as_of": "2024-01-01", "last_as_of": "2024-01-01"},
                             "label": {"outcome_types": ["child_protection_plan"], "horizon_months": 6},
                             "features": {"static": [], "families": [family]}})


def test_names_follow_scope_family_type_aggregate_window_and_describe_themselves():
    [door] = feature_definitions(_family())
    assert door.name == "address__housing__door_replacement__count__12m"
    assert door.description.format(value=4) == "4 door replacements at home in the last 12 months"
    police = _family(name="police", source="police", event_types=["callout"], scopes=["household"],
                     windows=["3m"], aggregates=["days_since_last", "trend"])
    described = {d.name: d.description.format(value=3) for d in feature_definitions(police)}
    assert described == {
        "household__police__callout__days_since_last__all": "3 days since the last police call-out in the household",
        "household__police__callout__trend__3m":
            "police call-outs in the household in the last 3 months rose by 3 on the 3 months before",
    }


def test_unknown_event_types_fall_back_to_readable_words():
    assert event_labels("libraries", "late_return") == ("late return events", "late return event")
    assert [window_phrase(w) for w in ("1m", "3m", "12m", "1y", "3y", "24m", "all")] == [
        "the last month", "the last 3 months", "the last 12 months", "the last 12 months", "the last 3 years",
        "the last 2 years", "on record",
    ]
    # Day windows say days (weeks under a month): a 365-day window is not "the last 12 months".
    assert [window_phrase(w) for w in ("1d", "7d", "28d", "30d", "90d", "365d")] == [
        "the last day", "the last week", "the last 4 weeks", "the last 30 days", "the last 90 days", "the last 365 days",
    ]


def test_imputed_flags_exist_only_where_a_value_can_be_filled_in():
    config = _family(aggregates=["count", "days_since_last", "mean"],
                     missing={"days_since_last": {"rule": "constant", "value": 9999}})
    names = [d.name for d in feature_definitions(config)]
    assert "address__housing__door_replacement__days_since_last__all_imputed" in names
    assert not [n for n in names if "count" in n and n.endswith("_imputed")]
    assert not [n for n in names if "mean" in n and n.endswith("_imputed")]  # default rule for mean: null


def test_a_missing_rule_on_an_always_defined_aggregate_is_a_config_error():
    with pytest.raises(ConfigError, match="missing.count"):
        feature_definitions(_family(missing={"count": {"rule": "constant", "value": 1}}))


def test_default_config_generates_a_few_hundred_uniquely_named_features():
    definitions = feature_definitions(load_config("conf/borough.yaml"))
    names = [d.name for d in definitions]
    assert 150 <= len(names) <= 300 and len(set(names)) == len(names)
    for definition in definitions:
        text = definition.description.format(value=2)
        assert "{" not in text and "_" not in text, definition.name


@settings(max_examples=40, deadline=None)
@given(
    thresholds=st.lists(st.integers(0, 10_000), min_size=0, max_size=40, unique=True),
    probe=st.integers(-10, 10_010),
)
def test_bucket_expression_counts_thresholds_at_or_below_the_value(thresholds, probe):
    thresholds = sorted(thresholds)
    base = dt.datetime(2000, 1, 1)
    stamps = [base + dt.timedelta(days=t) for t in thresholds]
    value = base + dt.timedelta(days=probe)
    engine = get_engine("duckdb")
    try:
        sql = f"SELECT {bucket_expression(engine.dialect, 'CAST(x AS TIMESTAMP)', stamps)} AS b FROM (SELECT TIMESTAMP '{value}' AS x)"
        assert engine.run(sql).column("b")[0].as_py() == bisect.bisect_right(stamps, value)
    finally:
        engine.close()


def test_dialects_differ_only_where_backends_do():
    ansi = cohort_sql(Dialect(), min_age=0, max_age=17, require_residency=True, exclude_open_outcomes=["child_protection_plan"])
    duck = cohort_sql(get_engine("duckdb").dialect, min_age=0, max_age=17, require_residency=True,
                      exclude_open_outcomes=["child_protection_plan"])
    assert "LEFT ANTI JOIN" in ansi and "LEFT SEMI JOIN" in ansi
    assert "LEFT ANTI" not in duck and " ANTI JOIN" in duck
    assert Dialect().string_literal("children's") == "'children''s'"


def test_engine_runs_sql_on_registered_tables_and_logs_it():
    import pandas as pd

    with get_engine("duckdb") as engine:
        result = engine.run("SELECT SUM(x) AS total FROM t", tables={"t": pd.DataFrame({"x": [1, 2, 3]})})
        assert result.column("total")[0].as_py() == 6
        assert engine.executed_sql == ["SELECT SUM(x) AS total FROM t"]


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(EarlySignalError, match="unknown engine 'presto'; available engines: duckdb, spark"):
        get_engine("presto")

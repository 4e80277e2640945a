"""Reasons: exact TreeSHAP contributions rendered as plain English from the feature descriptions."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap
from synthetic_matrix import FEATURES, make_matrix

from earlysignal.explain import describe, format_value, top_reasons
from earlysignal.modeling.calibration import Calibrator
from earlysignal.modeling.pyfunc_model import EarlySignalModel


@pytest.fixture(scope="module")
def small_model():
    fm = make_matrix(residents=1500, n_as_of=3, unlabelled_tail=0, seed=5)
    X = fm.frame[fm.feature_columns].to_numpy(dtype=float)
    y = fm.frame["label"].astype(int).to_numpy()
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "deterministic": True, "seed": 1},
                        lgb.Dataset(X, y, feature_name=fm.feature_columns), num_boost_round=30)
    calibrator = Calibrator("platt").fit(booster.predict(X, raw_score=True), y)
    return fm, EarlySignalModel.from_parts(booster, calibrator, fm.metadata)


def test_pred_contrib_equals_shap_tree_explainer_on_the_raw_booster(small_model):
    fm, model = small_model
    rows = fm.frame.iloc[:300]
    contributions = model.contributions(rows)
    explainer = shap.TreeExplainer(model.booster)
    values = explainer.shap_values(rows[fm.feature_columns].to_numpy(dtype=float))
    np.testing.assert_allclose(contributions[:, :-1], values, atol=1e-6)
    np.testing.assert_allclose(contributions[:, -1], explainer.expected_value, atol=1e-6)


def test_contributions_add_up_to_the_raw_margin_the_score_is_calibrated_from(small_model):
    fm, model = small_model
    rows = fm.frame.iloc[:200]
    np.testing.assert_allclose(model.contributions(rows).sum(axis=1), model.raw_margin(rows), atol=1e-9)
    assert np.all(np.diff(model.predict_proba(rows)[np.argsort(model.raw_margin(rows))]) >= -1e-12)


def test_reasons_are_the_top_positive_contributions_in_plain_english():
    columns = [name for name, _ in FEATURES]
    metadata = {"features": [{"name": n, "description": d} for n, d in FEATURES], "feature_columns": columns}
    values = pd.DataFrame([[3, 4, 1, 200, 0, 9]], columns=columns, dtype=float)
    contributions = np.array([[0.2, 0.9, -0.5, 0.3, 0.0, 0.05, -2.0]])  # last: bias
    reasons = top_reasons(contributions, values, columns, metadata)
    assert reasons.loc[0, "reason_1"] == "4 door replacements at home in the last 12 months"
    assert reasons.loc[0, "reason_2"] == "200 days since the last police call-out to the household"
    assert reasons.loc[0, "reason_3"] == "3 children's social care contacts for the household, ever"
    assert list(reasons.loc[0, ["contribution_1", "contribution_2", "contribution_3"]]) == [0.9, 0.3, 0.2]


def test_imputed_values_and_imputed_flags_are_never_given_as_reasons():
    columns = [name for name, _ in FEATURES]
    metadata = {"features": [{"name": n, "description": d} for n, d in FEATURES], "feature_columns": columns}
    # No police call-out on record: days_since_last holds the placeholder 9999 and its flag is 1.
    values = pd.DataFrame([[0, 0, 0, 9999, 1, 9]], columns=columns, dtype=float)
    contributions = np.array([[0.0, 0.0, 0.0, 0.8, 0.7, 0.1, -2.0]])
    reasons = top_reasons(contributions, values, columns, metadata)
    assert reasons.loc[0, "reason_1"] == "aged 9"
    assert reasons.loc[0, "reason_2"] == "" and reasons.loc[0, "reason_3"] == ""
    assert pd.isna(reasons.loc[0, "contribution_2"])


def test_a_value_that_states_no_concern_is_never_a_reason():
    features = [
        ("school_absence_count", "count", "{value} months with school absence in the household in the last 3 months"),
        ("school_absence_trend", "trend", "months with school absence in the last 3 months rose by {value} on the 3 months before"),
        ("arrears_sum", "sum", "£{value} owed in total across council tax arrears reminders in the last 3 years"),
        ("private_rented", "attribute", "home is privately rented (1 = yes, 0 = no): {value}"),
        ("repairs_count", "count", "{value} general repairs at home in the last 3 years"),
    ]
    columns = [name for name, _, _ in features]
    metadata = {"features": [{"name": n, "aggregate": a, "description": d} for n, a, d in features],
                "feature_columns": columns}
    values = pd.DataFrame([[0, -1, 0, 0, 2], [0, 0, 0, 1, 0], [3, 2, 120, 0, 0]], columns=columns, dtype=float)
    contributions = np.array([[0.9, 0.8, 0.7, 0.6, 0.1, -2.0], [0.9, 0.8, 0.7, 0.6, 0.5, -2.0],
                              [0.3, 0.2, 0.1, 0.9, 0.9, -2.0]])
    reasons = top_reasons(contributions, values, columns, metadata)
    assert reasons[["reason_1", "reason_2", "reason_3"]].values.tolist() == [
        ["2 general repairs at home in the last 3 years", "", ""],
        ["home is privately rented", "", ""],
        ["3 months with school absence in the household in the last 3 months",
         "months with school absence in the last 3 months rose by 2 on the 3 months before",
         "£120.00 owed in total across council tax arrears reminders in the last 3 years"],
    ]


def test_equal_contributions_go_to_the_feature_listed_first():
    columns = [name for name, _ in FEATURES]
    metadata = {"features": [{"name": n, "description": d} for n, d in FEATURES], "feature_columns": columns}
    values = pd.DataFrame([[1, 1, 1, 5, 0, 3]], columns=columns, dtype=float)
    contributions = np.array([[0.4, 0.4, 0.4, 0.0, 0.0, 0.0, 0.0]])
    reasons = top_reasons(contributions, values, columns, metadata)
    assert reasons.loc[0, "reason_1"].endswith("for the household, ever")
    assert reasons.loc[0, "reason_2"].endswith("at home in the last 12 months")


def test_values_read_naturally():
    assert format_value(4.0) == "4"
    assert format_value(2.71) == "2.7"
    assert format_value(12000) == "12,000"
    assert describe("x", 3, {}) == "x = 3"


def test_a_missing_value_is_never_given_as_a_reason():
    # A lab's last value with no test in the window is null; LightGBM still routes it down a branch
    # and may give it a positive contribution, but "albumin last value unknown g/dl" is no reason.
    columns = ["labs__albumin__last__365d", "labs__bilirubin__last__all"]
    metadata = {"features": [
        {"name": columns[0], "description": "albumin last value {value} g/dl in the last 12 months"},
        {"name": columns[1], "description": "bilirubin last value {value} mg/dl on record"},
    ], "feature_columns": columns}
    values = pd.DataFrame([[np.nan, 3.2]], columns=columns, dtype=float)
    reasons = top_reasons(np.array([[0.9, 0.4, -1.0]]), values, columns, metadata)
    assert reasons.loc[0, "reason_1"] == "bilirubin last value 3.2 mg/dl on record"
    assert reasons.loc[0, "reason_2"] == ""


def test_a_row_left_with_only_repeated_facts_gets_empty_reasons_not_a_repeat():
    metadata = {"features": [
        {"name": f"n_{w}", "family": "police", "scope": "household", "event_type": "callout", "aggregate": "count",
         "window": w, "description": "{value} call-outs " + w} for w in ("365d", "3y")
    ]}
    columns = ["n_365d", "n_3y"]
    values = pd.DataFrame([[2, 2]], columns=columns, dtype=float)
    reasons = top_reasons(np.array([[0.3, 0.2, 0.0]]), values, columns, metadata)
    assert list(reasons.loc[0, ["reason_1", "reason_2", "reason_3"]]) == ["2 call-outs 365d", "", ""]
    assert reasons["contribution_2"].isna().all() and reasons["contribution_3"].isna().all()

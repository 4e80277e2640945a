"""The temporal split plan: every test as_of is scored by a model that only saw closed label windows."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earlysignal.timesplits import SplitPlanError, add_months, plan_figure, plan_splits, plan_table

QUARTERS = [add_months(dt.date(2019, 1, 1), 3 * i) for i in range(24)]


def _plan(**overrides):
    args = dict(horizon_months=6, history_years=4, n_test_splits=4, validation_as_of_count=1, calibration_as_of_count=1)
    args.update(overrides)
    return plan_splits(QUARTERS, **args)


def test_add_months_clamps_to_the_end_of_shorter_months():
    assert add_months(dt.date(2024, 1, 31), 1) == dt.date(2024, 2, 29)
    assert add_months(dt.date(2024, 11, 15), 3) == dt.date(2025, 2, 15)
    assert add_months(dt.date(2024, 3, 1), -6) == dt.date(2023, 9, 1)


def test_test_dates_are_the_latest_labelled_as_of_dates_oldest_first():
    plan = _plan()
    assert [s.test[0] for s in plan.splits] == QUARTERS[-4:]


def test_every_training_label_window_closes_before_its_test_date():
    plan = _plan()
    for split in plan.splits:
        for day in split.training_dates:
            assert add_months(day, 6) <= split.test[0]


def test_validation_is_the_newest_slice_and_calibration_the_one_before():
    plan = _plan(validation_as_of_count=2, calibration_as_of_count=1)
    split = plan.splits[0]
    training = sorted(split.training_dates)
    assert split.validation == tuple(training[-2:])
    assert split.calibration == tuple(training[-3:-2])
    assert max(split.fit) < min(split.calibration) < min(split.validation)


def test_training_history_is_limited_to_history_years_before_the_newest_training_date():
    plan = _plan(history_years=2)
    for split in plan.splits:
        newest = max(split.training_dates)
        assert min(split.training_dates) >= add_months(newest, -24)
        assert len(split.training_dates) == 9  # quarterly: 24 months back inclusive


def test_final_model_trains_on_the_newest_labelled_dates_and_has_no_test():
    plan = _plan()
    assert plan.final.test == ()
    assert plan.final.validation == (QUARTERS[-1],)
    assert plan.final.calibration == (QUARTERS[-2],)


def test_too_few_labelled_dates_is_a_clear_error():
    with pytest.raises(SplitPlanError, match="n_test_splits=4"):
        plan_splits(QUARTERS[:3], horizon_months=6, history_years=4, n_test_splits=4)
    with pytest.raises(SplitPlanError, match="need at least 3"):
        plan_splits(QUARTERS[:5], horizon_months=6, history_years=4, n_test_splits=3)


@settings(max_examples=40, deadline=None)
@given(
    n_dates=st.integers(8, 30),
    step=st.sampled_from([1, 3, 6]),
    horizon=st.integers(1, 12),
    history=st.floats(1, 6),
    n_test=st.integers(1, 4),
    n_val=st.integers(1, 2),
    n_cal=st.integers(1, 2),
)
def test_any_feasible_plan_has_disjoint_roles_and_no_label_window_past_the_test(
    n_dates, step, horizon, history, n_test, n_val, n_cal
):
    dates = [add_months(dt.date(2018, 1, 1), step * i) for i in range(n_dates)]
    try:
        plan = plan_splits(dates, horizon_months=horizon, history_years=history, n_test_splits=n_test,
                           validation_as_of_count=n_val, calibration_as_of_count=n_cal)
    except SplitPlanError:
        return  # infeasible grids must fail loudly, which they did
    for split in plan.splits:
        roles = [set(split.fit), set(split.validation), set(split.calibration), set(split.test)]
        assert sum(len(r) for r in roles) == len(set().union(*roles))
        assert all(add_months(d, horizon) <= split.test[0] for d in split.training_dates)
        assert len(split.validation) == n_val and len(split.calibration) == n_cal and split.fit


def test_plan_renders_as_a_table_and_a_chart():
    plan = _plan()
    table = plan_table(plan)
    assert table.row_count == 5
    figure = plan_figure(plan)
    assert len(figure.axes[0].collections) > 0
    assert plan.to_dict()["splits"][0]["test"] == [QUARTERS[-4].isoformat()]

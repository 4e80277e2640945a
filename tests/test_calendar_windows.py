"""Calendar-month feature windows: '3m', '12m' and '3y' are [as_of minus N calendar months, as_of), so a
monthly return stamped on the 1st is counted the same number of times at every as_of on the 1st, in leap
years and not (docs/adr/0020-calendar-windows.md). Day windows ('90d', '365d') stay fixed lengths."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from earlysignal.config import config_from_dict
from earlysignal.features import build_feature_matrix
from earlysignal.windows import WindowLength, add_calendar_months, window_length
from features_borough import typed

EVENT_COLUMNS = ["event_id", "resident_id", "address_id", "source", "event_type", "event_time", "known_at", "value"]
# As_of dates on the 1st: either side of 29 Feb 2020 and 29 Feb 2024, and every quarter of 2021.
AS_OF_DATES = [dt.date(2020, 1, 1), dt.date(2020, 3, 1), dt.date(2020, 4, 1), dt.date(2021, 1, 1), dt.date(2021, 3, 1),
               dt.date(2021, 4, 1), dt.date(2021, 7, 1), dt.date(2021, 10, 1), dt.date(2024, 3, 1)]


def _config(windows: list[str], aggregates: list[str], first_as_of: dt.date = dt.date(2020, 1, 1)):
    return config_from_dict({
        "temporal": {"first_as_of": first_as_of.isoformat(), "last_as_of": "2024-04-01", "frequency_months": 1},
        "cohort": {"min_age": 0, "max_age": 17},
        "label": {"name": "plan", "outcome_types": ["child_protection_plan"], "horizon_months": 6},
        "features": {"static": [], "families": [{
            "name": "school", "source": "school", "event_types": ["absence"], "scopes": ["resident"],
            "windows": windows, "aggregates": aggregates,
        }]},
    })


def _pupil(event_days: list[dt.date], manifest: dict | None = None):
    """One child living in the borough since 2010 with one school absence record (value 2) on each day."""
    events = [(f"E{i}", "C1", None, "school", "absence", dt.datetime.combine(day, dt.time()),
               dt.datetime.combine(day, dt.time()), 2.0) for i, day in enumerate(event_days)]
    borough = typed({
        "residents": pd.DataFrame([{"resident_id": "C1", "birth_date": dt.date(2012, 6, 1), "death_date": None,
                                    "sex": "F", "ethnicity": None, "disability": None}]),
        "residency": pd.DataFrame([{"resident_id": "C1", "household_id": "H1", "address_id": "A1",
                                    "start_date": dt.date(2012, 6, 1), "end_date": None, "tenure": "council"}]),
        "events": pd.DataFrame(events, columns=EVENT_COLUMNS),
        "outcomes": pd.DataFrame([], columns=["resident_id", "outcome_type", "outcome_time", "known_at", "end_time"]),
    })
    if manifest is not None:
        borough.manifest = manifest
    return borough


def _monthly_returns() -> list[dt.date]:
    return [dt.date(year, month, 1) for year in range(2015, 2026) for month in range(1, 13)]


def test_twelve_month_window_always_counts_twelve_monthly_records_in_leap_and_other_years(feature_engine):
    config = _config(["3m", "12m", "3y", "90d", "365d"], ["count", "sum", "trend"])
    built = build_feature_matrix(config, _pupil(_monthly_returns()), as_of_dates=AS_OF_DATES, engine=feature_engine)
    frame = built.frame.set_index("as_of")
    assert [d.date() for d in frame.index] == AS_OF_DATES

    def column(name: str) -> list[float]:
        return frame[f"resident__school__absence__{name}"].tolist()

    n = len(AS_OF_DATES)
    assert column("count__12m") == [12.0] * n
    assert column("count__3m") == [3.0] * n
    assert column("count__3y") == [36.0] * n
    assert column("sum__12m") == [24.0] * n  # 12 records of value 2
    assert column("trend__12m") == [0.0] * n  # 2 x 12 - 24 in the 24 months: no change, no trend
    assert column("trend__3m") == [0.0] * n
    # The defect calendar windows remove: a 365-day window back from 1 Mar 2020 starts on 2 Mar 2019 (the
    # year holds 29 Feb), so it misses that March's record; 90 days hold 3 records only when the 3 months
    # before as_of have 90 days (Dec-Feb and Jan-Mar of a year without 29 Feb).
    assert column("count__365d") == [12.0, 11.0, 11.0, 11.0, 12.0, 12.0, 12.0, 12.0, 11.0]
    assert column("count__90d") == [2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 2.0, 2.0, 2.0]


def test_calendar_window_includes_its_first_day_and_excludes_as_of(feature_engine):
    # 12m at 1 Mar 2021 is [1 Mar 2020, 1 Mar 2021): the record on the start day counts, the one on as_of does not.
    days = [dt.date(2020, 2, 29), dt.date(2020, 3, 1), dt.date(2021, 2, 28), dt.date(2021, 3, 1)]
    config = _config(["12m"], ["count"])
    built = build_feature_matrix(config, _pupil(days), as_of_dates=[dt.date(2021, 3, 1)], engine=feature_engine)
    assert built.frame["resident__school__absence__count__12m"].tolist() == [2.0]


def test_month_window_from_the_31st_starts_on_the_last_day_of_a_shorter_month():
    # 3 months before 31 May is 28 Feb (29 Feb in 2024): that day counts, the day before does not.
    days = [dt.date(2021, 2, 27), dt.date(2021, 2, 28), dt.date(2024, 2, 28), dt.date(2024, 2, 29)]
    config = _config(["3m"], ["count"], first_as_of=dt.date(2021, 1, 1))
    built = build_feature_matrix(config, _pupil(days), as_of_dates=[dt.date(2021, 5, 31), dt.date(2024, 5, 31)])
    assert built.frame["resident__school__absence__count__3m"].tolist() == [1.0, 1.0]


def test_calendar_window_reaching_before_the_source_data_start_is_null():
    # School records begin 1 Mar 2020: at 1 Mar 2021 a 12-month window starts exactly there (complete), a
    # 13-month window and the 24 months a 12-month trend compares do not.
    days = [dt.date(2020, month, 1) for month in range(3, 13)] + [dt.date(2021, 1, 1), dt.date(2021, 2, 1)]
    config = _config(["12m", "13m"], ["count", "trend"])
    manifest = {"data_start": "2015-01-01", "source_data_starts": {"school": "2020-03-01"}}
    built = build_feature_matrix(config, _pupil(days, manifest), as_of_dates=[dt.date(2021, 3, 1)])
    row = built.frame.iloc[0]
    assert row["resident__school__absence__count__12m"] == 12.0
    assert np.isnan(row["resident__school__absence__count__13m"])
    assert np.isnan(row["resident__school__absence__trend__12m"])
    assert built.metadata["windows_before_data_start"] == {
        "resident__school__absence__count__13m": 1,
        "resident__school__absence__trend__12m": 1,
        "resident__school__absence__trend__13m": 1,
    }


@pytest.mark.parametrize(("as_of", "window", "start"), [
    (dt.date(2021, 3, 1), "12m", dt.date(2020, 3, 1)),
    (dt.date(2020, 3, 1), "12m", dt.date(2019, 3, 1)),
    (dt.date(2021, 5, 31), "3m", dt.date(2021, 2, 28)),
    (dt.date(2024, 5, 31), "3m", dt.date(2024, 2, 29)),
    (dt.date(2024, 2, 29), "1y", dt.date(2023, 2, 28)),
    (dt.date(2024, 1, 1), "3y", dt.date(2021, 1, 1)),
    (dt.date(2020, 3, 1), "365d", dt.date(2019, 3, 2)),
])
def test_window_start_rule(as_of, window, start):
    length = window_length(window)
    assert length is not None and length.start(as_of) == start
    epoch = dt.date(1970, 1, 1)
    assert length.start_days(np.array([(as_of - epoch).days])).tolist() == [(start - epoch).days]


def test_window_starts_never_decrease_as_as_of_moves_on():
    # The builder's bucket lookup needs start(as_of) non-decreasing, clamping included (29, 30, 31 May -> 28 Feb).
    days = np.arange(18_000, 20_000)
    for length in (WindowLength("m", 1), WindowLength("m", 3), WindowLength("m", 12), WindowLength("m", 36)):
        starts = length.start_days(days)
        assert np.all(np.diff(starts) >= 0)
        assert np.all(starts < days)
    assert add_calendar_months(dt.date(2021, 5, 29), -3) == add_calendar_months(dt.date(2021, 5, 31), -3)

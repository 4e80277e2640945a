"""Category codes with characters LightGBM refuses in feature names (e.g. "US:NIH") still train."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from test_training import small_config

from earlysignal.modeling.train import _fit_calibrated_booster, _Labelled, lightgbm_feature_names
from earlysignal.timesplits import Split


def test_lightgbm_feature_names_replace_json_special_characters_and_stay_unique():
    names = ["static__hospital__US:NIH", "static__hospital__US_NIH", 'a"b,c[d]{e}', "static__age"]
    assert lightgbm_feature_names(names) == [
        "static__hospital__US_NIH__0", "static__hospital__US_NIH__1", "a_b_c_d__e_", "static__age",
    ]


def test_a_booster_fits_when_a_one_hot_column_name_holds_a_colon():
    rng = np.random.default_rng(0)
    days = [dt.date(2020, m, 1) for m in (1, 2, 3)]
    n = 300
    X = rng.normal(size=(n * 3, 2))
    y = (X[:, 0] + rng.normal(scale=0.5, size=n * 3) > 0.8).astype(np.int8)
    day = np.repeat(np.array(days, dtype="datetime64[D]"), n)
    data = _Labelled(pd.DataFrame({"as_of": day}), X, y, day)
    split = Split(name="s", test=(dt.date(2020, 4, 1),), fit=(days[0],), validation=(days[1],), calibration=(days[2],))
    fitted = _fit_calibrated_booster(data, split, small_config(), ["static__hospital__US:NIH", "static__age"])
    assert fitted.booster.feature_name() == ["static__hospital__US_NIH", "static__age"]
    assert fitted.booster.predict(X[:5], raw_score=True).shape == (5,)

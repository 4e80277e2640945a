"""A small feature matrix of the shape earlysignal.features produces, for modelling unit tests.

Labels follow a known logistic model of two features (or none, for a null world), so tests can
check that training finds real signal and finds none where there is none.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from earlysignal.features import FeatureMatrix

FEATURES = [
    ("household__social_care__contact__count__all", "{value} children's social care contacts for the household, ever"),
    ("address__housing_repairs__door_replacement__count__365d", "{value} door replacements at home in the last 12 months"),
    ("resident__ae__attendance__count__365d", "{value} A&E attendances in the last 12 months"),
    ("household__police__callout__days_since_last__all", "{value} days since the last police call-out to the household"),
    ("household__police__callout__days_since_last__all_imputed", "no police call-out to the household on record"),
    ("static__age", "aged {value}"),
]


def as_of_grid(first: dt.date, count: int) -> list[dt.date]:
    out = []
    for i in range(count):
        months = first.month - 1 + 3 * i
        out.append(dt.date(first.year + months // 12, months % 12 + 1, 1))
    return out


def make_matrix(
    residents: int = 3000, n_as_of: int = 16, seed: int = 0, null_world: bool = False, unlabelled_tail: int = 2
) -> FeatureMatrix:
    """Residents x quarterly as_of rows; the last `unlabelled_tail` dates have null labels."""
    rng = np.random.default_rng(seed)
    dates = as_of_grid(dt.date(2020, 1, 1), n_as_of)
    latent = rng.gamma(1.0, 1.0, residents)  # persistent household adversity
    frames = []
    for i, day in enumerate(dates):
        sc = rng.poisson(latent * 0.8 + 0.1 * i / n_as_of)
        doors = rng.poisson(latent * 0.5)
        ae = rng.poisson(0.5, residents)
        police_days = np.where(rng.random(residents) < 0.3, rng.integers(1, 900, residents), 9999)
        age = rng.integers(0, 18, residents)
        logit = -3.5 + (0.0 if null_world else 1.0) * (0.6 * sc + 0.5 * doors)
        label = (rng.random(residents) < 1 / (1 + np.exp(-logit))).astype("int8")
        frame = pd.DataFrame(
            {
                "resident_id": [f"R{j:06d}" for j in range(residents)],
                "as_of": pd.Timestamp(day),
                "label": pd.array(label, dtype="Int8"),
                FEATURES[0][0]: sc.astype("float32"),
                FEATURES[1][0]: doors.astype("float32"),
                FEATURES[2][0]: ae.astype("float32"),
                FEATURES[3][0]: police_days.astype("float32"),
                FEATURES[4][0]: (police_days == 9999).astype("float32"),
                FEATURES[5][0]: age.astype("float32"),
                "attr__sex": np.where(rng.random(residents) < 0.5, "F", "M"),
                "attr__ethnicity": rng.choice(["White", "Asian", "Black", "Mixed", "Other", "Not recorded"], residents),
                "attr__disability": np.where(rng.random(residents) < 0.1, "True", "False"),
                "attr__age_band": np.where(age < 5, "0-4", np.where(age < 11, "5-10", "11-17")),
            }
        )
        if i >= n_as_of - unlabelled_tail:
            frame["label"] = pd.array([pd.NA] * residents, dtype="Int8")
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["resident_id"] = frame["resident_id"].astype("string")
    frame["as_of"] = frame["as_of"].astype("datetime64[us]")
    features = [
        {
            "name": name,
            "family": parts[1],
            "source": parts[1] if len(parts) > 2 else None,
            "event_type": parts[2] if len(parts) > 2 else None,
            "scope": parts[0],
            "window": parts[4] if len(parts) > 4 else None,
            "aggregate": parts[3] if len(parts) > 3 else None,
            "description": description,
            "is_imputed_flag": name.endswith("_imputed"),
        }
        for name, description in FEATURES
        for parts in [name.removesuffix("_imputed").split("__")]
    ]
    metadata = {
        "features": features,
        "feature_columns": [f["name"] for f in features],
        "protected_columns": ["attr__sex", "attr__ethnicity", "attr__disability", "attr__age_band"],
        "label": {"name": "test_label", "outcome_types": ["csc_referral"], "horizon_months": 6},
        "spec": {},
        "spec_hash": "synthetic-spec",
        "data_fingerprint": "synthetic-data",
        "extract_date": dates[-1].isoformat(),
        "as_of_dates": [d.isoformat() for d in dates],
    }
    return FeatureMatrix(frame, metadata)

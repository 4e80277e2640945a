"""The door-replacement signal after ingest and link: which feature rows were truly under domestic abuse,
and how much a model of that exposure leans on the door-replacement feature.

Used by tests/test_link_from_raw.py and by the seed-spread measurement quoted in its docstrings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DOOR_FEATURE_SUFFIX = "count__12m"


def under_abuse(matrix: pd.DataFrame, linked: Path, borough: Path) -> pd.Series:
    """Per matrix row: was the true household of the linked resident under domestic abuse in the 12 calendar
    months before as_of (the feature's window)? Each linked resident stands for the true person behind most
    of its records."""
    links = pd.read_parquet(linked / "person_links.parquet", columns=["source", "record_id", "resident_id"])
    truth = pd.read_parquet(borough / "ground_truth" / "raw_records.parquet", columns=["source", "record_id", "resident_id"])
    truth = truth.rename(columns={"resident_id": "true_resident_id"}).dropna()
    pairs = links.merge(truth, on=["source", "record_id"])
    true_of = pairs.groupby("resident_id")["true_resident_id"].agg(lambda s: s.mode().iloc[0])
    rows = matrix[["resident_id", "as_of"]].copy()
    rows["true_resident_id"] = rows["resident_id"].map(true_of)
    rows["as_of"] = pd.to_datetime(rows["as_of"])
    residency = pd.read_parquet(borough / "residency.parquet", columns=["resident_id", "household_id", "start_date", "end_date"])
    states = pd.read_parquet(borough / "ground_truth" / "household_states.parquet")
    abuse = states[states["state"] == "domestic_abuse"][["household_id", "start_date", "end_date"]]
    spells = residency.rename(columns={"resident_id": "true_resident_id"}).merge(abuse, on="household_id", suffixes=("", "_da"))
    joined = rows.reset_index(drop=True).reset_index().merge(spells, on="true_resident_id")
    far = pd.Timestamp("2100-01-01")
    lo = joined["as_of"] - pd.DateOffset(months=12)
    live = (pd.to_datetime(joined["start_date"]) < joined["as_of"]) & (pd.to_datetime(joined["end_date"]).fillna(far) > lo)
    abused = (pd.to_datetime(joined["start_date_da"]) < joined["as_of"]) & (pd.to_datetime(joined["end_date_da"]).fillna(far) > lo)
    under = set(joined.loc[live & abused, "index"])
    return pd.Series(np.isin(np.arange(len(rows)), list(under)), index=matrix.index, name="under_abuse")


def door_importance(matrix: pd.DataFrame, feature_columns: list[str], target: pd.Series, seed: int = 0,
                    shuffle_door: bool = False) -> dict[str, object]:
    """Fit a small LightGBM (deterministic, one thread) of `target` on every feature and rank the features by
    mean |SHAP contribution| over all rows. Returns the door 12-month count's rank (1 = most important), mean
    |SHAP| and share of the total; the door-replacement family's (every window, days since) best rank and
    share; and any feature naming sanctuary works. `shuffle_door` permutes the door rows first (a control
    with the same values and no signal)."""
    import lightgbm as lgb

    X = matrix[feature_columns].astype("float64")
    if shuffle_door:
        family = [c for c in feature_columns if "door_replacement" in c]
        order = np.random.default_rng(seed).permutation(len(X))
        X[family] = X[family].to_numpy()[order]
    booster = lgb.train(
        {"objective": "binary", "learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20, "verbose": -1,
         "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": seed},
        lgb.Dataset(X, label=target.astype(int).to_numpy()), num_boost_round=60,
    )
    shap = np.abs(booster.predict(X, pred_contrib=True)[:, :-1]).mean(axis=0)
    ranked = pd.Series(shap, index=feature_columns).sort_values(ascending=False, kind="stable")
    door = [c for c in feature_columns if "door_replacement" in c and c.endswith(DOOR_FEATURE_SUFFIX)]
    if len(door) != 1:
        raise AssertionError(f"expected one door-replacement {DOOR_FEATURE_SUFFIX} feature, found {door}")
    name = door[0]
    family = [c for c in feature_columns if "door_replacement" in c]
    order = list(ranked.index)
    return {"feature": name, "rank": order.index(name) + 1, "mean_abs_shap": float(ranked[name]),
            "share": float(ranked[name] / ranked.sum()), "features": len(feature_columns),
            "family_best_rank": min(order.index(c) for c in family) + 1,
            "family_share": float(ranked[family].sum() / ranked.sum()),
            "sanctuary_features": [c for c in feature_columns if "sanctuary" in c]}

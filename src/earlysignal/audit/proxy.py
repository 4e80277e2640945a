"""Proxy check: how well each model input, on its own, predicts each protected characteristic.

A feature that separates one group of a protected characteristic from the rest with an AUC of 0.8
carries that characteristic into the model even though the characteristic is not an input. The board sees which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from earlysignal.audit.groups import NOT_RECORDED, group_labels

PROXY_AUC_WARN = 0.70


def single_feature_aucs(features: pd.DataFrame, membership: pd.DataFrame) -> pd.DataFrame:
    """AUC of each feature alone for each group-vs-rest indicator (rows: features, columns: groups).

    Mann-Whitney via ranks, so all features x groups come from one rank matrix and one product.
    """
    values = features.to_numpy(dtype=float, copy=True)
    # A missing value is information too (e.g. "never recorded"): rank it below everything.
    if np.isnan(values).any():
        floor = np.nanmin(np.where(np.isnan(values), np.inf, values), axis=0) - 1
        floor = np.where(np.isfinite(floor), floor, 0.0)
        values = np.where(np.isnan(values), floor, values)
    ranks = rankdata(values, axis=0)  # average ranks for ties, as AUC needs
    masks = membership.to_numpy(dtype=float)
    n_pos = masks.sum(axis=0)
    n_neg = len(masks) - n_pos
    rank_sums = ranks.T @ masks  # features x groups
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sums - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return pd.DataFrame(auc, index=features.columns, columns=membership.columns)


def proxy_check(
    sample: pd.DataFrame,
    feature_columns: Sequence[str],
    protected: Sequence[str],
    min_cell: int,
    group_words: Mapping[str, Mapping[str, str]] | None = None,
) -> list[dict[str, object]]:
    """Per feature: strongest single-feature AUC (direction-free) for any group-vs-rest, per characteristic.

    Groups with fewer than min_cell members (or non-members) are left out: their AUC is noise
    and naming them could disclose a small group.
    """
    features = sample[list(feature_columns)]
    rows: dict[str, dict[str, object]] = {name: {"feature": name} for name in feature_columns}
    for attribute in protected:
        try:
            labels = group_labels(sample, attribute, group_words)
        except KeyError:
            continue
        groups = [
            g
            for g, n in labels.value_counts().items()
            if g != NOT_RECORDED and n >= min_cell and len(labels) - n >= min_cell
        ]
        if not groups:
            continue
        membership = pd.DataFrame({g: (labels == g).to_numpy() for g in sorted(groups)})
        auc = single_feature_aucs(features, membership)
        strength = np.maximum(auc, 1 - auc)  # a feature that is low for a group is as much a proxy
        best_group = strength.idxmax(axis=1)
        best = strength.max(axis=1)
        for name in feature_columns:
            rows[name][attribute] = None if pd.isna(best[name]) else float(best[name])
            rows[name][f"{attribute}__group"] = None if pd.isna(best[name]) else str(best_group[name])
    out = []
    for row in rows.values():
        scores = [v for k, v in row.items() if k in protected and v is not None]
        row["max_auc"] = max(scores) if scores else None
        row["acts_as_proxy"] = bool(scores) and max(scores) >= PROXY_AUC_WARN
        out.append(row)
    out.sort(key=lambda r: -(r["max_auc"] or 0))  # type: ignore[operator]
    return out

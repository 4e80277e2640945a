"""Global importance from SHAP contributions: mean |contribution| per feature, and its direction."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def global_importance(features: pd.DataFrame, contributions: pd.DataFrame, top: int = 20) -> list[dict[str, object]]:
    """Top features by mean |SHAP contribution| (log-odds), with the direction of their effect.

    `contributions` has one column per feature (the bias column, if present, is ignored).
    Direction is the Spearman correlation between a feature's value and its contribution:
    positive means higher values push the score up.
    """
    columns = [c for c in contributions.columns if c in features.columns]
    magnitude = contributions[columns].abs().mean(axis=0).sort_values(ascending=False, kind="stable")
    total = float(magnitude.sum()) or 1.0
    out = []
    for name in magnitude.index[:top]:
        x = features[name].to_numpy(dtype=float)
        c = contributions[name].to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(c)
        rho = np.nan
        if ok.sum() > 2 and np.ptp(x[ok]) > 0 and np.ptp(c[ok]) > 0:
            rho = float(spearmanr(x[ok], c[ok]).statistic)
        if np.isnan(rho) or abs(rho) < 0.1:
            direction = "mixed"
        elif rho > 0:
            direction = "higher values raise the score"
        else:
            direction = "higher values lower the score"
        out.append(
            {
                "feature": name,
                "mean_abs_contribution": float(magnitude[name]),
                "share": float(magnitude[name]) / total,
                "direction": direction,
                "direction_correlation": None if np.isnan(rho) else rho,
            }
        )
    return out

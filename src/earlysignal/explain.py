"""Per-resident reasons: the features that push a score up most, in plain English.

Contributions are LightGBM's `pred_contrib` (exact TreeSHAP values): one number per feature on
the log-odds scale of the raw model, plus a bias; they add up to the raw margin before
calibration. Calibration is monotone, so a feature that raises the margin raises the score.
Reasons are rendered from the feature descriptions in the model's own spec, e.g.
"4 door replacements at home in the last 12 months".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

IMPUTED_SUFFIX = "_imputed"
N_REASONS = 3


def format_value(value: float) -> str:
    """A feature value for a sentence: whole numbers without decimals, others to one decimal place."""
    if not np.isfinite(value):
        return "unknown"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def describe(feature: str, value: float, descriptions: dict[str, str]) -> str:
    """One feature and its value as a sentence from its description template ("{value} ...")."""
    template = descriptions.get(feature) or f"{feature} = {{value}}"
    if "{value}" not in template:
        return template
    return template.replace("{value}", format_value(value))


def description_templates(feature_metadata: dict[str, Any]) -> dict[str, str]:
    """Feature name -> description template, from the feature-matrix sidecar."""
    return {f["name"]: f.get("description", "") for f in feature_metadata.get("features", [])}


def explainable_mask(values: pd.DataFrame, feature_columns: Sequence[str]) -> np.ndarray:
    """Which (row, feature) cells may be given as a reason.

    Imputed-flag columns are never reasons themselves, and a feature whose value was imputed for
    that row (e.g. "days since the last call-out" when there was none) is not either: its number
    is a placeholder, not a fact about the resident. A missing value (e.g. a lab result's last value
    when there was no test in the window) is not a reason either: it would read "unknown mg/dl".
    """
    columns = list(feature_columns)
    mask = np.isfinite(values[columns].to_numpy(dtype=float))
    present = set(columns)
    for j, name in enumerate(columns):
        if name.endswith(IMPUTED_SUFFIX):
            mask[:, j] = False
        elif name + IMPUTED_SUFFIX in present or name + IMPUTED_SUFFIX in values.columns:
            mask[:, j] = values[name + IMPUTED_SUFFIX].to_numpy(dtype=float) < 0.5
    return mask


def top_reasons(
    contributions: np.ndarray,
    values: pd.DataFrame,
    feature_columns: Sequence[str],
    feature_metadata: dict[str, Any],
    n: int = N_REASONS,
) -> pd.DataFrame:
    """reason_1..n and contribution_1..n: the n features pushing each score up most (positive only).

    contributions is pred_contrib (rows x features + bias). Ties in contribution go to the
    feature listed first in the spec. Rows with fewer than n positive contributions get empty
    reasons and null contributions for the rest.
    """
    columns = list(feature_columns)
    contrib = np.asarray(contributions, dtype=float)[:, : len(columns)]
    usable = np.where(explainable_mask(values, columns) & (contrib > 0), contrib, -np.inf)
    # Stable sort on the negated contributions keeps the spec order among equal contributions.
    order = np.argsort(-usable, axis=1, kind="stable")[:, :n]
    templates = description_templates(feature_metadata)
    value_matrix = values[columns].to_numpy(dtype=float)
    rows = np.arange(len(values))
    out: dict[str, Any] = {}
    for i in range(n):
        j = order[:, i] if order.shape[1] > i else np.zeros(len(values), dtype=int)
        chosen = usable[rows, j] if order.shape[1] > i else np.full(len(values), -np.inf)
        valid = np.isfinite(chosen)
        out[f"reason_{i + 1}"] = [
            describe(columns[jj], value_matrix[r, jj], templates) if ok else ""
            for r, jj, ok in zip(rows, j, valid, strict=True)
        ]
        out[f"contribution_{i + 1}"] = pd.array(np.where(valid, chosen, np.nan), dtype="Float64")
        out[f"contribution_{i + 1}"][~valid] = pd.NA
    ordered = {}
    for i in range(n):
        ordered[f"reason_{i + 1}"] = out[f"reason_{i + 1}"]
    for i in range(n):
        ordered[f"contribution_{i + 1}"] = out[f"contribution_{i + 1}"]
    return pd.DataFrame(ordered, index=values.index)

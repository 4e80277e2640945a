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


ONE_SUFFIX = "#one"  # description_templates key of a feature's template for the value 1


def format_value(value: float) -> str:
    """A feature value for a sentence: whole numbers without decimals, others to one decimal place."""
    if not np.isfinite(value):
        return "unknown"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


YES_NO = " (1 = yes, 0 = no): {value}"
# Aggregates whose value is a concern only above zero: no events, nothing owed or no rise is not a reason.
CONCERN_ABOVE_ZERO = ("count", "sum", "distinct_types", "trend")


def format_money(value: float) -> str:
    """An amount in pounds with pence and thousands separators: 2842.9 -> "£2,842.90", -5 -> "-£5.00"."""
    if not np.isfinite(value):
        return "unknown"
    return f"{'-' if value < 0 else ''}£{abs(value):,.2f}"


def reason_sentence(record: dict[str, Any], value: float) -> str:
    """One feature's sidecar record and value as a sentence a caseworker reads.

    Uses `description_one` when the value is exactly 1 ("1 month ..."); a yes/no attribute reads as its label
    (or "<label>: no"); a negative trend reads as a fall ("fell by 2"); money reads "£2,842.90".
    """
    name = str(record.get("name", ""))
    template = str(record.get("description") or f"{name} = {{value}}")
    if value == 1 and record.get("description_one"):
        template = str(record["description_one"])
    if "{value}" not in template:
        return template
    if template.endswith(YES_NO):
        base = template[: -len(YES_NO)]
        return base if value >= 0.5 else f"{base}: no"
    if "rose by {value}" in template and np.isfinite(value) and value < 0:
        template, value = template.replace("rose by {value}", "fell by {value}"), -value
    if "£{value}" in template:
        template = template.replace("£{value}", format_money(value))
    return template.replace("{value}", format_value(value))


def is_concern(record: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """Which values of one feature state a concern and so may be a reason (bool per row).

    A count, sum or trend is a concern only above zero ("0 months with school absence", "rose by 0",
    "fell by 2" are not reasons to review anyone); a yes/no feature, or one code's 0/1 column of a
    category ("home is owner occupied"), only when it is yes. Other values (ages, days since an event
    that happened) are facts about the resident and are kept.
    """
    values = np.asarray(values, dtype=float)
    aggregate = record.get("aggregate", "")
    one_hot = aggregate == "attribute" and bool(record.get("event_type"))
    if aggregate in CONCERN_ABOVE_ZERO:
        return values > 0
    if one_hot or str(record.get("description", "")).endswith(YES_NO):
        return values == 1
    return np.ones(values.shape, dtype=bool)


def concern_mask(values: pd.DataFrame, feature_columns: Sequence[str], feature_metadata: dict[str, Any]) -> np.ndarray:
    """Which (row, feature) cells state a concern (`is_concern`), whatever their contribution (rows x features)."""
    columns = list(feature_columns)
    records = {f["name"]: f for f in feature_metadata.get("features", []) if isinstance(f, dict) and "name" in f}
    mask = np.ones((len(values), len(columns)), dtype=bool)
    for j, name in enumerate(columns):
        mask[:, j] = is_concern(records.get(name, {"name": name}), values[name].to_numpy(dtype=float))
    return mask


def describe(feature: str, value: float, descriptions: dict[str, str]) -> str:
    """One feature and its value as a sentence from its description templates (`description_templates`)."""
    record = {"name": feature, "description": descriptions.get(feature, ""),
              "description_one": descriptions.get(feature + ONE_SUFFIX, "")}
    return reason_sentence(record, value)


def description_templates(feature_metadata: dict[str, Any]) -> dict[str, str]:
    """Feature name -> description template, from the feature-matrix sidecar."""
    templates = {f["name"]: f.get("description", "") for f in feature_metadata.get("features", [])}
    # A count of exactly 1 reads in the singular ("1 referral"), from its own template.
    templates.update(
        {f["name"] + ONE_SUFFIX: f["description_one"] for f in feature_metadata.get("features", []) if f.get("description_one")}
    )
    return templates


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
            mask[:, j] &= values[name + IMPUTED_SUFFIX].to_numpy(dtype=float) < 0.5
    return mask


def top_reasons(
    contributions: np.ndarray,
    values: pd.DataFrame,
    feature_columns: Sequence[str],
    feature_metadata: dict[str, Any],
    n: int = N_REASONS,
) -> pd.DataFrame:
    """reason_1..n and contribution_1..n: the n features pushing each score up most (positive only),
    among values that state a concern (`concern_mask`).

    contributions is pred_contrib (rows x features + bias). Ties in contribution go to the
    feature listed first in the spec. Rows with fewer than n positive contributions get empty
    reasons and null contributions for the rest.
    """
    columns = list(feature_columns)
    contrib = np.asarray(contributions, dtype=float)[:, : len(columns)]
    records = {f["name"]: f for f in feature_metadata.get("features", [])}
    value_matrix = values[columns].to_numpy(dtype=float)
    allowed = explainable_mask(values, columns) & concern_mask(values, columns, feature_metadata)
    usable = np.where(allowed & (contrib > 0), contrib, -np.inf)
    # Stable sort on the negated contributions keeps the spec order among equal contributions.
    order = np.argsort(-usable, axis=1, kind="stable")[:, :n]
    rows = np.arange(len(values))
    out: dict[str, Any] = {}
    for i in range(n):
        j = order[:, i] if order.shape[1] > i else np.zeros(len(values), dtype=int)
        chosen = usable[rows, j] if order.shape[1] > i else np.full(len(values), -np.inf)
        valid = np.isfinite(chosen)
        out[f"reason_{i + 1}"] = [
            reason_sentence(records.get(columns[jj], {"name": columns[jj]}), value_matrix[r, jj]) if ok else ""
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

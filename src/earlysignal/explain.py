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
# Aggregates of an event's value (a reading, an amount); an amount of money is a concern only above zero.
MONEY_AGGREGATES = ("mean", "max", "min", "last", "first")


def format_money(value: float, decimals: int = 2) -> str:
    """An amount in pounds with separators, pence unless decimals=0: 2842.9 -> "£2,842.90", -5 -> "-£5.00"."""
    if not np.isfinite(value):
        return "unknown"
    return f"{'-' if value < 0 else ''}£{abs(value):,.{decimals}f}"


def _number(value: float, decimals: int | None) -> str:
    if decimals is None or not np.isfinite(value):
        return format_value(value)
    return f"{value:,.{decimals}f}"


def reason_sentence(record: dict[str, Any], value: float) -> str:
    """One feature's sidecar record and value as the sentence a caseworker reads (the one wording function
    behind the ranked list, the case list, journeys and explanation letters).

    Uses `description_one` when the value is exactly 1 ("1 month ..."), `description_negative` with the
    value's size when it is below zero ("£50 in credit", "rent balance -£50"); a yes/no attribute reads as
    its label (or "<label>: no"); a negative trend reads as a fall ("fell by 2"); money reads "£2,842.90",
    or whole pounds when the record's `value_decimals` is 0.
    """
    name = str(record.get("name", ""))
    template = str(record.get("description") or f"{name} = {{value}}")
    decimals = record.get("value_decimals")
    if value == 1 and record.get("description_one"):
        template = str(record["description_one"])
    elif np.isfinite(value) and value < 0 and record.get("description_negative"):
        template, value = str(record["description_negative"]), -value
    if "{value}" not in template:
        return template
    if template.endswith(YES_NO):
        base = template[: -len(YES_NO)]
        return base if value >= 0.5 else f"{base}: no"
    if "rose by {value}" in template and np.isfinite(value) and value < 0:
        template, value = template.replace("rose by {value}", "fell by {value}"), -value
    if "£{value}" in template:
        # The sign goes before the pound sign ("-£50", never "£-50"); pence unless the dictionary says whole pounds.
        money = format_money(value, 2 if decimals is None else int(decimals))
        return template.replace("£{value}", money).replace("{value}", money.replace("£", "", 1))
    return template.replace("{value}", _number(value, None if decimals is None else int(decimals)))


def is_concern(record: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """Which values of one feature state a concern and so may be a reason (bool per row).

    A count, sum or trend is a concern only above zero ("0 months with school absence", "rose by 0",
    "fell by 2" are not reasons to review anyone), and so is an amount of money ("£0.00 owed", "£50.00 in
    credit"); a yes/no feature, or one code's 0/1 column of a
    category ("home is owner occupied"), only when it is yes. Other values (ages, days since an event
    that happened) are facts about the resident and are kept.
    """
    values = np.asarray(values, dtype=float)
    aggregate = record.get("aggregate", "")
    one_hot = aggregate == "attribute" and bool(record.get("event_type"))
    if aggregate in CONCERN_ABOVE_ZERO:
        return values > 0
    if aggregate in MONEY_AGGREGATES and "£{value}" in str(record.get("description", "")):
        # An amount of nothing, or in credit, is no concern: "£0.00 owed at the last statement" is not a reason.
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


def reason_fact(record: dict[str, Any]) -> str:
    """The fact a feature states, the same for its windows: "family/event_type/scope/aggregate" for an event
    feature ("3 repairs in the last 6 months" and "... 12 months" state one fact), else its name."""
    window, scope = str(record.get("window") or ""), str(record.get("scope") or "static")
    if not window or scope == "static" or record.get("is_imputed_flag"):
        return str(record.get("name", ""))
    return "/".join(str(record.get(key) or "") for key in ("family", "event_type", "scope", "aggregate"))


def top_reasons(
    contributions: np.ndarray,
    values: pd.DataFrame,
    feature_columns: Sequence[str],
    feature_metadata: dict[str, Any],
    n: int = N_REASONS,
) -> pd.DataFrame:
    """reason_1..n and contribution_1..n: the n features pushing each score up most (positive only),
    among values that state a concern (`concern_mask`), one per fact (`reason_fact`).

    contributions is pred_contrib (rows x features + bias). Of the windows of one fact, only the one
    contributing most is a reason, so a count is not repeated once per window. Ties in contribution go
    to the feature listed first in the spec. Rows with fewer than n such features get empty reasons and
    null contributions for the rest.
    """
    columns = list(feature_columns)
    contrib = np.asarray(contributions, dtype=float)[:, : len(columns)]
    records = {f["name"]: f for f in feature_metadata.get("features", [])}
    value_matrix = values[columns].to_numpy(dtype=float)
    allowed = explainable_mask(values, columns) & concern_mask(values, columns, feature_metadata)
    usable = np.where(allowed & (contrib > 0), contrib, -np.inf)
    facts = np.array([reason_fact(records.get(name, {"name": name})) for name in columns], dtype=object)
    # Stable sort on the negated contributions keeps the spec order among equal contributions.
    order = np.argsort(-usable, axis=1, kind="stable")
    picked = np.full((len(values), n), -1, dtype=np.int64)
    for r in range(len(values)):
        seen: set[str] = set()
        k = 0
        for j in order[r]:
            if k == n or not np.isfinite(usable[r, j]):
                break
            if facts[j] in seen:
                continue
            seen.add(facts[j])
            picked[r, k] = j
            k += 1
    rows = np.arange(len(values))
    out: dict[str, Any] = {}
    for i in range(n):
        j = np.maximum(picked[:, i], 0)
        valid = picked[:, i] >= 0
        chosen = np.where(valid, usable[rows, j] if columns else np.nan, np.nan)
        out[f"reason_{i + 1}"] = [
            reason_sentence(records.get(columns[jj], {"name": columns[jj]}), value_matrix[r, jj]) if ok else ""
            for r, jj, ok in zip(rows, j, valid, strict=True)
        ]
        out[f"contribution_{i + 1}"] = pd.array(chosen, dtype="Float64")
        out[f"contribution_{i + 1}"][~valid] = pd.NA
    ordered = {}
    for i in range(n):
        ordered[f"reason_{i + 1}"] = out[f"reason_{i + 1}"]
    for i in range(n):
        ordered[f"contribution_{i + 1}"] = out[f"contribution_{i + 1}"]
    return pd.DataFrame(ordered, index=values.index)

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


def describe(feature: str, value: float, descriptions: dict[str, str]) -> str:
    """One feature and its value as a sentence from its description template ("{value} ...").

    A yes/no feature that is yes reads as its words ("home is privately rented"), not "(1 = yes...): 1".
    """
    template = descriptions.get(feature) or f"{feature} = {{value}}"
    if template.endswith(YES_NO) and value == 1:
        return template[: -len(YES_NO)]
    if value == 1 and descriptions.get(feature + ONE_SUFFIX):
        template = descriptions[feature + ONE_SUFFIX]
    if "{value}" not in template:
        return template
    if value == 1 and not descriptions.get(feature + ONE_SUFFIX):
        template = singular_template(template)
    text = format_value(value)
    if "£{value}" in template and np.isfinite(value) and not float(value).is_integer():
        text = f"{value:,.2f}"  # money in pounds and pence ("£1,535.90"), never "£1,535.9"
    return template.replace("{value}", text)


# Irregular plurals of unit words that follow a value ("1 people" -> "1 person").
_IRREGULAR_SINGULAR = {"people": "person", "children": "child"}


def singular_template(template: str) -> str:
    """The template for the value 1: the first plural noun of the two words after "{value}" made singular.

    "{value} months at the current address" -> "{value} month at ...", "{value} school sessions missed"
    -> "{value} school session missed", "{value} days since" -> "{value} day since". Templates with no
    such word (money, "aged {value}") are returned unchanged.
    """
    head, marker, tail = template.partition("{value} ")
    if not marker:
        return template
    words = tail.split(" ")
    for k, word in enumerate(words[:2]):
        if word in _IRREGULAR_SINGULAR:
            words[k] = _IRREGULAR_SINGULAR[word]
            return head + marker + " ".join(words)
        if len(word) > 2 and word.endswith("s") and not word.endswith("ss") and word.isalpha():
            words[k] = word[:-3] + "y" if word.endswith("ies") else word[:-1]
            return head + marker + " ".join(words)
    return template


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
    is a placeholder, not a fact about the resident.
    """
    columns = list(feature_columns)
    mask = np.ones((len(values), len(columns)), dtype=bool)
    present = set(columns)
    for j, name in enumerate(columns):
        if name.endswith(IMPUTED_SUFFIX):
            mask[:, j] = False
        elif name + IMPUTED_SUFFIX in present or name + IMPUTED_SUFFIX in values.columns:
            mask[:, j] = values[name + IMPUTED_SUFFIX].to_numpy(dtype=float) < 0.5
    return mask


def concern_mask(values: pd.DataFrame, feature_columns: Sequence[str], feature_metadata: dict[str, Any]) -> np.ndarray:
    """Which (row, feature) cells state a concern and so may be a reason, whatever their contribution.

    A count, sum or trend is a concern only above zero ("0 months with school absence", "rose by -1"
    are not reasons to review anyone); a yes/no feature only when it is yes. Other values (ages,
    days since an event that happened) are facts about the resident and are kept.
    """
    columns = list(feature_columns)
    records = {f["name"]: f for f in feature_metadata.get("features", []) if isinstance(f, dict) and "name" in f}
    mask = np.ones((len(values), len(columns)), dtype=bool)
    for j, name in enumerate(columns):
        record = records.get(name, {})
        column = values[name].to_numpy(dtype=float)
        if record.get("aggregate") in CONCERN_ABOVE_ZERO:
            mask[:, j] = column > 0
        elif str(record.get("description", "")).endswith(YES_NO):
            mask[:, j] = column == 1
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
    reasons and null contributions for the rest. A feature repeating a reason already given over
    another window (same count or amount) is skipped for the next one (`_distinct_facts`).
    """
    columns = list(feature_columns)
    contrib = np.asarray(contributions, dtype=float)[:, : len(columns)]
    allowed = explainable_mask(values, columns) & concern_mask(values, columns, feature_metadata)
    usable = np.where(allowed & (contrib > 0), contrib, -np.inf)
    value_matrix = values[columns].to_numpy(dtype=float)
    # Stable sort on the negated contributions keeps the spec order among equal contributions.
    order = _distinct_facts(np.argsort(-usable, axis=1, kind="stable"), usable, value_matrix, columns,
                            feature_metadata, n)
    templates = description_templates(feature_metadata)
    rows = np.arange(len(values))
    out: dict[str, Any] = {}
    for i in range(n):
        j = order[:, i] if order.shape[1] > i else np.zeros(len(values), dtype=int)
        chosen = usable[rows, j] if order.shape[1] > i else np.full(len(values), -np.inf)
        valid = np.isfinite(chosen) & (j >= 0)
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


# Aggregates whose equal value over two windows is one fact: nothing happened in the longer window's extra
# time, so "£1,535.90 owed ... in the last 3 years" beside "... in the last 12 months" repeats the same debt.
SAME_FACT_ACROSS_WINDOWS = ("count", "sum", "distinct_types", "max", "days_since_last", "days_since_first")


def _distinct_facts(
    order: np.ndarray, usable: np.ndarray, value_matrix: np.ndarray, columns: list[str],
    feature_metadata: dict[str, Any], n: int,
) -> np.ndarray:
    """The first n usable columns of each row's contribution order, skipping a feature that states the same
    fact as one already chosen (same family, scope, event type and aggregate, another window, equal value).

    order is (rows x features) of column indices; returns (rows x n), padded with columns whose `usable`
    is -inf, or -1 where only repeated facts were left, so the caller leaves those reasons empty.
    """
    records = {f["name"]: f for f in feature_metadata.get("features", []) if isinstance(f, dict) and "name" in f}
    fact = [
        (r.get("family"), r.get("scope"), r.get("event_type"), r.get("aggregate"))
        if r.get("aggregate") in SAME_FACT_ACROSS_WINDOWS and r.get("family") else None
        for r in (records.get(name, {}) for name in columns)
    ]
    if not any(fact):
        return order[:, :n]
    out = np.empty((order.shape[0], min(n, order.shape[1])), dtype=int)
    for r in range(order.shape[0]):
        chosen: list[int] = []
        seen: set[tuple[Any, ...]] = set()
        for j in order[r]:
            if len(chosen) == out.shape[1] or not np.isfinite(usable[r, j]):
                break
            key = None if fact[j] is None else (*fact[j], value_matrix[r, j])
            if key is not None and key in seen:
                continue
            seen.add(key) if key is not None else None
            chosen.append(int(j))
        chosen += [-1] * (out.shape[1] - len(chosen))  # -1: no reason in this slot
        out[r] = chosen
    return out

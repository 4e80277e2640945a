"""Assemble the audit document (audit.json): every number the report shows, computed once.

The HTML report is rendered from this document alone, so what the board reads and what is
logged to MLflow cannot disagree. Group figures are already suppressed and rounded here.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.approval import ApprovalRecord
from earlysignal.audit.consistency import (
    findings_note,
    opposing_drivers,
    protected_inputs,
    protected_inputs_sentence,
    ratio_table_note,
)
from earlysignal.audit.fairness import audit_fairness
from earlysignal.audit.groups import characteristics, group_labels, not_recorded_mask, NOT_RECORDED
from earlysignal.audit.importance import global_importance
from earlysignal.audit.linkage import linkage_section
from earlysignal.audit.proxy import PROXY_AUC_WARN, proxy_check
from earlysignal.audit.disclosure import is_small, published_count, published_figure, published_rate
from earlysignal.audit.suppression import round_count, suppression_reasons
from earlysignal.config import ProjectConfig
from earlysignal.errors import EarlySignalError
from earlysignal.modeling.metrics import baseline_comparison, below_chance

SCHEMA_VERSION = 1
REQUIRED_PREDICTION_COLUMNS = ("as_of", "label", "score", "rank", "flagged")


class AuditError(EarlySignalError):
    """The training run's artefacts cannot be audited (e.g. columns missing from its test predictions)."""
GOVERNANCE_LABELS = {
    "owner": "Accountable owner",
    "purpose": "Purpose",
    "decision_point": "Decision point",
    "human_oversight": "Human oversight",
    "lawful_basis": "Lawful basis",
    "dpia_reference": "Data protection impact assessment (DPIA)",
    "equality_impact_assessment": "Equality impact assessment",
    "data_sharing_agreements": "Data sharing agreements",
    "challenge_contact": "How to challenge a decision",
    "monitoring": "Monitoring",
    "retraining_cadence": "Retraining cadence",
    "switch_off_criteria": "Criteria for switching the model off",
}
METRIC_WORDS = {
    "precision_at_capacity": "precision at capacity",
    "recall_at_capacity": "recall at capacity",
    "roc_auc": "AUC",
    "average_precision": "average precision",
    "brier": "Brier score",
    "lift_at_capacity": "lift at capacity",
    "ece": "expected calibration error",
}
K_CURVE_POINTS = 40
CALIBRATION_BINS = 10


def cohort_words(config: ProjectConfig) -> str:
    """The cohort in words, its entry column named by the data dictionary's label ("date of randomisation")."""
    from earlysignal.dictionary import dictionary_for

    spec = dictionary_for(config).residents.get(config.cohort.entry_column or "")
    return config.cohort.describe(spec.label if spec is not None and spec.label else None)


def outcome_labels(config: ProjectConfig) -> dict[str, str]:
    """Outcome type -> wording in reports, from the config's data dictionary."""
    from earlysignal.dictionary import dictionary_for

    return {name: spec.label for name, spec in dictionary_for(config).outcomes.items()}


def outcome_phrase(
    outcome_types: Sequence[str], horizon_months: int | float | str | None, labels: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """('a plan', 'within 6 months') style words for the label; `labels` are the data dictionary's outcome
    labels; a string horizon (label.horizon_text, e.g. '91 days') is used as it is."""
    labels = labels or {}
    words = [labels.get(o, o.replace("_", " ")) for o in outcome_types]
    what = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    return what, f"within {horizon_months}" if isinstance(horizon_months, str) else f"within {horizon_months} months"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def describe_feature(template: str) -> str:
    """A feature description without its '{value}' placeholder, for a list of inputs."""
    text = re.sub(r":\s*\{value\}\s*$", "", template or "").strip()
    return text.replace("{value}", "N")


def _age_sort_key(label: str) -> tuple[float, str]:
    match = re.match(r"^(\d+)", label)
    return (float(match.group(1)) if match else math.inf, label)


def evaluated_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    """Rows the audit evaluates: the logged test predictions (one test as_of per split) with a known label."""
    missing = [c for c in REQUIRED_PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise AuditError(
            f"the test predictions (evaluation store) lack column(s) {missing}; the audit needs "
            f"{list(REQUIRED_PREDICTION_COLUMNS)} (retrain with `earlysignal train`)"
        )
    frame = predictions[predictions["label"].notna()].copy()
    if frame.empty:
        raise AuditError("the test predictions (evaluation store) have no rows with a known label: nothing to audit")
    frame["label"] = frame["label"].astype(int)
    frame["flagged"] = frame["flagged"].astype(bool)
    return frame.reset_index(drop=True)


def k_curves(
    frame: pd.DataFrame, capacity_per_as_of: dict[str, int], min_cell: int = 10, round_to: int = 5
) -> dict[str, Any]:
    """Precision@k and recall@k, averaged over test as_of dates, at up to K_CURVE_POINTS values of k.

    Each point is computed from the rounded number of escalations in the top k (None when, at some
    date, that number is 1 to min_cell - 1): an exact precision@k times the public k is a count.
    """
    per_date = []
    max_k = 0
    for _, part in frame.groupby("as_of", sort=True):
        ordered = part.sort_values("rank", kind="stable")["label"].to_numpy(dtype=float)
        per_date.append(ordered)
        max_k = max(max_k, len(ordered))
    capacity = max(capacity_per_as_of.values()) if capacity_per_as_of else max(1, max_k // 10)
    upper = min(max_k, max(capacity * 3, 10))
    ks = sorted({int(k) for k in np.unique(np.linspace(1, upper, K_CURVE_POINTS).round())} | {min(capacity, upper)})
    precision, recall = [], []
    for k in ks:
        p_vals, r_vals = [], []
        for labels in per_date:
            top = labels[: min(k, len(labels))]
            # Beside a withheld count of escalations at the date, not even a zero is shown (ADR 0015).
            found = None if is_small(labels.sum(), min_cell) else published_count(top.sum(), min_cell, round_to)
            p_vals.append(found / len(top) if len(top) and found is not None else None)
            r_vals.append(published_rate(top.sum(), labels.sum(), min_cell, round_to))
        precision.append(None if any(v is None for v in p_vals) else _num(np.mean(p_vals)))
        recall.append(None if any(v is None for v in r_vals) else _num(np.mean(r_vals)))
    return {"k": ks, "precision": precision, "recall": recall, "capacity": capacity}


def _significant_decimals(value: float, figures: int) -> int:
    """Decimal places that keep `figures` significant figures of `value` (at least `figures` places)."""
    value = abs(float(value))
    if value == 0 or not math.isfinite(value):
        return figures
    return max(figures, figures - 1 - math.floor(math.log10(value)))


BIN_SMALL = "the band's escalations are a small number (1 to min_cell - 1): its observed rate is withheld"


def calibration_curve(
    frame: pd.DataFrame, bins: int = CALIBRATION_BINS, min_cell: int = 10, round_to: int = 5
) -> list[dict[str, Any]]:
    """Reliability curve on score deciles: mean score vs observed rate per bin (bins under min_cell dropped)."""
    scores = frame["score"].to_numpy(dtype=float)
    labels = frame["label"].to_numpy(dtype=float)
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return []
    index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        mask = index == b
        if mask.sum() < min_cell:
            continue
        row: dict[str, Any] = {
            # Three significant figures, not three decimals: at a base rate of 0.2% most bins' mean
            # scores are under 0.0005 and would all print as 0.0 beside their observed rates.
            "mean_score": published_figure(scores[mask].mean(), _significant_decimals(scores[mask].mean(), 3)),
            # From rounded counts; a band with 1-9 escalations shows no observed rate (small numbers).
            "observed": published_rate(labels[mask].sum(), mask.sum(), min_cell, round_to),
            "n": published_count(int(mask.sum()), min_cell, round_to),
        }
        if row["observed"] is None:
            # Say why, as every other withheld figure does: an output checker reads a bare null as a gap.
            row["withheld"] = BIN_SMALL
        out.append(row)
    return out


def temporal_plan(split_plan: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per split (and the final model): which as-of dates it learnt from and which it was tested on."""
    if not split_plan:
        return []
    rows = []
    for split in [*split_plan.get("splits", []), split_plan.get("final")]:
        if not split:
            continue
        learnt = sorted([*split.get("fit", []), *split.get("validation", []), *split.get("calibration", [])])
        rows.append(
            {
                "split": "final model" if split.get("is_final") else split.get("name"),
                "trained_from": learnt[0] if learnt else None,
                "trained_to": learnt[-1] if learnt else None,
                "calibration": ", ".join(split.get("calibration", [])),
                "test": ", ".join(split.get("test", [])) or "(none: this is the registered model)",
            }
        )
    return rows


def trained_period(plan: Sequence[dict[str, Any]], test_as_of: Sequence[str]) -> dict[str, Any]:
    """{"trained_from", "trained_to", "tested_from", "tested_to"}: the as-of dates the models really learnt from
    (any split, or the final model) and were tested on, which the feature matrix's first/last as-of need not be
    (early dates without enough history, late dates whose label is not yet known). Empty without a plan."""
    learnt = [d for row in plan for d in (row.get("trained_from"), row.get("trained_to")) if d]
    if not learnt:
        return {}
    tests = sorted(test_as_of)
    return {"trained_from": min(learnt), "trained_to": max(learnt),
            "tested_from": tests[0] if tests else None, "tested_to": tests[-1] if tests else None}


def _used_dates(period: dict[str, Any]) -> str:
    """'trained on as-of dates A to B and tested on C to D' when the plan is known, else the matrix's range."""
    if period.get("trained_from"):
        tested = "" if not period.get("tested_from") else (
            f" and tested on {period['tested_from']}" if period["tested_from"] == period["tested_to"]
            else f" and tested on {period['tested_from']} to {period['tested_to']}")
        return f"trained on as-of dates from {period['trained_from']} to {period['trained_to']}{tested}"
    return f"trained and tested on as-of dates from {period.get('first_as_of')} to {period.get('last_as_of')}"


def _tie_at_capacity(part: pd.DataFrame) -> bool:
    """True when the last flagged row ties (in score, then margin when given) with a row left off the list."""
    if "score" not in part.columns or not part["flagged"].any() or part["flagged"].all():
        return False
    keys = ["score", "margin"] if "margin" in part.columns else ["score"]
    on = part.loc[part["flagged"], keys].to_numpy(dtype=float)
    off = part.loc[~part["flagged"], keys].to_numpy(dtype=float)
    last = on[np.lexsort(on.T[::-1])][0]  # the lowest (score, margin) on the list
    return bool((off == last).all(axis=1).any())


def flagged_outcomes(frame: pd.DataFrame, round_to: int, min_cell: int = 10) -> list[dict[str, Any]]:
    """Per test as_of: how many were flagged and what share of them escalated (shares from rounded counts).

    When the capacity cuts through residents tied in score (and margin), the headline's precision and recall at
    capacity count the escalations found over every order of the tie (modeling.metrics.RankedList), not those
    of the one order the flagged column took: the shares are then None (published beside the headline, two
    different numbers found for one list would let the differencing attack pin a withheld one)."""
    out = []
    for as_of, part in frame.groupby("as_of", sort=True):
        flagged = part[part["flagged"]]
        found, positives = int(flagged["label"].sum()), int(part["label"].sum())
        if _tie_at_capacity(part):
            out.append({"as_of": pd.Timestamp(as_of).date().isoformat(),
                        "cohort": published_count(len(part), min_cell, round_to),
                        "flagged": published_count(len(flagged), min_cell, round_to),
                        "escalated_share": None, "missed_share": None})
            continue
        out.append(
            {
                "as_of": pd.Timestamp(as_of).date().isoformat(),
                "cohort": published_count(len(part), min_cell, round_to),
                "flagged": published_count(len(flagged), min_cell, round_to),
                "escalated_share": (
                    None if is_small(positives, min_cell) else published_rate(found, len(flagged), min_cell, round_to)
                ),
                # Found and missed split the same escalations: with 1-9 found, "missed" would round to 100%.
                "missed_share": (
                    None if is_small(found, min_cell)
                    else published_rate(positives - found, positives, min_cell, round_to)
                ),
            }
        )
    return out


def missingness(
    sample: pd.DataFrame,
    feature_columns: Sequence[str],
    protected: Sequence[str],
    min_cell: int = 10,
    round_to: int = 5,
    not_recorded_group: str = NOT_RECORDED,
) -> dict[str, Any]:
    """Share not recorded per protected characteristic, and share missing per feature (where any).

    Not recorded: null, blank, or the data dictionary's not-recorded group (`not_recorded_group`).
    Shares are computed from rounded counts; a share resting on 1 to min_cell - 1 residents is None.
    """
    attributes = []
    for attribute in protected:
        column = f"attr__{attribute}"
        if column in sample.columns:
            missing = int(not_recorded_mask(group_labels(sample, attribute), not_recorded_group).sum())
            attributes.append(
                {"attribute": attribute, "share_not_recorded": published_rate(missing, len(sample), min_cell, round_to)}
            )
    features = []
    for name in feature_columns:
        if name in sample.columns:
            missing = int(sample[name].isna().sum())
            if missing > 0:
                features.append(
                    {"feature": name, "share_missing": published_rate(missing, len(sample), min_cell, round_to)}
                )
    return {"attributes": attributes, "features": features, "rows": published_count(len(sample), min_cell, round_to)}


def recording_by_group(
    sample: pd.DataFrame,
    feature_records: Sequence[dict[str, Any]],
    protected: Sequence[str],
    min_cell: int,
    round_to: int,
    not_recorded_group: str = NOT_RECORDED,
    group_words: Mapping[str, Mapping[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Per group: how full its records are (share with no recorded event at all, mean recorded events),
    and how often each other protected characteristic is not recorded. Groups under min_cell are suppressed.

    A group whose files are fuller for the same need is more visible to the model (surveillance bias).
    """
    counts = [
        str(f["name"]) for f in feature_records
        if f.get("aggregate") == "count" and f.get("window") == "all" and f.get("name") in sample.columns
    ] or [
        str(f["name"]) for f in feature_records
        if f.get("aggregate") == "count" and f.get("name") in sample.columns
    ]
    events = sample[counts].fillna(0).sum(axis=1) if counts else pd.Series(np.nan, index=sample.index)
    labels = {a: group_labels(sample, a, group_words) for a in protected if f"attr__{a}" in sample.columns}
    # Only characteristics that are ever unrecorded are worth a column.
    gappy = [a for a, values in labels.items() if not_recorded_mask(values, not_recorded_group).any()]
    sizes = pd.DataFrame(
        [
            {"characteristic": a, "group": g, "n": int((groups == g).sum())}
            for a, groups in labels.items()
            for g in sorted(groups.unique(), key=_age_sort_key if a == "age_band" else (lambda g: (0.0, g)))
        ],
        columns=["characteristic", "group", "n"],
    )
    # The same primary and secondary rules as the fairness tables, on group size alone.
    hidden = suppression_reasons(sizes.assign(positives=sizes["n"]), min_cell).notna() if len(sizes) else []
    rows: list[dict[str, Any]] = []
    for (_, size), is_hidden in zip(sizes.iterrows(), hidden, strict=True):
        attribute, group = size["characteristic"], size["group"]
        row: dict[str, Any] = {"characteristic": attribute, "group": group}
        if is_hidden:
            row.update({"n": None, "suppressed": True})
            rows.append(row)
            continue
        members = labels[attribute] == group
        row.update(
            {
                "n": round_count(int(size["n"]), round_to),
                "suppressed": False,
                "share_no_recorded_events": (
                    published_rate(int((events[members] == 0).sum()), int(members.sum()), min_cell, round_to)
                    if counts else None
                ),
                "mean_recorded_events": published_figure(events[members].mean(), 1) if counts else None,
                "not_recorded": {
                    other: published_rate(
                        int(not_recorded_mask(labels[other][members], not_recorded_group).sum()), int(members.sum()),
                        min_cell, round_to,
                    )
                    for other in gappy if other != attribute
                },
            }
        )
        rows.append(row)
    return rows


THRESHOLD_METRICS = ("precision_at_capacity", "recall_at_capacity", "lift_at_capacity")
# Figures over the ranking of every escalation: over a handful of escalations (or non-escalations) they
# show where those few residents sit in the list, so they are withheld with the count.
RANKING_METRICS = ("roc_auc", "average_precision")
ESCALATIONS_WITHHELD = ("the date's escalations are a small number (1 to min_cell - 1): they are withheld, and so is "
                        "every figure over them (an AUC over a few escalations shows where they sit in the ranking)")
NON_ESCALATIONS_WITHHELD = ("the date's residents who did not escalate are a small number (1 to min_cell - 1): an "
                            "AUC over them would show where those few residents sit in the ranking")


def ranking_withheld(split: dict[str, Any], min_cell: int) -> str | None:
    """Why a test split's AUC and average precision are withheld (its escalations or non-escalations are
    1 to min_cell - 1), or None when they are shown. split: the training run's exact split (n, positives)."""
    n, positives = int(split["n"]), int(split["positives"])
    if is_small(positives, min_cell):
        return ESCALATIONS_WITHHELD
    if is_small(n - positives, min_cell):
        return NON_ESCALATIONS_WITHHELD
    return None


def published_split(split: dict[str, Any], min_cell: int, round_to: int) -> dict[str, Any]:
    """One test split's metrics as published: counts rounded, base rate and threshold metrics from rounded counts.

    Precision at capacity times k (public) is the number of flagged residents who escalated, so it
    is recomputed from that number rounded (None when it is 1 to min_cell - 1); recall and lift follow.
    At a date whose escalations are withheld (1 to min_cell - 1) every scorer's figures at capacity are
    withheld, a zero included. Intervals of threshold metrics are dropped (they are resampled from the exact counts).
    """
    n, positives, k = int(split["n"]), int(split["positives"]), int(split["k"])
    out = {**split, "n": published_count(n, min_cell, round_to), "positives": published_count(positives, min_cell, round_to),
           "base_rate": published_rate(positives, n, min_cell, round_to)}
    scorers = {}
    # With the date's escalations withheld (1 to min_cell - 1), no scorer's figure at capacity is shown, a
    # zero included: "none of its flagged escalated" beside a withheld count of escalations states that every
    # one of them was missed, i.e. the withheld count is the "missed" cell, and it tells a hidden 1-9 from 0.
    escalations_withheld = is_small(positives, min_cell)
    ranking_reason = ranking_withheld(split, min_cell)
    withheld: dict[str, str] = {}
    for scorer, values in split.get("scorers", {}).items():
        values = dict(values)
        if ranking_reason is not None:
            for metric in RANKING_METRICS:
                if metric in values:
                    values[metric] = {"value": None, "ci_low": None, "ci_high": None}
                    withheld[metric] = ranking_reason
        if escalations_withheld:
            withheld.update(dict.fromkeys((m for m in THRESHOLD_METRICS if m in values), ESCALATIONS_WITHHELD))
        precision = (values.get("precision_at_capacity") or {}).get("value")
        if escalations_withheld:
            for metric in THRESHOLD_METRICS:
                if metric in values or precision is not None:
                    values[metric] = {"value": None, "ci_low": None, "ci_high": None}
        elif precision is not None and k > 0:
            found = round(precision * k, 6)  # an expected count when ties straddle k: may be fractional
            shown = published_count(found, min_cell, round_to)
            base = out["base_rate"]
            recomputed = {
                "precision_at_capacity": None if shown is None else shown / k,
                "recall_at_capacity": published_rate(found, positives, min_cell, round_to),
                "lift_at_capacity": (shown / k) / base if shown is not None and base else None,
            }
            for metric in THRESHOLD_METRICS:
                values[metric] = {"value": recomputed[metric], "ci_low": None, "ci_high": None}
        scorers[scorer] = values
    out["scorers"] = scorers
    out["withheld"] = withheld
    return out


def _found(split: dict[str, Any], scorer: str) -> float | None:
    """Flagged residents who escalated in one split (precision at capacity times k; may be fractional with ties)."""
    precision = ((split.get("scorers", {}).get(scorer) or {}).get("precision_at_capacity") or {}).get("value")
    return None if precision is None else round(float(precision) * int(split["k"]), 6)


def _small(count: float, min_cell: int) -> bool:
    return 0 < count < min_cell


def published_summary(
    summary: dict[str, Any], splits: Sequence[dict[str, Any]], published_splits: Sequence[dict[str, Any]],
    min_cell: int, round_to: int,
) -> dict[str, Any]:
    """The summary over test dates as published (docs/adr/0015), for precision, recall and lift at capacity:

    - the mean of the per-date figures computed from rounded counts, with the training run's interval,
      when no date has a small count of flagged who escalated, flagged who did not, or escalations missed;
    - else the figure pooled over the test dates from rounded totals (`pooled: true`), with the interval
      only when none of those totals is small; None when the total of flagged who escalated is small.

    `splits` are the training run's exact splits, `published_splits` the same after `published_split`.
    """
    out: dict[str, Any] = {}
    for scorer, metrics in summary.items():
        values = {m: dict(v) if isinstance(v, dict) else v for m, v in metrics.items()}
        found = [_found(split, scorer) for split in splits]
        if splits and len(splits) == len(published_splits) and all(f is not None for f in found):
            ks = [int(split["k"]) for split in splits]
            positives = [int(split["positives"]) for split in splits]
            ns = [int(split["n"]) for split in splits]
            per_date_small = any(
                _small(f, min_cell) or _small(k - f, min_cell) or _small(p - f, min_cell)  # type: ignore[operator]
                for f, k, p in zip(found, ks, positives, strict=True)
            )
            total = float(sum(found))  # type: ignore[arg-type]
            totals_small = any(_small(c, min_cell) for c in (total, sum(ks) - total, sum(positives) - total))
            shown_total = published_count(total, min_cell, round_to)
            base = published_rate(sum(positives), sum(ns), min_cell, round_to)
            pooled = {
                "precision_at_capacity": None if shown_total is None else shown_total / sum(ks),
                "recall_at_capacity": published_rate(total, sum(positives), min_cell, round_to),
                "lift_at_capacity": (shown_total / sum(ks)) / base if shown_total is not None and base else None,
            }
            if is_small(sum(positives), min_cell):
                # The escalations over the dates are withheld: no figure at capacity beside them, not even 0.
                pooled = dict.fromkeys(pooled)
            for metric in THRESHOLD_METRICS:
                if metric not in values:
                    continue
                entry = values[metric] if isinstance(values[metric], dict) else {}
                if not per_date_small:
                    shown = [((p.get("scorers", {}).get(scorer) or {}).get(metric) or {}).get("value")
                             for p in published_splits]
                    value = None if any(v is None for v in shown) else float(np.mean(shown))
                    values[metric] = {"value": value, "ci_low": entry.get("ci_low") if value is not None else None,
                                      "ci_high": entry.get("ci_high") if value is not None else None}
                else:
                    value = pooled[metric]
                    keep = value is not None and not totals_small
                    values[metric] = {"value": value, "ci_low": entry.get("ci_low") if keep else None,
                                      "ci_high": entry.get("ci_high") if keep else None, "pooled": True}
        elif splits:
            # A scorer missing from some test date has no mean over the dates to show.
            for metric in THRESHOLD_METRICS:
                if metric in values:
                    values[metric] = {"value": None, "ci_low": None, "ci_high": None}
        _ranking_summary(values, scorer, splits, published_splits, min_cell)
        out[scorer] = values
    return out


def _ranking_summary(values: dict[str, Any], scorer: str, splits: Sequence[dict[str, Any]],
                     published_splits: Sequence[dict[str, Any]], min_cell: int) -> None:
    """AUC and average precision over the test dates when some date's are withheld: the mean over the dates
    shown, without the run's interval (it covers every date), naming the dates left out; the mean over every
    date, beside the others, would give a withheld one back. In place; unchanged when no date is withheld."""
    hidden = [ranking_withheld(split, min_cell) is not None for split in splits]
    if not any(hidden) or len(splits) != len(published_splits):
        return
    shown = [p for p, h in zip(published_splits, hidden, strict=True) if not h]
    for metric in RANKING_METRICS:
        if metric not in values:
            continue
        figures = [((p.get("scorers", {}).get(scorer) or {}).get(metric) or {}).get("value") for p in shown]
        value = float(np.mean(figures)) if figures and all(f is not None for f in figures) else None
        values[metric] = {
            "value": value, "ci_low": None, "ci_high": None,
            "over_test_dates": [p["test_as_of"] for p in shown],
            "withheld_test_dates": [p["test_as_of"] for p, h in zip(published_splits, hidden, strict=True) if h],
        }


def published_baseline_differences(
    differences: dict[str, Any] | None, splits: Sequence[dict[str, Any]], min_cell: int
) -> dict[str, Any] | None:
    """The run's model-minus-baseline differences as published: AUC and average precision dropped when some
    test date's are withheld (their mean over every date, less the dates shown, gives the hidden date's)."""
    if not differences or not any(ranking_withheld(split, min_cell) for split in splits):
        return differences
    return {baseline: {m: v for m, v in per_metric.items() if m not in RANKING_METRICS}
            for baseline, per_metric in differences.items()}


def published_criterion(criterion: dict[str, Any], summary: dict[str, Any], round_to: int = 5) -> dict[str, Any]:
    """The criterion as published: its value and interval from the published summary; `met` stays the
    pre-registered verdict on the exact figure, and `note` says so when the shown figure sits on the other
    side of the threshold (so the report never shows MET beside a figure that reads NOT MET)."""
    out = dict(criterion)
    metric, threshold, met = out.get("metric"), out.get("threshold"), out.get("met")
    # A ranking metric's summary differs from the run's only when a test date's figure is withheld.
    withheld_dates = (summary.get("model", {}).get(metric) or {}).get("withheld_test_dates")
    if (metric in THRESHOLD_METRICS or (metric in RANKING_METRICS and withheld_dates)) and metric in summary.get("model", {}):
        entry = summary["model"][metric]
        out.update(value=entry.get("value"), ci_low=entry.get("ci_low"), ci_high=entry.get("ci_high"))
        if "oracle" in summary and metric in summary["oracle"]:
            oracle = summary["oracle"][metric]
            out.update(oracle_value=oracle.get("value"), oracle_ci_low=oracle.get("ci_low"),
                       oracle_ci_high=oracle.get("ci_high"))
    value = out.get("value")
    out["note"] = None
    if met is not None and value is None:
        out["note"] = (f"The criterion was judged on the exact figure, which is {'at or above' if met else 'below'} "
                       f"{threshold}; the figure itself is not shown because a count behind it is small.")
    elif met is not None and threshold is not None and (value >= threshold) != bool(met):
        why = (f"is the mean over the test dates whose figure is shown (withheld at {', '.join(withheld_dates)})"
               if metric in RANKING_METRICS and withheld_dates else
               f"is computed from counts rounded to the nearest {round_to}")
        out["note"] = (
            f"The criterion was judged on the exact figure, which is {'at or above' if met else 'below'} {threshold}; "
            f"the {value:.3f} shown {why} and so falls on the other side."
        )
    if met is not None:
        shown = "not shown (small numbers)" if value is None else f"{value:.3f}"
        out["statement"] = f"{'MET' if met else 'NOT MET'}: {metric} = {shown} (pre-registered threshold {threshold:.3f})"
    return out


def _capacity_words(config: ProjectConfig) -> str:
    parts = []
    if config.capacity.k is not None:
        parts.append(str(config.capacity.k))
    if config.capacity.top_percent is not None:
        parts.append(f"{config.capacity.top_percent:g}%")
    return " or ".join(parts) + (" (whichever is smaller)" if len(parts) == 2 else "")


def _model_card(
    config: ProjectConfig, model: dict[str, Any], data: dict[str, Any], criterion: dict[str, Any], inputs_sentence: str = "",
    not_audited: Sequence[str] = (),
    recorded_for_nobody: Sequence[str] = (),
) -> list[dict[str, str]]:
    what, when = outcome_phrase(config.label.outcome_types, config.label.horizon_text, outcome_labels(config))
    cohort = cohort_words(config)
    features = data.get("features", [])
    sources = ", ".join(data.get("sources", [])) or "NOT PROVIDED"
    return [
        {"title": "Model details", "text": (
            f"{model['name']} version {model['version']} (MLflow run {model['run_id']}): a LightGBM gradient-boosted "
            f"tree model with {config.model.calibration} calibration, predicting {what} {when}. "
            f"Feature spec hash {model.get('spec_hash') or 'not recorded'}; data fingerprint "
            f"{model.get('data_fingerprint') or 'not recorded'}.")},
        {"title": "Intended use", "text": (
            f"To help a team decide whose case to look at first: {cohort} are ranked and the top "
            f"{_capacity_words(config)} per as-of date (the team's capacity) are flagged for a human review. Not for automated decisions, "
            "not for eligibility, enforcement or any decision about an individual without a practitioner's judgement.")},
        {"title": "Factors", "text": (
            "Performance and error rates are reported by " + ", ".join(config.audit.protected)
            + (" and the intersections " + "; ".join(" + ".join(i) for i in config.audit.intersections) if config.audit.intersections else "")
            # A characteristic the Fairness section shows as NOT PROVIDED is not "reported by" here either.
            + _not_audited_words(not_audited, recorded_for_nobody)
            # Said from the model's own inputs: "not inputs" beside a model that uses age would contradict itself.
            + ". " + inputs_sentence)},
        {"title": "Metrics", "text": (
            "Precision and recall at capacity (the share of flagged cases that escalated, and the share of escalations "
            "flagged), AUC, average precision, calibration; the pre-registered criterion is "
            f"{METRIC_WORDS.get(criterion.get('metric', ''), criterion.get('metric'))} ≥ {criterion.get('threshold')}.")},
        {"title": "Evaluation data", "text": (
            f"Later as-of dates held out in time (rolling origin): {', '.join(data.get('test_as_of', [])) or 'NOT PROVIDED'}. "
            "Every test date lies after all data used to train the model evaluated on it.")},
        {"title": "Training data", "text": (
            f"Linked council records from: {sources}; {len(features)} features; as-of dates "
            f"{data.get('period', {}).get('trained_from') or data.get('period', {}).get('first_as_of')} to "
            f"{data.get('period', {}).get('trained_to') or data.get('period', {}).get('last_as_of')}; "
            f"extract date {data.get('period', {}).get('extract_date')}.")},
        {"title": "Quantitative analyses", "text": (
            "Section 'Performance over time' gives metrics per test date (with 95% bootstrap intervals where no "
            "count behind them is small) against simple "
            "baselines; section 'Fairness' gives metrics per group and intersection with disparity ratios and intervals.")},
        {"title": "Ethical considerations", "text": (
            "Administrative records reflect who is seen by services, not only who needs help: groups that are more "
            "watched are more recorded (surveillance bias)"
            # Only a model with household or address features attaches other people's records to a person.
            + (", and household- and address-level features attach others' histories to a person"
               if _shared_scopes(config) else "")
            + ". Being flagged can bring unwanted attention. The label is a recorded service decision, "
            "not harm itself.")},
        {"title": "Caveats and recommendations", "text": (
            "Use the score only alongside what practitioners know; record overrides; re-run this audit at every retraining "
            "and whenever the population or recording practice changes; do not use outside the cohort and label it was "
            "validated for.")},
    ]


def _not_audited_words(not_in_predictions: Sequence[str], recorded_for_nobody: Sequence[str]) -> str:
    """' (age_band: not in the test predictions; disability: recorded for nobody in them; so not audited)', or ''."""
    reasons = ([f"{', '.join(not_in_predictions)}: not in the test predictions"] if not_in_predictions else []) + (
        [f"{', '.join(recorded_for_nobody)}: recorded for nobody in them" if not_in_predictions
         else f"{', '.join(recorded_for_nobody)}: recorded for nobody in the test predictions"]
        if recorded_for_nobody else [])
    return f" ({'; '.join(reasons)}, so not audited)" if reasons else ""


def _shared_scopes(config: ProjectConfig) -> bool:
    """True when a feature family reads beyond the person (household or address scope)."""
    return any(scope != "resident" for family in config.features.families for scope in family.scopes)


def _limitations(config: ProjectConfig, data: dict[str, Any]) -> list[str]:
    what, when = outcome_phrase(config.label.outcome_types, config.label.horizon_text, outcome_labels(config))
    period = data.get("period", {})
    return [
        f"The label is a recorded service decision ({what} {when}), not harm itself: people who were harmed but never "
        "reached services count as negatives, and decisions shaped by past practice are learned as if they were truth.",
        f"The model was {_used_dates(period)} "
        f"with data extracted on {period.get('extract_date')}; behaviour after changes in services, recording or population "
        "is unknown until re-audited.",
        f"It has not been validated for anyone outside the cohort ({cohort_words(config)}), "
        "for other outcomes or horizons, for other councils, or as a threshold for any action.",
        "Groups with fewer people or escalations than the small-number threshold are suppressed, so disparities in small "
        "groups cannot be assessed from this report.",
        "Fairness is assessed against recorded outcomes; if recording itself differs between groups, equal error rates on "
        "recorded outcomes do not guarantee equal treatment.",
    ]


SHORT_HISTORY_SHARE = 0.5  # a driver known at fewer of the matrix's rows than this is annotated


def short_history_note(feature: str, feature_metadata: Mapping[str, Any]) -> str | None:
    """A sentence for a driver whose window reached before its source's records began at most of the matrix's
    rows (the sidecar's `windows_before_data_start` over the rows of every as_of), else None."""
    nulled = int((feature_metadata.get("windows_before_data_start") or {}).get(feature, 0))
    total = sum(int(v) for v in (feature_metadata.get("rows_per_as_of") or {}).values())
    if not nulled or not total or 1 - nulled / total >= SHORT_HISTORY_SHARE:
        return None
    known = max(0, min(100, math.floor(100 * (1 - nulled / total))))
    return (f"Known at only {known}% of the rows the model learnt from and was tested on: at earlier as-of dates its "
            "window reached back before the records began, so it was left blank there. How the model uses it once "
            "it is known for everyone rests on few dates.")


def build_audit(
    *,
    config: ProjectConfig,
    model: dict[str, Any],
    predictions: pd.DataFrame,
    metrics: dict[str, Any],
    feature_metadata: dict[str, Any],
    explain_sample: pd.DataFrame,
    contributions: np.ndarray | None,
    approval: ApprovalRecord | None,
    audit_config: ProjectConfig | None = None,
) -> dict[str, Any]:
    """The whole audit as JSON-ready data. `config` is the training run's; `audit_config` supplies audit and governance."""
    settings = (audit_config or config).audit
    governance = (audit_config or config).governance
    seed = (audit_config or config).project.seed
    what, when = outcome_phrase(config.label.outcome_types, config.label.horizon_text, outcome_labels(config))
    # A model trained with training.n_test_splits 0 (or whose every split was skipped) has no test
    # rows: every place a metric would be says NOT EVALUATED instead.
    evaluated = bool(metrics.get("evaluated", True))
    frame = evaluated_rows(predictions) if evaluated else predictions.iloc[:0]
    feature_columns = list(feature_metadata.get("feature_columns", []))
    feature_records = feature_metadata.get("features", [])

    # --- data
    from earlysignal.dictionary import dictionary_for

    not_recorded_group = dictionary_for(config).not_recorded.group
    group_words = dictionary_for(config).boolean_group_words()
    as_of_dates = [str(d) for d in feature_metadata.get("as_of_dates", [])]
    rows_per = feature_metadata.get("rows_per_as_of", {}) or {}
    prevalence = feature_metadata.get("label_prevalence_per_as_of", {}) or {}
    cohort_rows = []
    for as_of in sorted(set(rows_per) | set(prevalence)):
        cohort_rows.append(
            {
                "as_of": str(as_of),
                "cohort": round_count(rows_per[as_of], settings.round_to) if as_of in rows_per else None,
                # From the rounded cohort and the rounded number of escalations, like every published rate.
                "prevalence": (
                    published_rate(round(float(prevalence[as_of]) * rows_per[as_of]), rows_per[as_of],
                                   settings.min_cell, settings.round_to)
                    if as_of in rows_per and _num(prevalence.get(as_of)) is not None else None
                ),
            }
        )
    sources = sorted({str(f.get("source")) for f in feature_records if f.get("source")})
    data = {
        "sources": sources,
        "period": {
            "first_as_of": as_of_dates[0] if as_of_dates else None,
            "last_as_of": as_of_dates[-1] if as_of_dates else None,
            "extract_date": feature_metadata.get("extract_date"),
        },
        "test_as_of": sorted({pd.Timestamp(d).date().isoformat() for d in frame["as_of"].unique()}),
        "cohort_per_as_of": cohort_rows,
        "missingness": missingness(explain_sample, feature_columns, settings.protected, settings.min_cell,
                                   settings.round_to, not_recorded_group),
        "linkage": linkage_section(feature_metadata.get("linkage"), settings.min_cell, settings.round_to),
        "recording_by_group": recording_by_group(
            explain_sample, feature_records, settings.protected, settings.min_cell, settings.round_to,
            not_recorded_group, group_words,
        ),
        "features": [
            {
                "name": f.get("name"),
                "description": describe_feature(str(f.get("description", ""))),
                "source": f.get("source"),
                "scope": f.get("scope"),
                "window": f.get("window"),
                "aggregate": f.get("aggregate"),
            }
            for f in feature_records
            if f.get("name") in feature_columns or not feature_columns
        ],
    }

    # --- performance
    summary = metrics.get("summary", {})
    criterion = dict(metrics.get("success_criterion", {}))
    # Runs logged before the criterion carried the oracle's value: take it from the oracle's summary row.
    if criterion.get("oracle_value") is None and criterion.get("metric") in summary.get("oracle", {}):
        oracle_entry = summary["oracle"][criterion["metric"]]
        criterion.update(oracle_value=oracle_entry.get("value"), oracle_ci_low=oracle_entry.get("ci_low"),
                         oracle_ci_high=oracle_entry.get("ci_high"))
    capacity_per = {str(k): int(v) for k, v in (metrics.get("capacity_k_per_as_of") or {}).items()}
    # The training run's exact counts stay in MLflow; the audit shows them rounded like every other count.
    splits = [published_split(split, settings.min_cell, settings.round_to) for split in metrics.get("splits", [])]
    # The summary and the criterion show the same figures as the per-date tables, from rounded counts.
    summary = published_summary(summary, metrics.get("splits", []), splits, settings.min_cell, settings.round_to)
    criterion = published_criterion(criterion, summary, settings.round_to)
    performance = {
        "splits": splits,
        "summary": summary,
        # Worse than chance with the interval excluding 0.5: stated in the report, never shown silently.
        "below_chance": below_chance(summary),
        # Model against the logistic and one-feature baselines, from the run's paired differences. AUC and average
        # precision only: a difference of precisions at capacity is a difference of exact flagged counts.
        "baseline_comparison": baseline_comparison(published_baseline_differences(
            metrics.get("model_minus_baseline"), metrics.get("splits", []), settings.min_cell)),
        "k_curves": k_curves(frame, capacity_per, settings.min_cell, settings.round_to) if evaluated else {},
        "calibration": (calibration_curve(frame, min_cell=settings.min_cell, round_to=settings.round_to)
                        if evaluated else []),
        "flagged_outcomes": flagged_outcomes(frame, settings.round_to, settings.min_cell) if evaluated else [],
        "evaluated": evaluated,
        "bootstrap": metrics.get("bootstrap"),
        # Fraction and method only: the exact row counts stay in MLflow.
        "sampling": {k: v for k, v in (metrics.get("sampling") or {}).items() if k != "fit_rows_per_split"} or None,
        "one_feature_baseline": metrics.get("one_feature_baseline"),
        "capacity_k_per_as_of": capacity_per,
        "temporal_plan": temporal_plan(metrics.get("split_plan")),
        "label_horizon_months": config.label.horizon_months,
        "label_horizon": config.label.horizon_text,
    }
    data["period"].update(trained_period(performance["temporal_plan"], data.get("test_as_of", [])))

    # --- fairness and small numbers
    fairness = {
        "ratio_band": list(settings.ratio_band), "bootstrap": settings.bootstrap,
        "ratio_metrics": [], "characteristics": [], "findings": [], "evaluated": False,
    } if not evaluated else audit_fairness(
        frame,
        characteristics(settings.protected, settings.intersections),
        reference_groups=dict(settings.reference_groups),
        ratio_band=settings.ratio_band,
        bootstrap=settings.bootstrap,
        min_cell=settings.min_cell,
        round_to=settings.round_to,
        seed=seed,
        outcome=f"{what} {when}",
        group_words=group_words,
        not_recorded_group=not_recorded_group,
    )
    for block in fairness["characteristics"]:  # type: ignore[union-attr]
        if block.get("attributes") == ["age_band"] and "groups" in block:
            block["groups"].sort(key=lambda g: _age_sort_key(g["group"]))
    suppressed = [
        {"characteristic": c["key"], "group": g["group"], "reason": g["suppressed"], "table": "Fairness"}
        for c in fairness["characteristics"]  # type: ignore[union-attr]
        for g in c.get("groups", [])
        if g["suppressed"]
    ]
    # Every table that hides a group is listed, so "No group needed suppression" is never printed beside a
    # Data table that shows one suppressed.
    suppressed += [
        {"characteristic": r["characteristic"], "group": r["group"], "reason": "sample", "table": "Records by group"}
        for r in data["recording_by_group"] if r.get("suppressed")
    ]
    suppressed += [
        {"characteristic": r["characteristic"], "group": r["group"], "reason": "linkage", "table": "Who fails to link"}
        for r in (data["linkage"] or {}).get("unlinked_by_group", []) if r.get("suppressed")
    ]

    # --- drivers
    importance: list[dict[str, Any]] = []
    usable = [c for c in feature_columns if c in explain_sample.columns]
    if contributions is not None and usable:
        contrib = pd.DataFrame(np.asarray(contributions)[:, : len(feature_columns)], columns=feature_columns)
        importance = global_importance(explain_sample[feature_columns].reset_index(drop=True), contrib)
    descriptions = {f["name"]: f["description"] for f in data["features"]}
    for item in importance:
        item["description"] = descriptions.get(item["feature"], "")
        note = short_history_note(item["feature"], feature_metadata)
        if note:
            item["history_note"] = note
    proxies = proxy_check(explain_sample, usable, settings.protected, settings.min_cell, group_words) if usable else []
    # Which inputs are a protected characteristic (or stand in for one): from the model's feature list.
    protected_names = list(dict.fromkeys([*settings.protected, *config.features.protected_as_features]))
    inputs = protected_inputs(
        feature_records, feature_columns, protected_names, (audit_config or config).necessity.proxy_groups
    )
    inputs_sentence = protected_inputs_sentence(inputs, protected_names)
    data["protected_inputs"] = inputs
    data["protected_inputs_sentence"] = inputs_sentence
    direct_inputs = {(i["feature"], i["characteristic"]) for i in inputs if i["kind"] != "declared proxy"}
    for item in proxies:
        item["description"] = descriptions.get(item["feature"], "")
        # A feature that is the characteristic itself is not a hidden proxy: it says so instead.
        item["is_input_for"] = sorted(c for f, c in direct_inputs if f == item["feature"])
    for block in fairness["characteristics"]:  # type: ignore[union-attr]
        if "groups" in block:
            block["ratio_note"] = ratio_table_note(block, settings.min_cell)
    fairness["findings_note"] = None if fairness["findings"] else findings_note(fairness, settings.min_cell)

    model_doc = dict(model)
    model_doc["label"] = {
        "name": config.label.name,
        "outcome_types": list(config.label.outcome_types),
        "horizon_months": config.label.horizon_months,
        "words": f"{what} {when}",
    }
    headline = {m: summary.get("model", {}).get(m) for m in ("precision_at_capacity", "recall_at_capacity", "roc_auc", "average_precision")}
    governance_fields = [
        {"field": key, "label": label, "value": getattr(governance, key, "") or None}
        for key, label in GOVERNANCE_LABELS.items()
    ]
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "model": model_doc,
        "summary": {
            "predicts": f"{what} {when}",
            "cohort": cohort_words(config),
            "decision_point": governance.decision_point or None,
            "capacity": {"k": config.capacity.k, "top_percent": config.capacity.top_percent},
            "headline": headline,
            "criterion": criterion,
            "evaluated": evaluated,
            "findings": fairness["findings"],
            "findings_note": fairness["findings_note"],
        },
        "governance": governance_fields,
        "model_card": _model_card(
            config, model_doc, data, criterion, inputs_sentence,
            [c["key"] for c in fairness["characteristics"] if c.get("missing_column")],  # type: ignore[union-attr]
            [c["key"] for c in fairness["characteristics"] if c.get("not_recorded_for_all")],  # type: ignore[union-attr]
        ),
        "data": data,
        "performance": performance,
        "fairness": fairness,
        "small_numbers": {
            "min_cell": settings.min_cell,
            "round_to": settings.round_to,
            "suppressed": suppressed,
        },
        "drivers": {"importance": importance, "proxy": proxies, "proxy_threshold": PROXY_AUC_WARN,
                    "opposing": opposing_drivers(importance, feature_records)},
        "limitations": _limitations(config, data),
        "approval": approval.as_dict() if approval is not None else None,
    }

"""Fairness at the operating point: per-group metrics (fairlearn MetricFrame), disparity ratios
against a reference group with stratified bootstrap intervals, and findings in plain words.

The operating point is the model as used: the `flagged` column (the top of the list at capacity
per as_of). Every rate below is computed on test rows whose label is known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from earlysignal.config import ProjectConfig

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from sklearn.metrics import roc_auc_score

from earlysignal.audit.groups import (
    NOT_RECORDED, GroupWords, characteristic_key, labels_for, not_recorded_mask, reference_group,
)
from earlysignal.audit.disclosure import published_count, published_figure, published_rate
from earlysignal.audit.suppression import apply_suppression, round_count
from earlysignal.modeling.metrics import tie_order_key

# Metrics whose disparity ratios are tested, with the words used to explain a finding.
RATIO_METRICS: dict[str, str] = {
    "selection_rate": "flagged",
    "precision": "precision",
    "recall": "recall",
    "fpr": "false positive rate",
    "fnr": "false negative rate",
}

GROUP_METRIC_COLUMNS = (
    "prevalence",
    "selection_rate",
    "precision",
    "recall",
    "fpr",
    "fnr",
    "auc",
    "mean_score",
    "calibration_ratio",
)
COUNT_COLUMNS = ("n", "positives", "flagged")


def _group_summary(
    y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray, order: np.ndarray, period: np.ndarray
) -> np.ndarray:
    """[n, TP, FP, FN, TN, sum of scores, AUC] for one group.

    AUC is computed as the headline AUC is: on the list's ordering (`order`: equal where the list
    ties), within each test as_of (`period`), then averaged over the as_of dates where the group has
    both classes (NaN when it has none).
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    s = np.asarray(score, dtype=float)
    key = np.asarray(order, dtype=float)
    period = np.asarray(period)
    aucs = []
    for value in np.unique(period):
        inside = period == value
        if 0 < y[inside].sum() < inside.sum():
            aucs.append(float(roc_auc_score(y[inside], key[inside])))
    auc = float(np.mean(aucs)) if aucs else math.nan
    return np.array(
        [len(y), np.sum(y & p), np.sum(~y & p), np.sum(y & ~p), np.sum(~y & ~p), s.sum(), auc], dtype=float
    )


def order_key(frame: pd.DataFrame) -> np.ndarray:
    """Per row, the list's ordering within its as_of: score, then the raw margin when the frame has one."""
    score = frame["score"].astype(float).to_numpy()
    if "margin" not in frame.columns or frame["margin"].isna().any():
        return score
    return tie_order_key(score, frame["margin"].astype(float).to_numpy())


def group_metric_frame(frame: pd.DataFrame, groups: pd.Series) -> MetricFrame:
    """fairlearn MetricFrame of each group's confusion counts, score sum and AUC at the operating point.

    One summary metric rather than one metric per rate: fairlearn re-stacks every argument column
    for every metric and group, which at borough scale (200k rows) cost a minute for twelve metrics;
    every rate follows exactly from the counts (`group_table`).
    """
    period = frame["as_of"].astype(str).to_numpy() if "as_of" in frame.columns else np.zeros(len(frame))
    return MetricFrame(
        metrics={"summary": _group_summary},
        y_true=frame["label"].astype(int).to_numpy(),
        y_pred=frame["flagged"].astype(bool).astype(int).to_numpy(),
        sensitive_features=groups.to_numpy(),
        sample_params={
            "summary": {
                "score": frame["score"].astype(float).to_numpy(),
                "order": order_key(frame),
                "period": period,
            }
        },
    )


def group_table(frame: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Per group: counts, prevalence, selection rate, precision, recall, FPR, FNR, AUC and calibration."""
    by_group = group_metric_frame(frame, groups).by_group["summary"]
    rows = []
    for group, values in by_group.items():
        n, tp, fp, fn, tn, score_sum, auc = (float(v) for v in values)
        with np.errstate(divide="ignore", invalid="ignore"):
            rows.append(
                {
                    "group": group,
                    "n": n,
                    "tp": tp,
                    "fp": fp,
                    "fn": fn,
                    "tn": tn,
                    "positives": tp + fn,
                    "flagged": tp + fp,
                    "prevalence": (tp + fn) / n if n else math.nan,
                    "selection_rate": (tp + fp) / n if n else math.nan,
                    "precision": tp / (tp + fp) if tp + fp else math.nan,
                    "recall": tp / (tp + fn) if tp + fn else math.nan,
                    "fpr": fp / (fp + tn) if fp + tn else math.nan,
                    "fnr": fn / (tp + fn) if tp + fn else math.nan,
                    "auc": auc,
                    "mean_score": score_sum / n if n else math.nan,
                    # Observed over expected: 1 means the scores match this group's escalation rate.
                    "calibration_ratio": (tp + fn) / score_sum if score_sum > 0 else math.nan,
                }
            )
    return pd.DataFrame(rows)


def published_group_figures(row: pd.Series | dict, min_cell: int, round_to: int) -> dict[str, float | None]:
    """A group's rates as published: from its rounded counts, None where a count behind them is small.

    row holds the exact counts n, tp, fp, fn, tn and the exact figures auc and mean_score.
    """
    n, tp, fp, fn, tn = (float(row[c]) for c in ("n", "tp", "fp", "fn", "tn"))
    positives, flagged, negatives = tp + fn, tp + fp, fp + tn
    out = {
        "prevalence": published_rate(positives, n, min_cell, round_to),
        "selection_rate": published_rate(flagged, n, min_cell, round_to),
        "precision": published_rate(tp, flagged, min_cell, round_to),
        "recall": published_rate(tp, positives, min_cell, round_to),
        "fpr": published_rate(fp, negatives, min_cell, round_to),
        "fnr": published_rate(fn, positives, min_cell, round_to),
        "auc": published_figure(row.get("auc")),
        "mean_score": published_figure(row.get("mean_score"), 3),
    }
    # Recall and FNR are one split of the positives (1 - each other): both go when either count is small.
    if out["recall"] is None or out["fnr"] is None:
        out["recall"] = out["fnr"] = None
    # Observed over expected, from the published prevalence: exact counts cannot be recovered by
    # multiplying it by the mean score.
    mean_score = row.get("mean_score")
    out["calibration_ratio"] = (
        published_figure(out["prevalence"] / mean_score)
        if out["prevalence"] is not None and mean_score and math.isfinite(mean_score) and mean_score > 0
        else None
    )
    return out


def _confusion_cells(frame: pd.DataFrame) -> np.ndarray:
    """[TP, FP, FN, TN] counts."""
    y = frame["label"].astype(int).to_numpy().astype(bool)
    p = frame["flagged"].astype(bool).to_numpy()
    return np.array([np.sum(y & p), np.sum(~y & p), np.sum(y & ~p), np.sum(~y & ~p)], dtype=np.int64)


def _rates_from_cells(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Ratio metrics from confusion counts (last axis TP, FP, FN, TN); NaN where undefined."""
    tp, fp, fn, tn = (cells[..., i].astype(float) for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        n = tp + fp + fn + tn
        return {
            "selection_rate": (tp + fp) / n,
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "fpr": fp / (fp + tn),
            "fnr": fn / (tp + fn),
        }


def _bootstrap_cells(cells: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    # Resampling a group's rows with replacement is a multinomial draw over its rows, so its
    # confusion counts are multinomial over the four cells: the same bootstrap, without the rows.
    n = int(cells.sum())
    if n == 0:
        return np.zeros((draws, 4), dtype=np.int64)
    return rng.multinomial(n, cells / n, size=draws)


@dataclass(frozen=True)
class Interval:
    """A ratio and its bootstrap percentile interval (None when the interval is undefined)."""

    ratio: float | None
    low: float | None
    high: float | None
    # False when the rate rests on fewer than min_events events in either group: shown, never a finding.
    assessable: bool = True


# The events each rate counts (indices into TP, FP, FN, TN): a rate estimated from a handful of
# events swings wildly, and a percentile bootstrap of it is over-confident.
_NUMERATOR_CELLS: dict[str, tuple[int, ...]] = {
    "selection_rate": (0, 1),
    "precision": (0,),
    "recall": (0,),
    "fpr": (1,),
    "fnr": (2,),
}


# The other cells of each rate's denominator: a percentile interval's width reflects them too (the
# precision of 50 flagged with 1 false alarm has a lower end near 0.93, with 2 near 0.90).
_REST_CELLS: dict[str, tuple[int, ...]] = {
    "selection_rate": (2, 3),
    "precision": (1,),
    "recall": (2,),
    "fpr": (3,),
    "fnr": (0,),
}


def interval_would_disclose(group_cells: np.ndarray, reference_cells: np.ndarray, metric: str, min_cell: int) -> bool:
    """True when a count behind `metric` (its events, or the rest of its denominator) is 1 to min_cell - 1 in
    either group: an interval resampled from those cells would describe a count the report suppresses."""
    for cells in (group_cells, reference_cells):
        for indices in (_NUMERATOR_CELLS[metric], _REST_CELLS[metric]):
            if 0 < int(sum(int(cells[i]) for i in indices)) < min_cell:
                return True
    return False


def rounded_cells(cells: np.ndarray, metric: str, round_to: int) -> np.ndarray:
    """[TP, FP, FN, TN] as one metric's interval is resampled from: its events and the rest of its denominator,
    each total rounded to the nearest round_to, every other cell 0. The interval is then a function of rounded
    counts only and cannot undo the rounding of the counts published beside it (docs/adr/0015)."""
    out = np.zeros(4, dtype=np.int64)
    for indices in (_NUMERATOR_CELLS[metric], _REST_CELLS[metric]):
        out[indices[0]] = round_count(int(sum(int(cells[i]) for i in indices)), round_to)
    return out


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def ratio_intervals(
    group_cells: np.ndarray,
    reference_cells: np.ndarray,
    draws: int,
    rng: np.random.Generator,
    level: float = 0.95,
    min_events: int = 0,
) -> dict[str, Interval]:
    """Disparity ratio (group / reference) per metric with a stratified bootstrap percentile interval.

    A ratio whose rate counts fewer than min_events events in either group is marked not assessable.
    """
    point_group = _rates_from_cells(group_cells)
    point_reference = _rates_from_cells(reference_cells)
    out: dict[str, Interval] = {}
    if draws > 0:
        boot_group = _rates_from_cells(_bootstrap_cells(group_cells, draws, rng))
        boot_reference = _rates_from_cells(_bootstrap_cells(reference_cells, draws, rng))
    for metric in RATIO_METRICS:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = point_group[metric] / point_reference[metric]
        low = high = None
        if draws > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                sample = boot_group[metric] / boot_reference[metric]
            finite = sample[np.isfinite(sample)]
            # An interval built from a minority of defined draws would pretend to a precision it lacks.
            if len(finite) >= 0.95 * draws:
                tail = (1 - level) / 2 * 100
                low, high = np.percentile(finite, [tail, 100 - tail])
                # A zero-width interval comes from a zero count (e.g. no flagged positives), which a
                # bootstrap cannot vary: it is not evidence of certainty, so no interval is claimed.
                if low == high:
                    low = high = None
        events = min(
            int(sum(group_cells[i] for i in _NUMERATOR_CELLS[metric])),
            int(sum(reference_cells[i] for i in _NUMERATOR_CELLS[metric])),
        )
        out[metric] = Interval(
            _finite_or_none(ratio), _finite_or_none(low), _finite_or_none(high), assessable=events >= min_events
        )
    return out


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _people(group: str) -> str:
    """'<group> residents', 'residents aged 0-4', '<group> + <group> residents'."""
    if group[:1].isdigit():
        return f"residents aged {group}"
    return f"{group} residents"


def finding_text(group: str, reference: str, metric: str, interval: Interval, outcome: str) -> str:
    """One flagged disparity explained in words for a board."""
    ratio = interval.ratio or 0.0
    r, lo, hi = _fmt(ratio), _fmt(interval.low or 0), _fmt(interval.high or 0)
    band = f"(95% interval {lo}–{hi})"
    who, ref = _people(group), _people(reference)
    more = ratio > 1
    if metric == "selection_rate":
        return f"{who} are flagged {r} times as often as {ref} {band}."
    if metric == "precision":
        return (
            f"When {who} are flagged, the flag is borne out ({outcome}) {r} times as often as for flagged "
            f"{ref} {band}" + ("." if more else ": more of their flags are false alarms.")
        )
    if metric == "recall":
        return (
            f"Of {who} who went on to {outcome}, the list found {r} times the share it found among {ref} {band}"
            + ("." if more else ": more of their escalations are missed.")
        )
    if metric == "fpr":
        return (
            f"{who} who did not go on to {outcome} are flagged {r} times as often as {ref} who did not {band}"
            + (": more unnecessary attention." if more else ".")
        )
    return (
        f"{who} who went on to {outcome} are missed by the list {r} times as often as {ref} who did {band}"
        + (": more escalations missed." if more else ".")
    )


def published_ratio(group_rate: float | None, reference_rate: float | None) -> tuple[float | None, str | None]:
    """(group / reference, note): zero and undefined ratios are said in words, never left as NaN or inf."""
    if group_rate is None or reference_rate is None:
        return None, "not shown: a rate behind it is suppressed (small numbers)"
    if reference_rate == 0:
        if group_rate == 0:
            return None, "undefined: the rate is 0 in both groups"
        return None, "undefined: the reference group's rate is 0"
    return published_figure(group_rate / reference_rate), ("the group's rate is 0" if group_rate == 0 else None)


def zero_flag_finding(
    key: str,
    group: str,
    reference: str,
    counts: pd.Series,
    reference_counts: pd.Series,
    entry: dict[str, object],
    reference_figures: dict[str, float | None],
    outcome: str,
    min_cell: int,
) -> dict[str, object] | None:
    """The finding for a group never flagged while it has escalations (or flagged beside a never-flagged reference).

    A bootstrap cannot put an interval on a zero count, so these are stated from the counts themselves:
    at least min_cell escalations in the group (it is shown at all only then) and none of them found.
    """
    flagged, positives = float(counts["flagged"]), float(counts["positives"])
    reference_flagged = float(reference_counts["flagged"])
    who, ref = _people(group), _people(reference)
    if flagged == 0 and positives >= min_cell and reference_flagged >= min_cell:
        recall = reference_figures.get("recall")
        text = (
            f"{who} are never flagged, although about {entry['positives']} of them went on to {outcome}; "
            f"the list flags {ref}"
            + (f" and finds {recall:.0%} of their escalations" if recall is not None else "")
            + ". This is the largest disparity possible: none of this group's escalations is found."
        )
        return {"characteristic": key, "group": group, "reference": reference, "metric": "selection_rate",
                "metric_label": "never flagged", "ratio": 0.0, "low": None, "high": None, "text": text}
    if reference_flagged == 0 and flagged >= min_cell:
        text = (
            f"{who} are flagged (about {entry['flagged']} of them) while {ref}, the reference group, are never "
            "flagged: the ratio is undefined and the disparity is as large as it can be."
        )
        return {"characteristic": key, "group": group, "reference": reference, "metric": "selection_rate",
                "metric_label": "flagged while the reference group never is", "ratio": None, "low": None,
                "high": None, "text": text}
    return None


def _json_number(value: object) -> float | None:
    if value is None:
        return None
    value = float(value)  # type: ignore[arg-type]
    return value if math.isfinite(value) else None


def audit_fairness(
    frame: pd.DataFrame,
    characteristics_to_audit: Sequence[tuple[str, ...]],
    *,
    reference_groups: dict[str, str],
    ratio_band: tuple[float, float],
    bootstrap: int,
    min_cell: int,
    round_to: int,
    seed: int,
    outcome: str,
    group_words: GroupWords | None = None,
    not_recorded_group: str = NOT_RECORDED,
) -> dict[str, object]:
    """Per-group metrics, ratios with intervals and findings for each characteristic (JSON-ready, suppressed).

    `group_words` are the data dictionary's words for boolean groups (DataDictionary.boolean_group_words).
    A characteristic recorded for nobody in `frame` (every row null, blank or `not_recorded_group`) gets a
    block with `not_recorded_for_all` and no groups: a table of one "Not recorded" row would read as audited.
    """
    rng = np.random.default_rng(seed)
    low_band, high_band = ratio_band
    results: list[dict[str, object]] = []
    findings: list[dict[str, object]] = []
    for attributes in characteristics_to_audit:
        key = characteristic_key(attributes)
        try:
            groups = labels_for(frame, attributes, group_words)
        except KeyError as missing:
            results.append({"key": key, "attributes": list(attributes), "missing_column": str(missing)})
            continue
        unrecorded = [
            a for a in attributes
            if len(frame) and not_recorded_mask(labels_for(frame, (a,), group_words), not_recorded_group).all()
        ]
        if unrecorded:
            results.append({"key": key, "attributes": list(attributes), "not_recorded_for_all": unrecorded})
            continue
        table = group_table(frame, groups)
        table.insert(0, "characteristic", key)
        table = table.sort_values("group", kind="stable").reset_index(drop=True)
        reference = reference_group(groups, key, reference_groups, attributes, group_words)
        shown = apply_suppression(
            table,
            min_cell=min_cell,
            round_to=round_to,
            count_columns=COUNT_COLUMNS,
            figure_columns=GROUP_METRIC_COLUMNS,
        )
        reference_cells = _confusion_cells(frame[groups == reference])
        reference_hidden = shown.loc[shown["group"] == reference, "suppressed"].notna().any()
        exact = table.set_index("group")
        reference_figures = published_group_figures(exact.loc[reference], min_cell, round_to)
        rows: list[dict[str, object]] = []
        for _, row in shown.iterrows():
            hidden = not pd.isna(row["suppressed"])
            counts = exact.loc[row["group"]]
            entry: dict[str, object] = {
                "group": row["group"],
                "is_reference": row["group"] == reference,
                "suppressed": None if not hidden else str(row["suppressed"]),
            }
            figures = {} if hidden else published_group_figures(counts, min_cell, round_to)
            for column in COUNT_COLUMNS:
                entry[column] = None if hidden else published_count(counts[column], min_cell, round_to)
            for column in GROUP_METRIC_COLUMNS:
                entry[column] = figures.get(column)
            entry["ratios"] = {}
            if not hidden and not reference_hidden and row["group"] != reference:
                group_cells = _confusion_cells(frame[groups == row["group"]])
                # Resampled from the rounded cells (docs/adr/0015): the interval adds nothing the rounded counts
                # do not already say; "assessable" still counts the exact events behind each rate.
                intervals = {
                    metric: ratio_intervals(
                        rounded_cells(group_cells, metric, round_to),
                        rounded_cells(reference_cells, metric, round_to),
                        bootstrap,
                        rng,
                        min_events=min_cell,
                    )[metric]
                    for metric in RATIO_METRICS
                }
                exact_assessable = ratio_intervals(group_cells, reference_cells, 0, rng, min_events=min_cell)
                for metric, interval in intervals.items():
                    mine, theirs = figures.get(metric), reference_figures.get(metric)
                    ratio, note = published_ratio(mine, theirs)
                    shown_rates = mine is not None and theirs is not None
                    # An interval around a suppressed rate would describe the rate it hides, and one resting on a
                    # small cell (e.g. 1 to 9 false alarms behind a precision) would describe that cell.
                    publish = shown_rates and not interval_would_disclose(group_cells, reference_cells, metric, min_cell)
                    interval = Interval(
                        ratio,
                        published_figure(interval.low) if publish else None,
                        published_figure(interval.high) if publish else None,
                        assessable=exact_assessable[metric].assessable and publish,
                    )
                    flagged = (
                        interval.assessable
                        and interval.ratio is not None
                        and interval.low is not None
                        and interval.high is not None
                        and (interval.ratio < low_band or interval.ratio > high_band)
                        and (interval.low > 1 or interval.high < 1)
                    )
                    entry["ratios"][metric] = {  # type: ignore[index]
                        "ratio": interval.ratio,
                        "low": interval.low,
                        "high": interval.high,
                        "assessable": interval.assessable,
                        "finding": flagged,
                        "note": note,
                    }
                    if flagged:
                        findings.append(
                            {
                                "characteristic": key,
                                "group": row["group"],
                                "reference": reference,
                                "metric": metric,
                                "metric_label": RATIO_METRICS[metric],
                                "ratio": interval.ratio,
                                "low": interval.low,
                                "high": interval.high,
                                "text": finding_text(row["group"], reference, metric, interval, outcome),
                            }
                        )
                zero = zero_flag_finding(
                    key, row["group"], reference, counts, exact.loc[reference], entry, reference_figures, outcome, min_cell
                )
                if zero is not None:
                    entry["ratios"]["selection_rate"]["finding"] = True  # type: ignore[index]
                    findings.append(zero)
            rows.append(entry)
        results.append({"key": key, "attributes": list(attributes), "reference": reference, "groups": rows})
    # Largest disparities first; a group never flagged (ratio 0) or flagged beside a never-flagged
    # reference (ratio undefined) is the largest possible.
    findings.sort(key=lambda f: -math.inf if f["ratio"] in (None, 0) else -abs(math.log(f["ratio"])))  # type: ignore[arg-type]
    return protect_group_tables({
        "ratio_band": list(ratio_band),
        "bootstrap": bootstrap,
        # A list, not a mapping: audit.json is written with sorted keys and the table keeps this order.
        "ratio_metrics": [{"metric": m, "label": words} for m, words in RATIO_METRICS.items()],
        "characteristics": results,
        "findings": findings,
    }, min_cell, round_to, (NOT_RECORDED, not_recorded_group), frame)


def protect_group_tables(
    fairness: dict[str, object], min_cell: int, round_to: int, not_recorded_groups: Sequence[str],
    frame: pd.DataFrame | None = None,
) -> dict[str, object]:
    """The fairness section with complementary suppressions added (audit.differencing) until no small count
    of a group can be worked back from the tables read together: a characteristic's groups add up to
    everyone, an intersection's to each of its attributes' groups. A group hidden this way reads
    'secondary', whether it protects another group or a small count of its own (flagged who escalated,
    escalations missed). frame: the rows audited, for the totals published beside the tables (everyone,
    escalations, places on the lists). Raises DisclosureError (a ValueError) when that cannot be reached."""
    from earlysignal.audit.differencing import close_differencing
    from earlysignal.errors import DisclosureError

    document: dict[str, object] = {"small_numbers": {"min_cell": min_cell, "round_to": round_to},
                                   "fairness": fairness}
    if frame is not None and len(frame):
        # What the audit publishes beside the tables: everyone and the escalations (rounded), and the places on
        # the lists (k per test date, exact), which the flagged in every characteristic's groups add up to.
        document["performance"] = {"n": published_count(len(frame), min_cell, round_to),
                                   "positives": published_count(int(frame["label"].sum()), min_cell, round_to),
                                   "places": int(frame["flagged"].astype(bool).sum())}
    try:
        return close_differencing(document, list(not_recorded_groups))["fairness"]
    except ValueError as error:
        raise DisclosureError(
            f"the fairness tables cannot be published disclosure-safe: {error}; raise audit.min_cell or leave out "
            "the characteristic whose groups are smallest (audit.protected)") from None


def audit_fairness_for(config: ProjectConfig, frame: pd.DataFrame) -> dict[str, object]:
    """audit_fairness on `frame` with the project's audit settings, outcome wording and the dictionary's group
    words: the one call external-scores audits and release bundles share. Shapes and errors as audit_fairness."""
    from earlysignal.audit.assemble import outcome_labels, outcome_phrase
    from earlysignal.audit.groups import characteristics
    from earlysignal.dictionary import dictionary_for

    settings = config.audit
    what, when = outcome_phrase(config.label.outcome_types, config.label.horizon_text, outcome_labels(config))
    return audit_fairness(
        frame,
        characteristics(settings.protected, settings.intersections),
        reference_groups=dict(settings.reference_groups),
        ratio_band=settings.ratio_band,
        bootstrap=settings.bootstrap,
        min_cell=settings.min_cell,
        round_to=settings.round_to,
        seed=config.project.seed,
        outcome=f"{what} {when}",
        group_words=dictionary_for(config).boolean_group_words(),
        not_recorded_group=dictionary_for(config).not_recorded.group,
    )

"""The cost of linkage error, like for like: one set of true rows and labels, two models' scores.

A model trained on linked-by-us histories and one trained on the true linkage are not comparable on
their own test rows: the linked cohort holds people the truth does not (leavers whose spells never
ended, split clusters) and misses others, so each AUC is over different rows. Here every true test row
(true resident, as_of, true label) gets the truth model's score and the linked model's score of the
linked resident standing for that person; a true row the linked pipeline did not score counts as
unflagged (below every score), and is counted.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

def linked_resident_of_true_person(person_links: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    """Per true person, the linked resident holding most of their records (ties: the smaller ID).

    `person_links`: source, record_id, resident_id (the link output); `truth`: source, record_id,
    true_id (ground truth per record). Returns a Series true_id -> resident_id.
    """
    pairs = person_links[["source", "record_id", "resident_id"]].merge(
        truth[["source", "record_id", "true_id"]].dropna(), on=["source", "record_id"])
    counts = pairs.groupby(["true_id", "resident_id"]).size().rename("n").reset_index()
    best = counts.sort_values(["true_id", "n", "resident_id"], ascending=[True, False, True]).drop_duplicates("true_id")
    return best.set_index("true_id")["resident_id"]


def _precision_at(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Precision of the top k by score (stable order among ties), NaN for k = 0."""
    if k <= 0:
        return float("nan")
    top = np.argsort(-scores, kind="stable")[:k]
    return float(labels[top].mean())


def like_for_like(
    truth_predictions: pd.DataFrame,
    linked_predictions: pd.DataFrame,
    linked_of_true: pd.Series,
    capacity_k: Any,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Both models scored on the truth model's test rows and labels, per as_of and as the mean over as_of.

    `truth_predictions` / `linked_predictions`: resident_id, as_of, label, score (each model's test
    predictions); `linked_of_true` from `linked_resident_of_true_person`; `capacity_k(n)` gives the list
    size for n rows. Returns per as_of: rows, positives, linked_scored (true rows the linked model
    scored), roc_auc_truth, roc_auc_linked (unscored rows at the bottom), both AUCs on the rows the linked
    model scored, precision at capacity of each, and a paired bootstrap (rows resampled within as_of)
    interval of AUC truth - linked; `mean` averages each figure over as_of dates.
    """
    rows = truth_predictions[["resident_id", "as_of", "label", "score"]].rename(columns={"score": "score_truth"})
    rows = rows.assign(linked_id=rows["resident_id"].map(linked_of_true).to_numpy(),
                       as_of=pd.to_datetime(rows["as_of"]))
    linked = linked_predictions[["resident_id", "as_of", "score"]].rename(
        columns={"resident_id": "linked_id", "score": "score_linked"})
    linked = linked.assign(as_of=pd.to_datetime(linked["as_of"])).drop_duplicates(["linked_id", "as_of"])
    rows = rows.merge(linked, on=["linked_id", "as_of"], how="left")
    rng = np.random.default_rng(seed)
    per_as_of, boot_diffs = [], []
    for as_of, part in rows.groupby("as_of", sort=True):
        y = part["label"].to_numpy(dtype=np.int64)
        if y.min() == y.max():
            continue
        truth_score = part["score_truth"].to_numpy(dtype=float)
        scored = part["score_linked"].notna().to_numpy()
        raw = part["score_linked"].to_numpy(dtype=float, na_value=np.nan)
        # Unscored rows sit below every score (a finite value: scikit-learn refuses infinities).
        floor = np.nanmin(raw) - 1.0 if scored.any() else 0.0
        linked_score = np.where(scored, raw, floor)
        k = int(capacity_k(len(part)))
        # The rows the linked model scored, when they hold both classes (else no AUC on them).
        both = scored if scored.any() and y[scored].min() != y[scored].max() else np.zeros(len(y), dtype=bool)
        diffs = np.empty(n_boot)
        for b in range(n_boot):
            pick = rng.integers(0, len(part), len(part))
            yb = y[pick]
            diffs[b] = (roc_auc_score(yb, truth_score[pick]) - roc_auc_score(yb, linked_score[pick])
                        if yb.min() != yb.max() else np.nan)
        boot_diffs.append(diffs)
        per_as_of.append({
            "as_of": pd.Timestamp(as_of).date().isoformat(),
            "rows": int(len(part)),
            "positives": int(y.sum()),
            "linked_scored": int(scored.sum()),
            "roc_auc_truth": float(roc_auc_score(y, truth_score)),
            "roc_auc_linked": float(roc_auc_score(y, linked_score)),
            "roc_auc_truth_on_linked_scored": float(roc_auc_score(y[both], truth_score[both])) if both.any() else None,
            "roc_auc_linked_on_linked_scored": float(roc_auc_score(y[both], linked_score[both])) if both.any() else None,
            "k": k,
            "precision_at_capacity_truth": _precision_at(truth_score, y, k),
            "precision_at_capacity_linked": _precision_at(linked_score, y, k),
        })
    if not per_as_of:
        return {"per_as_of": [], "mean": {}}
    keys = [key for key in per_as_of[0] if key not in ("as_of", "k")]
    mean = {key: float(np.mean([p[key] for p in per_as_of if p[key] is not None])) for key in keys}
    mean["roc_auc_cost"] = mean["roc_auc_truth"] - mean["roc_auc_linked"]
    with warnings.catch_warnings():  # a replicate with one class on every date has no difference
        warnings.simplefilter("ignore", RuntimeWarning)
        diff = np.nanmean(np.vstack(boot_diffs), axis=0)
    mean["roc_auc_cost_interval"] = [float(np.nanpercentile(diff, 2.5)), float(np.nanpercentile(diff, 97.5))]
    return {"per_as_of": per_as_of, "mean": mean}

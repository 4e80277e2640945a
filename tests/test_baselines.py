"""The baselines the model is judged against must themselves be sound: a logistic regression that ranks a
planted signal backwards is a defect, and a scorer ranking worse than chance is said, never published silently."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from earlysignal.modeling.baselines import LogisticBaseline
from earlysignal.modeling.metrics import below_chance


def _recency_world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Most residents never had a contact (days since the last one: missing, low risk); among those who had
    one, the more recent it was the higher the risk. 40 noise columns beside it, and few escalations."""
    rng = np.random.default_rng(seed)
    seen = rng.random(n) < 0.2
    days = np.where(seen, rng.uniform(1, 1000, n), np.nan)
    risk = np.where(seen, 0.25 * np.exp(-np.nan_to_num(days) / 150), 0.004)
    y = (rng.random(n) < risk).astype(int)
    noise = rng.normal(size=(n, 40))
    return np.column_stack([days, noise]), y


def test_logistic_baseline_ranks_a_planted_recency_signal_the_right_way_round():
    X, y = _recency_world(6000, seed=1)
    test_X, test_y = _recency_world(6000, seed=2)
    assert 40 <= y.sum() <= 200  # a small borough's handful of escalations
    auc = roc_auc_score(test_y, LogisticBaseline(seed=0).fit(X, y).predict(test_X))
    # Read as 0 days ("just happened"), a missing "days since" ranked the never-seen first: AUC 0.48 here.
    assert auc > 0.75


def test_logistic_baseline_treats_infinite_values_as_missing_and_returns_positive_class_probabilities():
    X, y = _recency_world(3000, seed=3)
    X[:5, 1] = np.inf
    scores = LogisticBaseline(seed=0).fit(X, y).predict(X)
    assert scores.shape == (3000,) and np.isfinite(scores).all()
    assert scores[y == 1].mean() > scores[y == 0].mean()


def test_a_scorer_ranking_worse_than_chance_with_an_interval_below_one_half_is_flagged_in_words():
    summary = {
        "model": {"roc_auc": {"value": 0.71, "ci_low": 0.65, "ci_high": 0.77}},
        "prior": {"roc_auc": {"value": 0.5, "ci_low": 0.5, "ci_high": 0.5}},
        "one_feature": {"roc_auc": {"value": 0.46, "ci_low": 0.40, "ci_high": 0.52}},  # chance not ruled out
        "logistic": {"roc_auc": {"value": 0.246, "ci_low": 0.18, "ci_high": 0.31}},
    }
    assert below_chance(summary) == [{
        "scorer": "logistic", "roc_auc": 0.246, "ci_low": 0.18, "ci_high": 0.31,
        "text": ("The logistic-regression baseline ranks worse than chance: AUC 0.246 (95% interval 0.180–0.310, "
                 "below 0.5). Residents it puts first escalate less often than those it puts last; its figures are "
                 "no benchmark until the cause is found."),
    }]
    assert below_chance({"model": {"roc_auc": {"value": 0.3, "ci_low": None, "ci_high": None}}}) == []


@pytest.mark.parametrize("where", ["summary", "performance"])
def test_the_audit_report_states_a_baseline_ranking_worse_than_chance(where):
    from test_audit_disclosure import _world

    from earlysignal.audit import build_audit
    from earlysignal.config import load_config
    from earlysignal.report import render_audit_html
    from test_audit_disclosure import REPO

    frame = _world()
    n, k = len(frame), int(frame["flagged"].sum())
    positives = int(frame["label"].sum())
    auc = {"model": (0.70, 0.66, 0.74), "logistic": (0.246, 0.18, 0.31)}
    split = {"split": "split_1", "test_as_of": "2025-01-01", "n": n, "positives": positives,
             "base_rate": positives / n, "k": k,
             "scorers": {s: {"roc_auc": {"value": v, "ci_low": lo, "ci_high": hi}} for s, (v, lo, hi) in auc.items()}}
    summary = {s: {"roc_auc": {"value": v, "ci_low": lo, "ci_high": hi}} for s, (v, lo, hi) in auc.items()}
    audit = build_audit(
        config=load_config(REPO / "conf" / "borough.yaml"),
        model={"name": "m", "version": "1", "run_id": "run"},
        predictions=frame,
        metrics={"summary": summary, "splits": [split], "capacity_k_per_as_of": {"2025-01-01": k},
                 "success_criterion": {"metric": "precision_at_capacity", "threshold": 0.65}},
        feature_metadata={"feature_columns": ["x"], "features": [{"name": "x", "description": "x is {value}"}],
                          "rows_per_as_of": {"2025-01-01": n}},
        explain_sample=frame.assign(x=np.arange(n, dtype=float)),
        contributions=np.column_stack([np.arange(n, dtype=float), np.zeros(n)]),
        approval=None,
    )
    assert [w["scorer"] for w in audit["performance"]["below_chance"]] == ["logistic"]
    html = render_audit_html(audit)
    sentence = "The logistic-regression baseline ranks worse than chance: AUC 0.246 (95% interval 0.180–0.310"
    section = html.split('<section id="summary">')[1].split("</section>")[0] if where == "summary" else \
        html.split('<section id="performance">')[1].split("</section>")[0]
    assert sentence in section

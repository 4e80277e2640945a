"""Whether the model beats its baselines is said in words, from paired differences: a board must be told plainly
when a logistic scorecard ranks as well as (or better than) the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from earlysignal.modeling.metrics import baseline_comparison


def _entry(value: float, low: float | None, high: float | None) -> dict:
    return {"value": value, "ci_low": low, "ci_high": high}


def test_the_logistic_baseline_is_said_to_rank_better_when_a_paired_interval_lies_below_zero():
    differences = {"logistic": {"roc_auc": _entry(-0.031, -0.05, -0.012),
                                "average_precision": _entry(-0.004, -0.011, 0.002)}}
    [record] = baseline_comparison(differences)
    assert record["verdict"] == "baseline better"
    assert [m["verdict"] for m in record["metrics"]] == ["worse", "no clear difference"]
    assert record["text"] == (
        "The logistic-regression baseline ranks better than the model on AUC (model minus baseline: AUC -0.031 "
        "(95% interval -0.050 to -0.012); average precision -0.004 (95% interval -0.011 to +0.002)). On this "
        "evidence the simpler rule would serve at least as well as the model.")


def test_overlapping_intervals_are_no_clear_difference_and_say_the_simpler_rule_ranks_about_as_well():
    differences = {"logistic": {"lift_at_capacity": _entry(4.2, -1.5, 10.7), "roc_auc": _entry(0.02, -0.01, 0.05),
                                "average_precision": _entry(0.001, -0.02, 0.02)}}
    [record] = baseline_comparison(differences, "lift_at_capacity")
    assert record["verdict"] == "no clear difference"
    assert [m["metric"] for m in record["metrics"]] == ["lift_at_capacity", "roc_auc", "average_precision"]
    assert record["text"].startswith(
        "The model does not clearly beat the logistic-regression baseline (model minus baseline: lift at capacity "
        "+4.2 (95% interval -1.5 to +10.7); AUC +0.020")


def test_the_model_is_said_to_rank_better_only_when_every_compared_interval_lies_above_zero():
    better = {"one_feature": {"roc_auc": _entry(0.1, 0.05, 0.15), "average_precision": _entry(0.02, 0.01, 0.03)}}
    assert baseline_comparison(better)[0]["verdict"] == "model better"
    assert baseline_comparison(better)[0]["text"].startswith("The model ranks better than the one-feature baseline")
    no_interval = {"one_feature": {"roc_auc": _entry(0.1, None, None)}}
    assert baseline_comparison(no_interval)[0]["verdict"] == "no clear difference"
    assert baseline_comparison(None) == [] and baseline_comparison({"logistic": {}}) == []


def _predictions(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    parts, margins = [], {}
    for number, as_of in enumerate(("2025-01-01", "2025-04-01"), start=1):
        signal = rng.normal(size=n)
        y = (rng.random(n) < 1 / (1 + np.exp(-(signal * 2 - 3)))).astype("int8")
        score = 1 / (1 + np.exp(-signal))
        parts.append(pd.DataFrame({
            "resident_id": [f"r{i}" for i in range(n)], "as_of": pd.Timestamp(as_of), "split": f"split_{number}",
            "label": y, "score": score, "score__prior": y.mean(), "score__one_feature": rng.normal(size=n),
            # The logistic baseline sees the signal through noise: it should rank worse than the model.
            "score__logistic": 1 / (1 + np.exp(-(signal + rng.normal(scale=2, size=n)))),
            "oracle": pd.array([None] * n, dtype="Float64")}))
        margins[f"split_{number}"] = signal
    return pd.concat(parts, ignore_index=True), margins


@pytest.fixture(scope="module")
def config():
    from pathlib import Path

    from earlysignal.config import config_from_dict, load_config

    raw = load_config(Path(__file__).resolve().parents[1] / "conf" / "borough.yaml").model_dump(mode="json")
    raw["training"].update(bootstrap=100, n_jobs=1)
    raw["capacity"].update(k=40)
    return config_from_dict(raw)


def test_model_minus_baseline_is_the_difference_of_the_summaries_with_a_paired_interval(config):
    from earlysignal.modeling.train import evaluate_splits

    predictions, margins = _predictions()
    evaluation = evaluate_splits(predictions, margins, config)
    summary, diff = evaluation["summary"], evaluation["model_minus_baseline"]
    assert set(diff) == {"logistic", "one_feature"}
    for baseline in diff:
        for metric in ("roc_auc", "average_precision", "precision_at_capacity", "lift_at_capacity"):
            assert diff[baseline][metric]["value"] == pytest.approx(
                summary["model"][metric]["value"] - summary[baseline][metric]["value"])
            assert diff[baseline][metric]["ci_low"] <= diff[baseline][metric]["value"] <= diff[baseline][metric]["ci_high"]
    # The noisy copy of the model's own signal ranks worse, and the paired interval sees it.
    assert diff["logistic"]["roc_auc"]["ci_low"] > 0


def test_a_baseline_identical_to_the_model_differs_by_exactly_zero_on_every_resample(config):
    from earlysignal.modeling.train import evaluate_splits

    predictions, margins = _predictions(seed=1)
    # The same ranking as the model (the model's ties are broken by its margin, which here is the score's order).
    predictions["score__logistic"] = predictions["score"]
    diff = evaluate_splits(predictions, margins, config)["model_minus_baseline"]["logistic"]
    for metric in ("roc_auc", "average_precision", "lift_at_capacity"):
        assert (diff[metric]["value"], diff[metric]["ci_low"], diff[metric]["ci_high"]) == (0.0, 0.0, 0.0)
    assert baseline_comparison({"logistic": diff})[0]["verdict"] == "no clear difference"


@pytest.mark.parametrize("where", ["summary", "performance"])
def test_the_audit_report_says_when_the_logistic_baseline_ranks_better_than_the_model(where):
    from test_audit_disclosure import REPO, _world

    from earlysignal.audit import build_audit
    from earlysignal.config import load_config
    from earlysignal.report import render_audit_html

    frame = _world()
    n, k = len(frame), int(frame["flagged"].sum())
    positives = int(frame["label"].sum())
    auc = {"model": (0.70, 0.66, 0.74), "logistic": (0.75, 0.71, 0.79)}
    split = {"split": "split_1", "test_as_of": "2025-01-01", "n": n, "positives": positives,
             "base_rate": positives / n, "k": k,
             "scorers": {s: {"roc_auc": {"value": v, "ci_low": lo, "ci_high": hi}} for s, (v, lo, hi) in auc.items()}}
    summary = {s: {"roc_auc": {"value": v, "ci_low": lo, "ci_high": hi}} for s, (v, lo, hi) in auc.items()}
    differences = {"logistic": {"roc_auc": _entry(-0.05, -0.08, -0.02),
                                # Never shown: a difference of precisions at capacity is one of exact counts.
                                "precision_at_capacity": _entry(-0.03, -0.05, -0.01)}}
    audit = build_audit(
        config=load_config(REPO / "conf" / "borough.yaml"),
        model={"name": "m", "version": "1", "run_id": "run"},
        predictions=frame,
        metrics={"summary": summary, "splits": [split], "capacity_k_per_as_of": {"2025-01-01": k},
                 "success_criterion": {"metric": "precision_at_capacity", "threshold": 0.65},
                 "model_minus_baseline": differences},
        feature_metadata={"feature_columns": ["x"], "features": [{"name": "x", "description": "x is {value}"}],
                          "rows_per_as_of": {"2025-01-01": n}},
        explain_sample=frame.assign(x=np.arange(n, dtype=float)),
        contributions=np.column_stack([np.arange(n, dtype=float), np.zeros(n)]),
        approval=None,
    )
    [record] = audit["performance"]["baseline_comparison"]
    assert [m["metric"] for m in record["metrics"]] == ["roc_auc"]
    html = render_audit_html(audit)
    section = html.split('<section id="summary">')[1].split("</section>")[0] if where == "summary" else \
        html.split('<section id="performance">')[1].split("</section>")[0]
    assert ("The logistic-regression baseline ranks better than the model on AUC (model minus baseline: AUC -0.050 "
            "(95% interval -0.080 to -0.020)). On this evidence the simpler rule would serve at least as well as "
            "the model.") in section

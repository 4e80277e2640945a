"""Fairness at the operating point: per-group figures, disparity ratios, bootstrap intervals, findings,
proxy check and global importance, on small frames built by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import precision_score, roc_auc_score

from earlysignal.audit.fairness import Interval, audit_fairness, finding_text, ratio_intervals
from earlysignal.audit.groups import group_labels, reference_group
from earlysignal.audit.importance import global_importance
from earlysignal.audit.proxy import proxy_check, single_feature_aucs


def predictions(n: int = 6000, flag_boost: float = 1.0, seed: int = 3) -> pd.DataFrame:
    """Test predictions with ethnicity and sex; Black residents' flag probability multiplied by flag_boost."""
    rng = np.random.default_rng(seed)
    # Two small groups, so both are suppressed on their own (no secondary suppression of Asian).
    ethnicity = rng.choice(["White", "Black", "Asian", "Other", "Mixed"], n, p=[0.6, 0.2, 0.19, 0.005, 0.005])
    sex = rng.choice(["Female", "Male"], n)  # reporting groups, as the feature builder writes them
    label = rng.random(n) < 0.08
    p_flag = np.where(label, 0.3, 0.05) * np.where(ethnicity == "Black", flag_boost, 1.0)
    flagged = rng.random(n) < p_flag
    score = np.clip(0.05 + 0.3 * flagged + rng.normal(0, 0.05, n), 0.001, 0.999)
    return pd.DataFrame(
        {
            "label": label.astype(int),
            "flagged": flagged,
            "score": score,
            "attr__ethnicity": pd.array(ethnicity, dtype="string"),
            "attr__sex": sex,
        }
    )


def run(frame: pd.DataFrame, **overrides: object) -> dict:
    settings = dict(
        reference_groups={},
        ratio_band=(0.8, 1.25),
        bootstrap=300,
        min_cell=10,
        round_to=5,
        seed=7,
        outcome="a referral within 6 months",
    )
    settings.update(overrides)
    return audit_fairness(frame, [("ethnicity",), ("sex",), ("sex", "ethnicity")], **settings)  # type: ignore[arg-type]


def _block(result: dict, key: str) -> dict:
    return next(b for b in result["characteristics"] if b["key"] == key)


def test_group_figures_equal_an_independent_fairlearn_metricframe() -> None:
    frame = predictions()
    # No rounding or small-number rule here: the figures themselves are under test.
    result = run(frame, min_cell=1, round_to=1)
    groups = group_labels(frame, "ethnicity")
    independent = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "recall": true_positive_rate,
            "fpr": false_positive_rate,
            "precision": lambda y, p: precision_score(y, p, zero_division=0),
        },
        y_true=frame["label"],
        y_pred=frame["flagged"].astype(int),
        sensitive_features=groups,
    ).by_group
    shown = [g for g in _block(result, "ethnicity")["groups"] if not g["suppressed"] and g["positives"] >= 1]
    assert {g["group"] for g in shown} >= {"White", "Black", "Asian"}
    for g in shown:
        for metric in ("selection_rate", "recall", "fpr"):
            assert g[metric] == pytest.approx(independent.loc[g["group"], metric], abs=1e-12)
        if g["flagged"]:
            assert g["precision"] == pytest.approx(independent.loc[g["group"], "precision"], abs=1e-12)
        members = frame[groups == g["group"]]
        # AUC is published to two decimals (more would pin down the exact counts behind rounded ones).
        assert g["auc"] == round(roc_auc_score(members["label"], members["score"]), 2)
        assert g["n"] == len(members)


def test_the_largest_group_is_the_reference_unless_configured() -> None:
    frame = predictions()
    assert _block(run(frame), "ethnicity")["reference"] == "White"
    configured = run(frame, reference_groups={"ethnicity": "Asian", "sex + ethnicity": "male + White"})
    assert _block(configured, "ethnicity")["reference"] == "Asian"
    assert _block(configured, "sex + ethnicity")["reference"] == "Male + White"
    with pytest.raises(ValueError, match="audit.reference_groups.ethnicity: group 'Purple'"):
        reference_group(group_labels(frame, "ethnicity"), "ethnicity", {"ethnicity": "Purple"}, ["ethnicity"])


def test_a_large_disparity_with_a_tight_interval_is_a_finding_and_explained_in_words() -> None:
    result = run(predictions(flag_boost=2.0))
    selection = [f for f in result["findings"] if f["group"] == "Black" and f["metric"] == "selection_rate"]
    assert len(selection) == 1
    finding = selection[0]
    assert finding["reference"] == "White" and finding["ratio"] > 1.25 and finding["low"] > 1
    assert finding["text"].startswith("Black residents are flagged ")
    assert "times as often as White residents (95% interval" in finding["text"]


def test_no_finding_without_a_disparity_and_none_for_suppressed_groups() -> None:
    result = run(predictions(flag_boost=1.0))
    assert not [f for f in result["findings"] if f["group"] == "Black" and f["characteristic"] == "ethnicity"]
    other = next(g for g in _block(result, "ethnicity")["groups"] if g["group"] == "Other")
    assert other["suppressed"] == "primary" and other["ratios"] == {}
    assert other["selection_rate"] is None and other["n"] is None


def test_a_ratio_outside_the_band_is_not_a_finding_when_its_interval_includes_one() -> None:
    # 40 people against 4000: a ratio of 1.5 on so few is within noise.
    group = np.array([4, 2, 2, 32])  # TP, FP, FN, TN
    reference = np.array([200, 200, 200, 3400])
    intervals = ratio_intervals(group, reference, 500, np.random.default_rng(0))
    sel = intervals["selection_rate"]
    assert sel.ratio == pytest.approx(1.5)
    assert sel.low is not None and sel.high is not None and sel.low < 1 < sel.high


def test_bootstrap_intervals_are_reproducible_for_a_seed() -> None:
    frame = predictions(flag_boost=1.5)
    first, again, other_seed = run(frame), run(frame), run(frame, seed=8)
    assert first == again
    assert first["findings"] != [] and other_seed["characteristics"] != first["characteristics"]


def test_cell_count_bootstrap_matches_resampling_rows_within_each_group() -> None:
    rng = np.random.default_rng(5)
    group_rows = np.repeat(np.arange(4), [30, 50, 20, 400])  # TP, FP, FN, TN per row
    reference_rows = np.repeat(np.arange(4), [100, 100, 100, 2700])
    naive = []
    for _ in range(3000):
        g = np.bincount(rng.choice(group_rows, len(group_rows)), minlength=4)
        r = np.bincount(rng.choice(reference_rows, len(reference_rows)), minlength=4)
        naive.append(((g[0] + g[1]) / g.sum()) / ((r[0] + r[1]) / r.sum()))
    fast = ratio_intervals(np.array([30, 50, 20, 400]), np.array([100, 100, 100, 2700]), 3000, rng)
    low, high = np.percentile(naive, [2.5, 97.5])
    assert fast["selection_rate"].low == pytest.approx(low, rel=0.05)
    assert fast["selection_rate"].high == pytest.approx(high, rel=0.05)


def test_finding_words_follow_the_direction_of_the_ratio() -> None:
    up = finding_text("Black", "White", "fpr", Interval(2.0, 1.5, 2.6), "a referral")
    down = finding_text("Black", "White", "recall", Interval(0.5, 0.3, 0.7), "a referral")
    assert up.endswith("(95% interval 1.50–2.60): more unnecessary attention.")
    assert down.endswith(": more of their escalations are missed.")
    assert finding_text("0-4", "5-10", "selection_rate", Interval(1.5, 1.3, 1.7), "x").startswith(
        "residents aged 0-4 are flagged 1.50 times as often as residents aged 5-10"
    )


def test_proxy_auc_equals_single_feature_roc_auc_and_flags_a_proxy() -> None:
    rng = np.random.default_rng(2)
    n = 800
    ethnicity = rng.choice(["White", "Black", "Asian"], n)
    sample = pd.DataFrame(
        {
            "police_count": (ethnicity == "Black") * 2.0 + rng.normal(0, 1, n),
            "noise": rng.normal(0, 1, n),
            "attr__ethnicity": ethnicity,
        }
    )
    membership = pd.DataFrame({g: ethnicity == g for g in ["Asian", "Black", "White"]})
    aucs = single_feature_aucs(sample[["police_count", "noise"]], membership)
    for g in ["Asian", "Black", "White"]:
        assert aucs.loc["police_count", g] == pytest.approx(roc_auc_score(ethnicity == g, sample["police_count"]))
    rows = {r["feature"]: r for r in proxy_check(sample, ["police_count", "noise"], ["ethnicity", "sex"], 10)}
    assert rows["police_count"]["acts_as_proxy"] and rows["police_count"]["ethnicity__group"] == "Black"
    assert not rows["noise"]["acts_as_proxy"] and rows["noise"]["max_auc"] < 0.6


def test_global_importance_ranks_by_mean_absolute_contribution_with_direction() -> None:
    rng = np.random.default_rng(1)
    features = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    contributions = pd.DataFrame({"a": -0.1 * features["a"], "b": 0.8 * features["b"], "bias": 1.0})
    importance = global_importance(features, contributions)
    assert [i["feature"] for i in importance] == ["b", "a"]
    assert importance[0]["direction"] == "higher values raise the score"
    assert importance[1]["direction"] == "higher values lower the score"
    assert sum(i["share"] for i in importance) == pytest.approx(1.0)


def test_a_ratio_resting_on_fewer_than_min_cell_events_is_shown_but_never_a_finding() -> None:
    # Precision 4/20 against 20/1000: a ratio of 10 on four flagged escalations.
    group = np.array([4, 16, 6, 374])
    reference = np.array([20, 980, 80, 8920])
    intervals = ratio_intervals(group, reference, 300, np.random.default_rng(1), min_events=10)
    assert intervals["precision"].ratio == pytest.approx(10.0)
    assert not intervals["precision"].assessable
    assert intervals["selection_rate"].assessable  # 20 flagged against 1000


def test_a_declared_boolean_attribute_reads_as_words_not_yes_and_no():
    from earlysignal.audit.groups import group_labels

    frame = pd.DataFrame({"attr__care_leaver": ["Yes", "No", None, "Yes"]})
    assert group_labels(frame, "care_leaver").tolist() == [
        "Care leaver", "Not care leaver", "Not recorded", "Care leaver"
    ]
    assert finding_text("Care leaver", "Not care leaver", "selection_rate", Interval(2.9, 1.91, 3.73), "x").startswith(
        "Care leaver residents are flagged 2.90 times as often as Not care leaver residents"
    )


@pytest.mark.parametrize("unrecorded", [None, "", "  ", "Unknown"])
def test_a_characteristic_recorded_for_nobody_is_named_not_audited_rather_than_shown_as_one_group(unrecorded) -> None:
    frame = predictions()
    frame["attr__sex"] = pd.array([unrecorded] * len(frame), dtype="string")
    result = run(frame, not_recorded_group="Unknown")
    for key in ("sex", "sex + ethnicity"):
        block = _block(result, key)
        assert block["not_recorded_for_all"] == ["sex"]
        assert "groups" not in block and "reference" not in block
    assert not any(f["characteristic"] in ("sex", "sex + ethnicity") for f in result["findings"])
    # Ethnicity alone is still audited as before.
    assert _block(result, "ethnicity")["groups"]


def test_a_characteristic_recorded_for_some_is_audited_with_its_not_recorded_group() -> None:
    frame = predictions()
    frame["attr__sex"] = frame["attr__sex"].where(np.arange(len(frame)) % 2 == 0, None)
    block = _block(run(frame), "sex")
    assert "not_recorded_for_all" not in block
    assert {g["group"] for g in block["groups"]} == {"Female", "Male", "Not recorded"}


def test_an_intersection_takes_its_attributes_configured_reference_groups() -> None:
    """Boroughs that set {sex: ..., ethnicity: ...} (docs/federation.md) compare the same intersection group:
    without its own entry, sex + ethnicity's reference joins its attributes' (not the largest intersection)."""
    frame = predictions()
    largest = _block(run(frame), "sex + ethnicity")["reference"]
    wanted = "Male + White" if largest == "Female + White" else "Female + White"
    sex = wanted.split(" + ")[0]
    configured = run(frame, reference_groups={"sex": sex, "ethnicity": "White"})
    assert _block(configured, "sex")["reference"] == sex
    assert _block(configured, "sex + ethnicity")["reference"] == wanted != largest
    # Its own entry still wins; one attribute configured alone leaves the largest group.
    own = run(frame, reference_groups={"sex": sex, "ethnicity": "White", "sex + ethnicity": "Female + Black"})
    assert _block(own, "sex + ethnicity")["reference"] == "Female + Black"
    assert _block(run(frame, reference_groups={"sex": sex}), "sex + ethnicity")["reference"] == largest

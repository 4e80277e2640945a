"""Published numbers cannot be worked back to a small count, and a group never flagged is a finding.

The attack below is what a reader of audit.json and the report could do: take every published
number (and every product and quotient of two of them), and look for a denominator, within the
rounding of a published count, that turns it into a whole count under the threshold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earlysignal.audit import build_audit
from earlysignal.audit.fairness import audit_fairness
from earlysignal.config import load_config
from earlysignal.report import render_audit_html

REPO = Path(__file__).resolve().parents[1]
MIN_CELL, ROUND_TO = 10, 5


def _world() -> pd.DataFrame:
    """1,000 test rows on one date: 300 women (71 escalate, 9 of them flagged), 700 men (100 escalate).

    The list flags 100: the 9 women who escalate, and 40 men who escalate and 51 who do not.
    """
    rng = np.random.default_rng(0)
    sex = np.array(["Female"] * 300 + ["Male"] * 700)  # reporting groups, as the feature builder writes them
    label = np.zeros(1000, dtype=int)
    label[:71] = 1
    label[300:400] = 1
    flagged = np.zeros(1000, dtype=bool)
    flagged[:9] = True
    flagged[300:340] = True
    flagged[400:451] = True
    margin = np.where(flagged, 2.0, -2.0) + rng.normal(0, 0.5, 1000) + 0.3 * label
    frame = pd.DataFrame(
        {
            "resident_id": [f"R{i:05d}" for i in range(1000)],
            "as_of": pd.Timestamp("2025-01-01"),
            "split": "split_1",
            "label": label.astype("int8"),
            "score": 1 / (1 + np.exp(-margin)),
            "margin": margin,
            "attr__sex": sex,
            "attr__ethnicity": rng.choice(["White", "Black", "Asian"], 1000, p=[0.6, 0.25, 0.15]),
        }
    )
    frame["rank"] = (-frame["margin"]).rank(method="first").astype(int)
    frame["flagged"] = flagged
    return frame


def _published_document(frame: pd.DataFrame) -> tuple[dict, str]:
    n = len(frame)
    k = int(frame["flagged"].sum())
    found = int(frame.loc[frame["flagged"], "label"].sum())
    positives = int(frame["label"].sum())
    split = {
        "split": "split_1", "test_as_of": "2025-01-01", "n": n, "positives": positives,
        "base_rate": positives / n, "k": k,
        "scorers": {"model": {"precision_at_capacity": {"value": found / k, "ci_low": None, "ci_high": None},
                              "recall_at_capacity": {"value": found / positives, "ci_low": None, "ci_high": None}}},
    }
    audit = build_audit(
        config=load_config(REPO / "conf" / "borough.yaml"),
        model={"name": "m", "version": "1", "run_id": "run"},
        predictions=frame,
        metrics={"summary": {}, "splits": [split], "capacity_k_per_as_of": {"2025-01-01": k},
                 "success_criterion": {"metric": "precision_at_capacity", "threshold": 0.65}},
        feature_metadata={"feature_columns": ["x"], "features": [{"name": "x", "description": "x is {value}"}],
                          "rows_per_as_of": {"2025-01-01": n}, "label_prevalence_per_as_of": {"2025-01-01": positives / n}},
        explain_sample=frame.assign(x=np.arange(n, dtype=float)),
        contributions=np.column_stack([np.arange(n, dtype=float), np.zeros(n)]),
        approval=None,
    )
    return json.loads(json.dumps(audit, default=str)), render_audit_html(audit)


def _numbers(document: object) -> tuple[list[float], list[int]]:
    """Every number in a JSON document: floats (rates, ratios...) and whole counts."""
    floats, counts = [], []

    def walk(value: object) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, int):
            counts.append(value)
        elif isinstance(value, float):
            floats.append(value)
        elif isinstance(value, str):
            for number in re.findall(r"\d+\.\d+", value):
                floats.append(float(number))

    walk(document)
    return floats, counts


def group_numbers(document: dict, key: str, label: str) -> list[float]:
    """Every number published about one group, and what a reader derives from them with related rows.

    A group's ratio times the reference group's rate is the group's rate; a group's calibration ratio
    times its mean score is its prevalence. (Numbers about other rows say nothing about this group:
    a coincidental 0.2 elsewhere "recovers" 2 of 10 for any group with ten flagged.)
    """
    block = next(b for b in document["fairness"]["characteristics"] if b["key"] == key)
    groups = block.get("groups", [])
    reference = next((g for g in groups if g["is_reference"]), {})
    row = next(g for g in groups if g["group"] == label)
    out, _ = _numbers(row)
    for metric, entry in row.get("ratios", {}).items():
        for value in (entry["ratio"], entry["low"], entry["high"]):
            if value is not None and reference.get(metric) is not None:
                out.append(value * reference[metric])
    if row.get("calibration_ratio") is not None and row.get("mean_score") is not None:
        out.append(row["calibration_ratio"] * row["mean_score"])
    for finding in document["fairness"]["findings"]:
        if finding["characteristic"] == key and finding["group"] == label:
            out.extend(_numbers(finding)[0])
    return out


def recovered(published: list[float], small: int, denominator: int) -> bool:
    """True when a published (or derived) number pins `small` / `denominator` exactly.

    The attacker knows the denominator only to within the rounding (+-2); the attack succeeds when
    exactly one denominator in that window turns a number into a whole count under the threshold,
    and that count is the true one.
    """
    window = np.arange(denominator - 2, denominator + 3)
    for value in {v for v in published if 0 < v <= 1}:
        hits = [(round(value * d), d) for d in window if abs(value * d - round(value * d)) < 1e-9
                and 0 < round(value * d) < MIN_CELL]
        if len(hits) == 1 and hits[0] == (small, denominator):
            return True
    return False


def test_the_attack_recovers_a_small_count_from_an_exact_rate_beside_a_rounded_count():
    # What audit.json published before: female recall 0.1267605 beside "70 positives",
    assert recovered([9 / 71, 0.5, 0.1], small=9, denominator=71)
    # or its recall ratio against men (40/100) with the men's recall beside it.
    ratio = (9 / 71) / (40 / 100)
    document = {"fairness": {"findings": [], "characteristics": [{"key": "sex", "groups": [
        {"group": "Male", "is_reference": True, "recall": 40 / 100, "ratios": {}},
        {"group": "Female", "is_reference": False, "ratios": {"recall": {"ratio": ratio, "low": None, "high": None}}},
    ]}]}}
    assert recovered(group_numbers(document, "sex", "Female"), small=9, denominator=71)


def test_no_count_under_the_threshold_can_be_recovered_from_everything_published():
    frame = _world()
    # The report is rendered from audit.json alone (report/render.py), so searching the document
    # searches every figure the report can show, at full precision.
    document, html = _published_document(frame)
    assert "9/71" not in html and "12.68%" not in html and "12.7%" not in html
    # The truth the attacker is after: every small cell of every group, with each of its denominators.
    targets = []
    for key, attributes in (("sex", ["sex"]), ("ethnicity", ["ethnicity"]), ("sex + ethnicity", ["sex", "ethnicity"])):
        labels = frame[[f"attr__{a}" for a in attributes]].astype(str).agg(" + ".join, axis=1)
        for raw, part in frame.groupby(labels):
            label = str(raw)
            y, p = part["label"].astype(bool), part["flagged"]
            cells = {"tp": int((y & p).sum()), "fp": int((~y & p).sum()), "fn": int((y & ~p).sum()),
                     "flagged": int(p.sum()), "positives": int(y.sum()), "n": len(part)}
            denominators = {len(part), int(y.sum()), int(p.sum()), int((~y).sum())}
            for name, value in cells.items():
                if 0 < value < MIN_CELL:
                    targets.extend((key, label, name, value, d) for d in denominators if d >= value)
    assert ("sex", "Female", "tp", 9, 71) in targets  # the example from the issue is among them
    for key, label, name, value, denominator in targets:
        published = group_numbers(document, key, label)
        assert not recovered(published, value, denominator), (key, label, name, value, denominator)
    # No small count is published as a count either (rounded to 5 or 10 it would still say "few").
    sex = next(c for c in document["fairness"]["characteristics"] if c["key"] == "sex")
    female = next(g for g in sex["groups"] if g["group"] == "Female")
    assert female["flagged"] is None and female["recall"] is None and female["precision"] is None


def test_a_suppressed_count_cannot_be_worked_out_by_differencing_the_total():
    frame = _world()
    document, _ = _published_document(frame)
    sex = next(c for c in document["fairness"]["characteristics"] if c["key"] == "sex")
    male = next(g for g in sex["groups"] if g["group"] == "Male")
    total_flagged = int(frame["flagged"].sum())  # public: the team's capacity
    # Female flagged = total - male flagged; the attacker knows male flagged only to within rounding.
    window = {total_flagged - m for m in range(male["flagged"] - 2, male["flagged"] + 3)}
    assert len(window) == 5 and 9 in window


def test_published_rates_are_computed_from_the_rounded_counts():
    frame = _world()
    document, _ = _published_document(frame)
    for block in document["fairness"]["characteristics"]:
        for g in block.get("groups", []):
            if g["suppressed"] is None:
                assert g["prevalence"] == pytest.approx(g["positives"] / g["n"], abs=1e-15)
                if g["flagged"] is not None:
                    assert g["selection_rate"] == pytest.approx(g["flagged"] / g["n"], abs=1e-15)
    for row in document["performance"]["flagged_outcomes"]:
        assert row["cohort"] % ROUND_TO == 0 and row["flagged"] % ROUND_TO == 0
        assert row["escalated_share"] == 50 / 100  # 49 escalated among 100 flagged: rounded to 50
    split = document["performance"]["splits"][0]
    assert split["scorers"]["model"]["precision_at_capacity"]["value"] == 50 / 100
    assert split["base_rate"] == 170 / 1000


# --------------------------------------------------------------------------- zero and undefined ratios


def _never_flagged_world(reference_flags: bool = True) -> pd.DataFrame:
    """A group of 400 with 40 escalations never flagged, beside a reference of 1,000 flagged at recall 0.2."""
    group = np.array(["Black"] * 400 + ["White"] * 1000)
    label = np.zeros(1400, dtype=int)
    label[:40] = 1
    label[400:600] = 1
    flagged = np.zeros(1400, dtype=bool)
    if reference_flags:
        flagged[400:440] = True  # 40 of the 200 White escalations: recall 0.2
        flagged[600:660] = True
    else:
        flagged[:30] = True  # only the other way round: 30 Black escalations, no White flags
    return pd.DataFrame({"label": label, "flagged": flagged, "score": np.where(flagged, 0.6, 0.1),
                         "attr__ethnicity": group})


def _fairness(frame: pd.DataFrame) -> dict:
    return audit_fairness(frame, [("ethnicity",)], reference_groups={"ethnicity": "White"}, ratio_band=(0.8, 1.25),
                          bootstrap=200, min_cell=MIN_CELL, round_to=ROUND_TO, seed=1, outcome="a referral")


def test_a_group_never_flagged_while_it_has_escalations_is_a_finding_in_words():
    result = _fairness(_never_flagged_world())
    findings = [f for f in result["findings"] if f["group"] == "Black"]
    assert len(findings) == 1 and findings[0] is result["findings"][0]  # the largest disparity comes first
    finding = findings[0]
    assert finding["ratio"] == 0.0 and finding["metric_label"] == "never flagged"
    assert finding["text"] == (
        "Black residents are never flagged, although about 40 of them went on to a referral; the list flags "
        "White residents and finds 20% of their escalations. This is the largest disparity possible: none of "
        "this group's escalations is found."
    )
    black = next(g for g in result["characteristics"][0]["groups"] if g["group"] == "Black")
    assert black["flagged"] == 0 and black["recall"] == 0.0
    assert black["ratios"]["recall"]["ratio"] == 0.0 and black["ratios"]["recall"]["note"] == "the group's rate is 0"


def test_flags_beside_a_never_flagged_reference_are_a_finding_with_an_undefined_ratio():
    result = _fairness(_never_flagged_world(reference_flags=False))
    finding = next(f for f in result["findings"] if f["group"] == "Black")
    assert finding["ratio"] is None
    assert finding["text"].startswith("Black residents are flagged (about 30 of them) while White residents")
    black = next(g for g in result["characteristics"][0]["groups"] if g["group"] == "Black")
    assert black["ratios"]["selection_rate"] == {
        "ratio": None, "low": None, "high": None, "assessable": False, "finding": True,
        "note": "undefined: the reference group's rate is 0",
    }
    json.dumps(result, allow_nan=False)


def test_the_report_states_the_never_flagged_finding():
    frame = _never_flagged_world().assign(
        resident_id=[f"R{i:05d}" for i in range(1400)], as_of=pd.Timestamp("2025-01-01"), split="split_1",
        attr__sex=np.tile(["Female", "Male"], 700),
    )
    frame["rank"] = (-frame["score"]).rank(method="first").astype(int)
    audit = build_audit(
        config=load_config(REPO / "conf" / "borough.yaml"),
        model={"name": "m", "version": "1", "run_id": "run"},
        predictions=frame,
        metrics={"summary": {}, "splits": [], "success_criterion": {"metric": "precision_at_capacity", "threshold": 0.65}},
        feature_metadata={"feature_columns": [], "features": []},
        explain_sample=frame,
        contributions=None,
        approval=None,
    )
    html = render_audit_html(audit)
    assert "Black residents are never flagged, although about 40 of them went on to" in html
    assert any(f["metric_label"] == "never flagged" for f in audit["summary"]["findings"])



def test_missed_share_is_withheld_with_the_small_count_of_escalations_found():
    from earlysignal.audit.assemble import flagged_outcomes

    # 4 of 31 escalations flagged: "missed 27 of 31" rounds to 25/30 or, worse, reads as all missed.
    frame = pd.DataFrame({"as_of": pd.Timestamp("2025-01-01"), "label": [1] * 31 + [0] * 969,
                          "flagged": [True] * 4 + [False] * 27 + [True] * 96 + [False] * 873})
    (row,) = flagged_outcomes(frame, ROUND_TO, MIN_CELL)
    assert row == {"as_of": "2025-01-01", "cohort": 1000, "flagged": 100, "escalated_share": None, "missed_share": None}


# --------------------------------------------------------------------------- intervals (docs/adr/0015)


def _small_cell_world(female_false_alarms: int) -> pd.DataFrame:
    """300 women (71 escalate, 40 of them flagged, plus `female_false_alarms` flagged who did not) and 700 men
    (100 escalate, 40 flagged, plus 54 - female_false_alarms flagged who did not): the list flags 134 either way.

    Between 3 and 4 women's false alarms every count the report publishes rounds the same, so nothing it
    publishes, intervals included, may differ.
    """
    rng = np.random.default_rng(0)
    sex = np.array(["Female"] * 300 + ["Male"] * 700)
    label = np.zeros(1000, dtype=int)
    label[:71] = 1
    label[300:400] = 1
    flagged = np.zeros(1000, dtype=bool)
    flagged[:40] = True
    flagged[100:100 + female_false_alarms] = True
    flagged[300:340] = True
    flagged[400:400 + 54 - female_false_alarms] = True
    margin = np.linspace(3, -3, 1000) + rng.normal(0, 0.5, 1000)  # scores and ranks fixed in both worlds
    frame = pd.DataFrame(
        {
            "resident_id": [f"R{i:05d}" for i in range(1000)],
            "as_of": pd.Timestamp("2025-01-01"),
            "split": "split_1",
            "label": label.astype("int8"),
            "score": 1 / (1 + np.exp(-margin)),
            "margin": margin,
            # One characteristic only: in an intersection the changed residents could cross a rounding boundary,
            # which is a change in a published rounded count, not a leak.
            "attr__sex": sex,
        }
    )
    frame["rank"] = (-frame["margin"]).rank(method="first").astype(int)
    frame["flagged"] = flagged
    return frame


def test_an_interval_resting_on_a_small_cell_is_withheld_with_it():
    document, html = _published_document(_small_cell_world(3))
    sex = next(c for c in document["fairness"]["characteristics"] if c["key"] == "sex")
    female = next(g for g in sex["groups"] if g["group"] == "Female")
    # 40 of 43 flagged women escalated: the precision (from rounded counts) is shown, its 3 false alarms are not,
    # and neither is an interval that a bootstrap of those 3 would give.
    assert female["precision"] == 40 / 45 and female["fpr"] is None
    assert female["ratios"]["precision"]["ratio"] is not None
    assert female["ratios"]["precision"]["low"] is None and female["ratios"]["precision"]["high"] is None
    assert female["ratios"]["precision"]["assessable"] is False and female["ratios"]["precision"]["finding"] is False
    # Rates resting on large cells keep their interval.
    assert female["ratios"]["recall"]["low"] is not None and female["ratios"]["selection_rate"]["low"] is not None


def test_nothing_published_tells_apart_two_worlds_that_differ_only_in_a_small_cell():
    # The recovery attack on intervals: an interval resampled from exact counts moves with a count of 3 or 4
    # false alarms. Published from rounded counts only, every number (intervals included) is the same.
    three, html_three = _published_document(_small_cell_world(3))
    four, html_four = _published_document(_small_cell_world(4))
    for document in (three, four):
        document.pop("generated_at")
    assert three == four
    strip = re.compile(r"generated \S+")
    assert strip.sub("", html_three) == strip.sub("", html_four)
    # ...and the attack on exact rates still finds nothing under the threshold.
    assert not recovered(group_numbers(three, "sex", "Female"), 3, 43)


def test_the_summary_and_criterion_show_the_per_date_figures_from_rounded_counts():
    from earlysignal.audit.assemble import published_criterion, published_split, published_summary

    # One test date: 49 of 100 flagged escalated (exact 0.49), 170 escalations. Published: 50 / 100.
    split = {"split": "split_1", "test_as_of": "2025-01-01", "n": 1000, "positives": 170, "base_rate": 0.17, "k": 100,
             "scorers": {"model": {"precision_at_capacity": {"value": 0.49, "ci_low": 0.39, "ci_high": 0.59},
                                   "recall_at_capacity": {"value": 49 / 170, "ci_low": 0.22, "ci_high": 0.36},
                                   "roc_auc": {"value": 0.71, "ci_low": 0.67, "ci_high": 0.75}}}}
    summary = {"model": {key: dict(value) for key, value in split["scorers"]["model"].items()}}
    shown = published_summary(summary, [split], [published_split(split, MIN_CELL, ROUND_TO)], MIN_CELL, ROUND_TO)
    assert shown["model"]["precision_at_capacity"] == {"value": 0.5, "ci_low": 0.39, "ci_high": 0.59}
    assert shown["model"]["recall_at_capacity"]["value"] == 50 / 170
    assert shown["model"]["roc_auc"] == {"value": 0.71, "ci_low": 0.67, "ci_high": 0.75}
    criterion = published_criterion(
        {"metric": "precision_at_capacity", "threshold": 0.5, "value": 0.49, "met": False}, shown, ROUND_TO
    )
    assert criterion["value"] == 0.5 and criterion["met"] is False
    assert criterion["note"] == (
        "The criterion was judged on the exact figure, which is below 0.5; the 0.500 shown is computed from "
        "counts rounded to the nearest 5 and so falls on the other side."
    )
    assert criterion["statement"] == "NOT MET: precision_at_capacity = 0.500 (pre-registered threshold 0.500)"
    # With 7 of 100 flagged escalating, neither the figure nor its interval is published.
    small = {**split, "scorers": {"model": {"precision_at_capacity": {"value": 0.07, "ci_low": 0.03, "ci_high": 0.12}}}}
    hidden = published_summary({"model": {"precision_at_capacity": {"value": 0.07, "ci_low": 0.03, "ci_high": 0.12}}},
                               [small], [published_split(small, MIN_CELL, ROUND_TO)], MIN_CELL, ROUND_TO)
    assert hidden["model"]["precision_at_capacity"] == {"value": None, "ci_low": None, "ci_high": None, "pooled": True}


def test_a_summary_over_dates_with_small_counts_is_pooled_from_rounded_totals():
    from earlysignal.audit.assemble import published_split, published_summary

    # Four test dates, 4 of 100 flagged escalating at each (40 escalations each): no date's figure can be shown,
    # but the 16 over all dates can, rounded to 15: 15 / 400.
    splits = [{"split": f"split_{i}", "test_as_of": f"2025-0{i}-01", "n": 1000, "positives": 40, "base_rate": 0.04,
               "k": 100, "scorers": {"model": {"precision_at_capacity": {"value": 0.04, "ci_low": 0.01, "ci_high": 0.08},
                                               "recall_at_capacity": {"value": 0.1, "ci_low": 0.03, "ci_high": 0.2}}}}
              for i in range(1, 5)]
    summary = {"model": {"precision_at_capacity": {"value": 0.04, "ci_low": 0.025, "ci_high": 0.055},
                         "recall_at_capacity": {"value": 0.1, "ci_low": 0.06, "ci_high": 0.14},
                         "lift_at_capacity": {"value": 1.0, "ci_low": 0.6, "ci_high": 1.4}}}
    shown = published_summary(summary, splits, [published_split(s, MIN_CELL, ROUND_TO) for s in splits],
                              MIN_CELL, ROUND_TO)
    assert [published_split(s, MIN_CELL, ROUND_TO)["scorers"]["model"]["precision_at_capacity"]["value"]
            for s in splits] == [None] * 4
    assert shown["model"]["precision_at_capacity"] == {"value": 15 / 400, "ci_low": 0.025, "ci_high": 0.055,
                                                       "pooled": True}
    assert shown["model"]["recall_at_capacity"] == {"value": 15 / 160, "ci_low": 0.06, "ci_high": 0.14, "pooled": True}
    assert shown["model"]["lift_at_capacity"]["value"] == (15 / 400) / (160 / 4000)


def test_no_figure_at_capacity_is_shown_for_any_scorer_at_a_date_whose_escalations_are_withheld():
    from earlysignal.audit.assemble import published_split

    def at_capacity(found: int, k: int = 100) -> dict:
        return {"precision_at_capacity": {"value": found / k, "ci_low": 0.0, "ci_high": 0.1},
                "recall_at_capacity": {"value": found / 6, "ci_low": 0.0, "ci_high": 1.0},
                "lift_at_capacity": {"value": 1.0, "ci_low": 0.0, "ci_high": 2.0},
                "roc_auc": {"value": 0.61, "ci_low": 0.5, "ci_high": 0.7}}

    split = {"split": "split_1", "test_as_of": "2025-01-01", "n": 1285, "positives": 6, "base_rate": 6 / 1285,
             "k": 100, "scorers": {"model": at_capacity(4), "prior": at_capacity(0), "logistic": at_capacity(0)}}
    published = published_split(split, MIN_CELL, ROUND_TO)
    assert (published["n"], published["positives"], published["base_rate"]) == (1285, None, None)
    for scorer in ("model", "prior", "logistic"):
        for metric in ("precision_at_capacity", "recall_at_capacity", "lift_at_capacity"):
            assert published["scorers"][scorer][metric] == {"value": None, "ci_low": None, "ci_high": None}
        # An AUC over six escalations shows where those six sit in the ranking: withheld with them.
        assert published["scorers"][scorer]["roc_auc"] == {"value": None, "ci_low": None, "ci_high": None}
    assert set(published["withheld"]) == {"precision_at_capacity", "recall_at_capacity", "lift_at_capacity", "roc_auc"}

    # With 60 escalations at the date, a baseline that found none shows 0 from the rounded count 0.
    split_large = {**split, "positives": 60, "base_rate": 60 / 1285,
                   "scorers": {"prior": at_capacity(0), "model": at_capacity(20)}}
    shown = published_split(split_large, MIN_CELL, ROUND_TO)["scorers"]
    assert shown["prior"]["precision_at_capacity"] == {"value": 0.0, "ci_low": None, "ci_high": None}
    assert shown["model"]["precision_at_capacity"] == {"value": 0.2, "ci_low": None, "ci_high": None}


def _ranked_split(as_of: str, positives: int, auc: float, n: int = 1200) -> dict:
    return {"split": as_of, "test_as_of": as_of, "n": n, "positives": positives, "base_rate": positives / n, "k": 100,
            "scorers": {"model": {"roc_auc": {"value": auc, "ci_low": auc - 0.04, "ci_high": auc + 0.04},
                                  "average_precision": {"value": auc / 3, "ci_low": 0.1, "ci_high": 0.4}},
                        "logistic": {"roc_auc": {"value": auc - 0.05, "ci_low": 0.5, "ci_high": 0.9}}}}


def test_auc_over_the_test_dates_leaves_out_a_date_whose_escalations_are_withheld():
    from earlysignal.audit.assemble import published_baseline_differences, published_criterion, published_split, published_summary

    splits = [_ranked_split("2025-01-01", 60, 0.80), _ranked_split("2025-04-01", 4, 0.40),
              _ranked_split("2025-07-01", 70, 0.70)]
    published = [published_split(s, MIN_CELL, ROUND_TO) for s in splits]
    assert published[1]["scorers"]["model"]["roc_auc"]["value"] is None
    assert published[1]["scorers"]["model"]["average_precision"]["value"] is None
    assert published[1]["scorers"]["logistic"]["roc_auc"]["value"] is None
    assert "small number" in published[1]["withheld"]["roc_auc"]
    assert published[0]["withheld"] == {} and published[0]["scorers"]["model"]["roc_auc"]["value"] == 0.80
    # The run's mean over all three dates (0.633) beside the two shown would give the hidden 0.40 back.
    summary = {"model": {"roc_auc": {"value": 0.633, "ci_low": 0.6, "ci_high": 0.67},
                         "average_precision": {"value": 0.211, "ci_low": 0.15, "ci_high": 0.27}},
               "logistic": {"roc_auc": {"value": 0.583, "ci_low": 0.55, "ci_high": 0.62}}}
    shown = published_summary(summary, splits, published, MIN_CELL, ROUND_TO)
    assert shown["model"]["roc_auc"] == {"value": pytest.approx(0.75), "ci_low": None, "ci_high": None,
                                         "over_test_dates": ["2025-01-01", "2025-07-01"],
                                         "withheld_test_dates": ["2025-04-01"]}
    assert shown["model"]["average_precision"]["value"] == pytest.approx(0.25)
    assert shown["logistic"]["roc_auc"]["value"] == pytest.approx(0.70)
    criterion = published_criterion({"metric": "roc_auc", "threshold": 0.7, "value": 0.633, "met": False}, shown)
    assert criterion["value"] == pytest.approx(0.75) and criterion["ci_low"] is None
    assert "withheld at 2025-04-01" in criterion["note"]
    differences = {"logistic": {"roc_auc": {"value": 0.05}, "precision_at_capacity": {"value": 0.01}}}
    assert published_baseline_differences(differences, splits, MIN_CELL) == {
        "logistic": {"precision_at_capacity": {"value": 0.01}}}
    assert published_baseline_differences(differences, [splits[0], splits[2]], MIN_CELL) == differences


def test_auc_is_withheld_at_a_date_where_only_a_handful_did_not_escalate():
    from earlysignal.audit.assemble import published_split

    published = published_split(_ranked_split("2025-01-01", 1195, 0.6), MIN_CELL, ROUND_TO)
    assert published["scorers"]["model"]["roc_auc"]["value"] is None
    assert "did not escalate" in published["withheld"]["roc_auc"]


def test_the_summary_over_dates_withholds_a_zero_beside_a_withheld_total_of_escalations():
    from earlysignal.audit.assemble import published_split, published_summary

    def split(name: str, positives: int, found: int) -> dict:
        return {"split": name, "test_as_of": name, "n": 1200, "positives": positives, "base_rate": positives / 1200,
                "k": 100, "scorers": {"prior": {"precision_at_capacity": {"value": found / 100},
                                                "recall_at_capacity": {"value": found / positives},
                                                "lift_at_capacity": {"value": 0.0}}}}

    summary = {"prior": {m: {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
                         for m in ("precision_at_capacity", "recall_at_capacity", "lift_at_capacity")}}
    few = [split("2025-01-01", 4, 0), split("2025-04-01", 3, 0)]  # 7 escalations in all: withheld
    published = published_summary(summary, few, [published_split(s, MIN_CELL, ROUND_TO) for s in few], MIN_CELL, ROUND_TO)
    assert published["prior"]["precision_at_capacity"] == {"value": None, "ci_low": None, "ci_high": None, "pooled": True}
    assert published["prior"]["recall_at_capacity"]["value"] is None
    many = [split("2025-01-01", 6, 0), split("2025-04-01", 6, 0)]  # 12 in all: rounded to 10, none found
    published = published_summary(summary, many, [published_split(s, MIN_CELL, ROUND_TO) for s in many], MIN_CELL, ROUND_TO)
    assert published["prior"]["precision_at_capacity"]["value"] == 0.0
    assert published["prior"]["recall_at_capacity"]["value"] == 0.0


def test_the_k_curve_and_the_flagged_share_withhold_a_zero_beside_withheld_escalations():
    from earlysignal.audit.assemble import flagged_outcomes, k_curves

    frame = pd.DataFrame({"as_of": pd.Timestamp("2025-01-01"), "rank": np.arange(1, 1001),
                          "label": np.r_[np.zeros(990, dtype=int), np.ones(6, dtype=int), np.zeros(4, dtype=int)],
                          "flagged": np.r_[np.ones(100, dtype=bool), np.zeros(900, dtype=bool)]})
    curves = k_curves(frame, {"2025-01-01": 100}, MIN_CELL, ROUND_TO)
    assert set(curves["precision"]) == {None} and set(curves["recall"]) == {None}
    (row,) = flagged_outcomes(frame, ROUND_TO, MIN_CELL)
    assert (row["flagged"], row["escalated_share"], row["missed_share"]) == (100, None, None)


@pytest.mark.parametrize("seed", [0, 1])
def test_no_small_count_of_a_group_can_be_worked_back_from_the_group_tables_read_together(seed: int):
    """The differencing attack (audit.differencing) on the fairness section alone: a characteristic's groups add
    up to everyone and an intersection's to each attribute's groups, so a hidden or withheld count that only
    the rounding protects is pinned to a few values. Complementary suppression closes it."""
    from test_release_bundle import evaluation_rows

    from earlysignal.audit.differencing import attack_release
    from earlysignal.audit.fairness import audit_fairness_for

    rows = evaluation_rows(seed=seed)
    fairness = audit_fairness_for(load_config(REPO / "conf" / "borough.yaml"), rows)
    bounds = attack_release({"small_numbers": {"min_cell": MIN_CELL, "round_to": ROUND_TO}, "fairness": fairness})
    assert bounds
    assert [b for b in bounds if b.worked_back] == []
    # What was added reads as a secondary suppression (a reason of its own would say a count inside is small).
    reasons = {g["suppressed"] for block in fairness["characteristics"] for g in block.get("groups", [])}
    assert reasons <= {None, "primary", "secondary"} and "secondary" in reasons


def test_the_flagged_total_less_the_men_shown_no_longer_pins_the_womens_handful():
    """The audit publishes k exactly: 100 flagged less the men's 91 shown as 90 left the women's withheld 9 flagged
    at 8 or 9 (not 1 to 9). Complementary suppression now hides another row's flagged too."""
    from earlysignal.audit.differencing import attack_release

    frame = _world()
    document, _ = _published_document(frame)
    fairness = document["fairness"]
    places = int(frame["flagged"].sum())
    attack = {"small_numbers": {"min_cell": MIN_CELL, "round_to": ROUND_TO}, "fairness": fairness,
              "performance": {"n": 1000, "positives": 170, "places": places}}
    assert [b for b in attack_release(attack) if b.worked_back] == []
    sex = next(c for c in fairness["characteristics"] if c["key"] == "sex")
    assert [g["suppressed"] for g in sex["groups"]] == ["secondary", None] or all(
        g["flagged"] is None for g in sex["groups"])

"""The report renders from the audit document alone: missing inputs show loudly, approval shows who and when."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from earlysignal.approval import ApprovalRecord
from earlysignal.audit import build_audit
from earlysignal.config import load_config
from earlysignal.report import SECTION_HEADINGS, render_audit_html

REPO = Path(__file__).resolve().parents[1]


def _document(approval: ApprovalRecord | None, **attributes: object) -> dict:
    rng = np.random.default_rng(0)
    n = 2000
    predictions = pd.DataFrame(
        {
            "resident_id": [f"R{i:05d}" for i in range(n)],
            "as_of": pd.Timestamp("2025-01-01"),
            "split": "split_1",
            "label": (rng.random(n) < 0.1).astype("int8"),
            "score": rng.random(n),
            "attr__sex": rng.choice(["F", "M"], n),
            "attr__ethnicity": rng.choice(["White", "Black"], n),
        }
    )
    for column, value in attributes.items():
        predictions[column] = value
    predictions["rank"] = predictions["score"].rank(ascending=False, method="first").astype(int)
    predictions["flagged"] = predictions["rank"] <= 200
    sample = predictions.assign(x=rng.normal(size=n))
    return build_audit(
        config=load_config(REPO / "conf" / "borough.yaml"),
        model={"name": "m", "version": "4", "run_id": "run"},
        predictions=predictions,
        metrics={"summary": {}, "splits": [], "success_criterion": {"metric": "precision_at_capacity", "threshold": 0.65}},
        feature_metadata={"feature_columns": ["x"], "features": [{"name": "x", "description": "x is {value}"}]},
        explain_sample=sample,
        contributions=np.column_stack([sample["x"], np.zeros(n)]),
        approval=approval,
    )


def test_a_characteristic_missing_from_the_predictions_shows_not_provided() -> None:
    document = _document(None)
    disability = next(c for c in document["fairness"]["characteristics"] if c["key"] == "disability")
    assert disability["missing_column"] == "'attr__disability'"
    html = render_audit_html(document)
    assert re.findall(r"<h2>(.*?)</h2>", html) == list(SECTION_HEADINGS)
    assert "The predictions carry no &#39;attr__disability&#39; column" in html
    factors = next(item["text"] for item in document["model_card"] if item["title"] == "Factors")
    assert factors.startswith("Performance and error rates are reported by sex, ethnicity, age_band, disability and "
                              "the intersections sex + ethnicity (age_band, disability: not in the test predictions, "
                              "so not audited).")
    assert "NOT APPROVED" in html and "NOT EVALUABLE" in html
    assert '<meta name="earlysignal-model" content="m/4">' in html
    assert "R00001" not in html


def test_a_characteristic_recorded_for_nobody_shows_not_recorded_and_is_not_called_audited() -> None:
    # As from raw extracts that carry no disability field: the column exists, every value is missing.
    document = _document(None, attr__disability=pd.array([None] * 2000, dtype="string"))
    disability = next(c for c in document["fairness"]["characteristics"] if c["key"] == "disability")
    assert disability["not_recorded_for_all"] == ["disability"] and "groups" not in disability
    html = render_audit_html(document)
    assert ("<span class=\"missing\">NOT RECORDED</span> disability is recorded for nobody in the test predictions, "
            "so this characteristic cannot be audited") in html
    factors = next(item["text"] for item in document["model_card"] if item["title"] == "Factors")
    assert ("(age_band: not in the test predictions; disability: recorded for nobody in them, so not audited).") in factors


def test_an_approval_shows_who_approved_which_version_and_when() -> None:
    record = ApprovalRecord(
        model_name="m", model_version="4", status="approved", approver="A. Chair",
        approved_at="2026-11-25T08:00:00Z", report_sha256="a" * 64, model_sha256="b" * 64, note="board meeting",
    )
    html = render_audit_html(_document(record))
    assert "Approved by <strong>A. Chair</strong> at 2026-11-25T08:00:00Z (version 4)" in html
    assert "b" * 64 in html and "board meeting" in html
    assert "NOT APPROVED" not in html


def test_predictions_without_the_operating_point_are_a_clear_error() -> None:
    import pytest

    from earlysignal.audit.assemble import AuditError, evaluated_rows

    frame = pd.DataFrame({"as_of": [pd.Timestamp("2025-01-01")], "label": [1], "score": [0.5], "rank": [1]})
    with pytest.raises(AuditError, match=r"test predictions \(evaluation store\) lack column\(s\) \['flagged'\]"):
        evaluated_rows(frame)


def test_recording_by_group_shows_whose_files_are_fuller_and_suppresses_small_groups() -> None:
    from earlysignal.audit.assemble import recording_by_group
    from earlysignal.dictionary import dictionary_for

    sample = pd.DataFrame(
        {
            "police_all": [3, 2, 4, 5, 1, 2, 3, 4, 2, 6] * 2 + [0] * 20 + [1] * 15 + [1],
            "attr__ethnicity": ["Black"] * 20 + ["White"] * 20 + ["Asian"] * 15 + ["Other"],
            "attr__disability": pd.array([None] * 5 + [False] * 51, dtype="boolean"),
        }
    )
    records = [{"name": "police_all", "aggregate": "count", "window": "all"}]
    rows = {
        (r["characteristic"], r["group"]): r
        for r in recording_by_group(sample, records, ["ethnicity", "disability"], 10, 5,
                                    group_words=dictionary_for(load_config(REPO / "conf" / "borough.yaml")).boolean_group_words())
    }
    assert rows[("ethnicity", "Black")]["share_no_recorded_events"] == 0.0
    assert rows[("ethnicity", "White")]["share_no_recorded_events"] == 1.0
    assert rows[("ethnicity", "Black")]["mean_recorded_events"] == 3.2
    # 5 of 20 Black residents have no disability recorded: 5 is a small count, so no share is published.
    assert rows[("ethnicity", "Black")]["not_recorded"] == {"disability": None}
    assert rows[("ethnicity", "Other")] == {"characteristic": "ethnicity", "group": "Other", "n": None, "suppressed": True}
    # Secondary suppression: with "Other" (1 row) hidden, the next smallest group (Asian, 15) goes too.
    assert rows[("ethnicity", "Asian")]["suppressed"] is True
    assert rows[("disability", "Not recorded")]["suppressed"] is True  # 5 rows
    assert rows[("disability", "Not disabled")]["suppressed"] is True  # the only other disability group

"""`earlysignal audit --scores`: scores from elsewhere get the same fairness audit as the model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import precision_score
from typer.testing import CliRunner

from earlysignal.audit.external import ScoresFileError, build_external_audit
from earlysignal.cli import app
from earlysignal.config import CapacitySection, config_from_dict, load_config
from earlysignal.report.render import render_external_audit_html

REPO = Path(__file__).resolve().parents[1]


def _config(**audit):
    raw = load_config(REPO / "conf" / "borough.yaml").model_dump(mode="json")
    raw["audit"].update(bootstrap=100, **audit)
    return config_from_dict(raw)


def _residents(n: int = 1200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "resident_id": [f"P{i:05d}" for i in range(n)],
            "birth_date": pd.to_datetime("2012-06-15") - pd.to_timedelta(rng.integers(0, 17 * 365, n), unit="D"),
            "sex": rng.choice(["F", "M"], n),
            "ethnicity": pd.array(rng.choice(["White", "Black", "Asian", None], n, p=[0.6, 0.2, 0.15, 0.05]),
                                  dtype="string"),
            "disability": pd.array(rng.random(n) < 0.1, dtype="boolean"),
        }
    )


def _scores(residents: pd.DataFrame) -> pd.DataFrame:
    """A vendor's list on two dates: score, label, flagged (the vendor's own top 12%)."""
    rng = np.random.default_rng(2)
    rows = []
    for as_of in ("2024-01-01", "2024-07-01"):
        ids = residents["resident_id"].to_numpy()
        label = (rng.random(len(ids)) < 0.12).astype(int)
        score = np.round(0.3 * label + rng.random(len(ids)), 2)
        flagged = score >= np.quantile(score, 0.88)
        rows.append(pd.DataFrame({"resident_id": ids, "as_of": as_of, "score": score, "label": label,
                                  "flagged": np.where(flagged, "yes", "no")}))
    return pd.concat(rows, ignore_index=True)


def _audit(scores: pd.DataFrame, residents: pd.DataFrame, config=None, capacity=None) -> dict:
    return build_external_audit(scores, residents, config or _config(), source_name="Vendor X tool",
                                file_name="vendor.csv", file_sha256="0" * 64, capacity=capacity)


def test_group_figures_equal_an_independent_fairlearn_computation_on_the_same_file():
    residents = _residents()
    scores = _scores(residents)
    audit = _audit(scores, residents, _config(min_cell=1, round_to=1))
    joined = scores.merge(residents, on="resident_id")
    groups = joined["ethnicity"].fillna("Not recorded").astype(str)
    independent = MetricFrame(
        metrics={"n": count, "selection_rate": selection_rate, "recall": true_positive_rate,
                 "fpr": false_positive_rate, "precision": lambda y, p: precision_score(y, p, zero_division=0)},
        y_true=joined["label"], y_pred=(joined["flagged"] == "yes").astype(int), sensitive_features=groups,
    ).by_group
    block = next(b for b in audit["fairness"]["characteristics"] if b["key"] == "ethnicity")
    assert {g["group"] for g in block["groups"]} == {"White", "Black", "Asian", "Not recorded"}
    for g in block["groups"]:
        assert g["n"] == independent.loc[g["group"], "n"]
        for metric in ("selection_rate", "recall", "fpr", "precision"):
            assert g[metric] == pytest.approx(independent.loc[g["group"], metric], abs=1e-12), (g["group"], metric)


def test_with_the_usual_small_number_rules_counts_are_fairlearn_counts_rounded():
    residents = _residents()
    scores = _scores(residents)
    audit = _audit(scores, residents)
    joined = scores.merge(residents, on="resident_id")
    sex = joined["sex"].map({"F": "Female", "M": "Male"})
    n = MetricFrame(metrics=count, y_true=joined["label"], y_pred=joined["label"], sensitive_features=sex).by_group
    block = next(b for b in audit["fairness"]["characteristics"] if b["key"] == "sex")
    for g in block["groups"]:
        assert g["n"] == int(5 * np.floor(n.loc[g["group"]] / 5 + 0.5))
        assert g["selection_rate"] == g["flagged"] / g["n"]


def test_the_report_says_whose_scores_it_audits_and_how_many_rows_were_dropped():
    residents = _residents()
    scores = _scores(residents)
    strangers = scores.iloc[:3].assign(resident_id=["X1", "X2", "X3"])
    unlabelled = scores.iloc[3:5].assign(as_of="2025-01-01", label=None)
    audit = _audit(pd.concat([scores, strangers, unlabelled], ignore_index=True), residents)
    assert audit["rows"]["unknown_residents_dropped"] == 3
    assert audit["rows"]["unlabelled_dropped"] == 2
    assert audit["source"]["name"] == "Vendor X tool"
    html = render_external_audit_html(audit)
    assert "Fairness audit of scores from Vendor X tool" in html
    assert "scores produced by Vendor X tool</strong>, not by an Early Signal model" in html
    # With no finding the report says whether anything could be assessed, from the same document.
    assert audit["fairness"]["findings"] == []
    assessed = sum(1 for block in audit["fairness"]["characteristics"] for g in block.get("groups", [])
                   for r in g["ratios"].values() if r["assessable"] and r["low"] is not None)
    note = (f"No disparity was flagged: every ratio that could be assessed ({assessed}) is inside the 0.8–1.25 band "
            "or its interval includes equality. Suppressed groups could not be assessed (see Small numbers).")
    assert assessed > 0 and audit["fairness"]["findings_note"] == note and note in html


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["label"]), r"lacks column\(s\) \['label'\]"),
        (lambda f: pd.concat([f, f.iloc[[7]]]), r"2 rows repeat a \(resident_id, as_of\) pair, e.g. resident P00007"),
        (lambda f: f.drop(columns=["flagged"]), "has no 'flagged' column: pass --capacity K"),
        (lambda f: f.assign(flagged="maybe"), "column 'flagged' must be true/false"),
        (lambda f: f.assign(label=2), "label must be 0, 1 or empty"),
        (lambda f: f.assign(score="high"), "score is missing or not a number in 2400 row"),
        (lambda f: f.assign(resident_id="X" + f["resident_id"]),
         r"none of its 2400 labelled rows is a resident of the data \(2400 unknown"),
    ],
)
def test_bad_scores_files_are_clear_errors(change, message):
    residents = _residents()
    with pytest.raises(ScoresFileError, match=message):
        _audit(change(_scores(residents)), residents)


def test_without_a_flagged_column_the_top_k_are_flagged_and_ties_do_not_follow_resident_ids():
    residents = _residents(400)
    scores = pd.DataFrame({"resident_id": residents["resident_id"], "as_of": "2024-01-01", "score": 0.5,
                           "label": np.r_[np.ones(40, int), np.zeros(360, int)]})
    audit = _audit(scores, residents, capacity=CapacitySection(k=40))
    first = audit["performance"][0]
    assert first["flagged"] == 40
    # Every score ties: flagging the first 40 ids would find all 40 escalations; a random order about 4.
    assert first["precision"] is None or first["precision"] < 0.5
    assert audit == {**_audit(scores, residents, capacity=CapacitySection(k=40)), "generated_at": audit["generated_at"]}
    assert "top 40 of each as_of by score (ties in a random order, seed" in audit["source"]["flagged_from"]


def test_cli_audits_a_vendor_file_against_the_linked_data(synth_borough_small: Path, tmp_path: Path):
    residents = pd.read_parquet(synth_borough_small / "residents.parquet").head(1500)
    scores = _scores(residents.assign(resident_id=residents["resident_id"].astype(str)))
    path = tmp_path / "vendor.csv"
    scores.to_csv(path, index=False)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["audit", "--scores", str(path), "--source-name", "Vendor X tool",
                                      "--scores-data", str(synth_borough_small), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Audited scores from Vendor X tool (vendor.csv)" in result.output
    audit = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert audit["rows"]["unknown_residents_dropped"] == 0 and audit["rows"]["audited"] == 3000
    assert "Fairness audit of scores from Vendor X tool" in (out / "audit.html").read_text(encoding="utf-8")
    missing = CliRunner().invoke(app, ["audit", "--scores", str(path), "--scores-data", str(synth_borough_small)])
    assert missing.exit_code == 2 and "--scores needs --source-name" in missing.output


def test_scores_that_are_not_probabilities_such_as_negative_balances_are_ranked_not_binned():
    from sklearn.metrics import roc_auc_score

    residents = _residents()
    scores = _scores(residents)
    balance = scores.assign(score=(scores["score"] - 0.9) * 1000)  # a rent balance: mostly negative, some above 1
    audit = _audit(balance, residents)
    first = balance[balance["as_of"] == "2024-01-01"]
    expected = roc_auc_score(first["label"], first["score"])
    assert audit["performance"][0]["as_of"] == "2024-01-01"
    assert audit["performance"][0]["auc"] == pytest.approx(expected, abs=0.0051)

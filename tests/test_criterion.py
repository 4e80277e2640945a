"""The pre-registered success criterion: metrics that mean something in a synthetic world, and the oracle's
ceiling shown beside the criterion so a NOT MET that no model could escape is never read as the model's fault."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earlysignal.audit import build_audit
from earlysignal.config import ConfigError, SuccessCriterion, config_from_dict, load_config
from earlysignal.modeling.train import _criterion
from earlysignal.report import render_audit_html

REPO = Path(__file__).resolve().parents[1]


def _entry(value: float, low: float | None = None, high: float | None = None) -> dict:
    return {"value": value, "ci_low": low, "ci_high": high}


def test_lift_at_capacity_takes_a_threshold_above_one():
    criterion = SuccessCriterion(metric="lift_at_capacity", threshold=10)
    assert (criterion.metric, criterion.threshold) == ("lift_at_capacity", 10.0)


def test_a_share_metric_with_a_threshold_above_one_is_refused_with_the_key_and_the_fix():
    raw = load_config(REPO / "conf" / "borough.yaml").model_dump(mode="json")
    raw["success_criterion"] = {"metric": "precision_at_capacity", "threshold": 10}
    with pytest.raises(ConfigError) as error:
        config_from_dict(raw)
    message = str(error.value)
    assert "success_criterion" in message
    assert "precision_at_capacity is a share between 0 and 1" in message
    assert "only lift_at_capacity" in message


def test_the_synthetic_demo_preregisters_lift_at_capacity_of_ten():
    criterion = load_config(REPO / "conf" / "borough.yaml").success_criterion
    assert (criterion.metric, criterion.threshold) == ("lift_at_capacity", 10.0)


def test_the_real_world_criterion_stays_documented_as_precision_of_0_65():
    for page in ("audit.md", "config.md"):
        text = (REPO / "docs" / page).read_text(encoding="utf-8")
        assert "precision_at_capacity" in text and "0.65" in text, page


def test_criterion_carries_the_oracle_value_of_its_own_metric():
    config = load_config(REPO / "conf" / "borough.yaml")  # lift_at_capacity >= 10
    summary = {
        "model": {"lift_at_capacity": _entry(15.4, 8.5, 21.3), "precision_at_capacity": _entry(0.038)},
        "oracle": {"lift_at_capacity": _entry(35.2, 25.6, 44.3), "precision_at_capacity": _entry(0.082)},
    }
    crit = _criterion(config, summary)
    assert crit["met"] is True
    assert crit["statement"] == "MET: lift_at_capacity = 15.400 (pre-registered threshold 10.000)"
    assert (crit["oracle_value"], crit["oracle_ci_low"], crit["oracle_ci_high"]) == (35.2, 25.6, 44.3)


def test_criterion_without_an_oracle_has_no_ceiling():
    config = load_config(REPO / "conf" / "borough.yaml")
    crit = _criterion(config, {"model": {"lift_at_capacity": _entry(9.9)}})
    assert crit["met"] is False
    assert (crit["oracle_value"], crit["oracle_ci_low"], crit["oracle_ci_high"]) == (None, None, None)


@pytest.fixture(scope="module")
def audit_inputs() -> dict:
    rng = np.random.default_rng(0)
    n = 1000
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
    predictions["rank"] = predictions["score"].rank(ascending=False, method="first").astype(int)
    predictions["flagged"] = predictions["rank"] <= 100
    sample = predictions.assign(x=rng.normal(size=n))
    raw = load_config(REPO / "conf" / "borough.yaml").model_dump(mode="json")
    raw["audit"].update(bootstrap=0)
    return {
        "config": config_from_dict(raw),
        "model": {"name": "m", "version": "1", "run_id": "run"},
        "predictions": predictions,
        "feature_metadata": {"feature_columns": ["x"], "features": [{"name": "x", "description": "x is {value}"}]},
        "explain_sample": sample,
        "contributions": np.column_stack([sample["x"], np.zeros(n)]),
        "approval": None,
    }


def _ceiling_sentence(html: str) -> str | None:
    found = re.search(r'<p class="oracle-ceiling">(.*?)</p>', html, flags=re.S)
    return None if found is None else re.sub(r"\s+", " ", found.group(1))


def test_report_shows_an_unreachable_threshold_as_beyond_the_oracle(audit_inputs):
    criterion = {"metric": "precision_at_capacity", "threshold": 0.65, "value": 0.038, "ci_low": 0.02,
                 "ci_high": 0.055, "met": False, "oracle_value": 0.082, "oracle_ci_low": 0.054,
                 "oracle_ci_high": 0.101}
    document = build_audit(metrics={"summary": {}, "splits": [], "success_criterion": criterion}, **audit_inputs)
    assert _ceiling_sentence(render_audit_html(document)) == (
        "Ceiling in this synthetic world: the oracle, which knows every resident's true risk, reaches 0.082 "
        "(95% interval 0.054–0.101) on this metric, so the threshold of 0.65 is beyond what even a "
        "perfect-knowledge model reaches here: no model can be expected to meet it."
    )


def test_report_takes_the_ceiling_from_the_oracle_summary_and_states_the_share_asked_for(audit_inputs):
    # A metrics document logged before the criterion carried oracle_value: the oracle's summary row is used.
    summary = {"oracle": {"lift_at_capacity": _entry(40.0, 30.0, 50.0)}}
    criterion = {"metric": "lift_at_capacity", "threshold": 10.0, "value": 15.0, "met": True}
    document = build_audit(metrics={"summary": summary, "splits": [], "success_criterion": criterion},
                           **audit_inputs)
    assert document["summary"]["criterion"]["oracle_value"] == 40.0
    assert _ceiling_sentence(render_audit_html(document)) == (
        "Ceiling in this synthetic world: the oracle, which knows every resident's true risk, reaches 40.000 "
        "(95% interval 30.000–50.000) on this metric, so the threshold asks for 25.0% of what a "
        "perfect-knowledge model reaches here."
    )


def test_report_for_a_real_borough_shows_no_ceiling(audit_inputs):
    criterion = {"metric": "precision_at_capacity", "threshold": 0.65, "value": 0.4, "met": False}
    document = build_audit(metrics={"summary": {"model": {"precision_at_capacity": _entry(0.4)}}, "splits": [],
                                    "success_criterion": criterion}, **audit_inputs)
    html = render_audit_html(document)
    assert _ceiling_sentence(html) is None
    assert "oracle" not in document["summary"]["criterion"]
    assert document["summary"]["criterion"].get("oracle_value") is None

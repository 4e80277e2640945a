"""Necessity of each source: which columns each variant leaves out, paired contributions, the audit block."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from earlysignal.config import config_from_dict, load_config
from earlysignal.errors import ConfigError
from earlysignal.features.spec import feature_definitions
from earlysignal.modeling.necessity import feature_groups, paired_contribution
from earlysignal.modeling.train import _Labelled

REPO = Path(__file__).resolve().parents[1]


def _config(**necessity):
    raw = yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8"))
    raw["necessity"].update(necessity)
    return config_from_dict(raw)


def test_leaving_out_a_source_removes_every_feature_built_from_it_at_every_scope() -> None:
    config = load_config(REPO / "conf" / "borough.yaml")
    columns = [d.name for d in feature_definitions(config)]
    groups = {g["name"]: g for g in feature_groups(config, columns)}
    assert list(groups)[:len(config.features.families)] == [f.source for f in config.features.families]
    police = groups["police"]["columns"]
    assert police == [c for c in columns if "__police__" in c]
    assert any(c.startswith("household__police__") for c in police)
    assert any(c.startswith("address__police__") for c in police)
    assert any(c.endswith("_imputed") for c in police)  # imputation flags go with their feature
    assert all(c not in police for c in columns if c.startswith("static__"))
    proxy = groups["age_and_family"]
    assert proxy["kind"] == "proxy_group"
    assert proxy["columns"] == ["static__age", "static__household_size", "static__household_children"]


def test_proxy_group_pattern_matching_no_feature_is_a_config_error() -> None:
    config = _config(proxy_groups=[{"name": "age", "features": ["static__age", "static__agee*"]}])
    columns = [d.name for d in feature_definitions(config)]
    with pytest.raises(ConfigError, match=r"necessity\.proxy_groups\.0\.features: 'static__agee\*' matches no feature"):
        feature_groups(config, columns)


def _predictions(rng: np.random.Generator, y: np.ndarray, signal: float) -> dict:
    margin = signal * y + rng.normal(size=len(y))
    return {"margin": margin, "score": 1 / (1 + np.exp(-margin))}


@pytest.fixture(scope="module")
def two_dates():
    rng = np.random.default_rng(0)
    n = 2000
    y = (rng.random(2 * n) < 0.1).astype(np.int8)
    frame = pd.DataFrame({"resident_id": [f"R{i:05d}" for i in range(2 * n)]})
    data = _Labelled(frame, np.zeros((2 * n, 1), dtype=np.float32), y, np.repeat(np.array(["2024-01-01", "2024-04-01"], dtype="datetime64[D]"), n))
    tests = [np.arange(2 * n) < n, np.arange(2 * n) >= n]
    strong = [{"test": t, **_predictions(rng, y[t], 2.0)} for t in tests]
    weak = [{"test": t, **_predictions(rng, y[t], 0.5)} for t in tests]
    return data, strong, weak


def test_a_variant_identical_to_the_full_model_contributes_exactly_zero(two_dates) -> None:
    data, strong, _ = two_dates
    config = _config(bootstrap=50)
    result = paired_contribution(data, strong, strong, config, 50)
    for metric in ("precision_at_capacity", "roc_auc"):
        assert result["contribution"][metric] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert result["necessary"] is False


def test_losing_signal_shows_as_a_positive_contribution_with_an_interval_above_zero(two_dates) -> None:
    data, strong, weak = two_dates
    config = _config(bootstrap=50)
    result = paired_contribution(data, strong, weak, config, 50)
    auc = result["contribution"]["roc_auc"]
    assert auc["ci_low"] > 0 and auc["ci_low"] <= auc["value"] <= auc["ci_high"]
    assert result["necessary"] is True
    assert result["without"]["roc_auc"] == pytest.approx(
        np.mean([paired_contribution(data, [w], [w], config, 0)["without"]["roc_auc"] for w in weak]))


def test_a_source_costs_nothing_only_when_its_whole_loss_interval_is_negligible(two_dates) -> None:
    data, strong, weak = two_dates
    config = _config(bootstrap=50)
    assert paired_contribution(data, strong, strong, config, 50)["verdict"] == "costs nothing"
    assert paired_contribution(data, strong, weak, config, 50)["verdict"] == "necessary"
    # Not necessary, but the interval reaches a loss the board would care about: the data cannot tell.
    wide = paired_contribution(data, strong, strong, _config(bootstrap=50, negligible={"roc_auc": 0.0,
                                                                                       "precision_at_capacity": 0.0}), 50)
    assert wide["verdict"] == "costs nothing"  # exactly zero is within a zero margin
    # A small area (150 residents per date, ~15 escalations): a noisier variant, not shown to be necessary,
    # whose AUC loss interval still reaches 0.11.
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.1).astype(np.int8)
    small = _Labelled(pd.DataFrame({"resident_id": [f"R{i:05d}" for i in range(300)]}), np.zeros((300, 1), np.float32),
                      y, np.repeat(np.array(["2024-01-01", "2024-04-01"], dtype="datetime64[D]"), 150))
    tests = [np.arange(300) < 150, np.arange(300) >= 150]
    full = [{"test": t, **_predictions(rng, y[t], 1.0)} for t in tests]
    noisy = []
    for p in full:
        margin = p["margin"] + rng.normal(0, 0.7, len(p["margin"]))
        noisy.append({"test": p["test"], "margin": margin, "score": 1 / (1 + np.exp(-margin))})
    undecided = paired_contribution(small, full, noisy, config, 50)
    assert undecided["necessary"] is False
    assert undecided["contribution"]["roc_auc"]["ci_low"] < 0 < 0.1 < undecided["contribution"]["roc_auc"]["ci_high"]
    assert undecided["verdict"] == "undetermined"


def test_precision_resting_on_fewer_than_ten_flagged_escalations_is_withheld_but_the_verdict_stands() -> None:
    from earlysignal.modeling.necessity import publish_precision

    def row(found: float) -> dict:
        return {"name": "fire", "necessary": False, "verdict": "undetermined",
                "contribution": {"precision_at_capacity": {"value": 0.0025, "ci_low": -0.005, "ci_high": 0.0075},
                                 "roc_auc": {"value": 0.03, "ci_low": -0.01, "ci_high": 0.07}},
                "without": {"precision_at_capacity": 0.01, "roc_auc": 0.8}, "flagged_escalations": {
                    "full": 5.0, "variant": found}}

    # 0.0125 over 4 test dates of 100 flagged: 5 escalations found, a count that must not be worked out.
    small = {"full": {"metrics": {"precision_at_capacity": 0.0125, "roc_auc": 0.83}, "flagged_escalations": 5.0},
             "variants": [row(4.0)]}
    published = publish_precision(small, min_cell=10)
    assert published["full"]["metrics"] == {"precision_at_capacity": None, "roc_auc": 0.83}
    assert published["full"]["precision_withheld"] is True
    [variant] = published["variants"]
    assert variant["contribution"]["precision_at_capacity"] == {"value": None, "ci_low": None, "ci_high": None,
                                                                "withheld": True}
    assert variant["without"]["precision_at_capacity"] is None
    assert variant["contribution"]["roc_auc"]["value"] == 0.03 and variant["verdict"] == "undetermined"
    assert "flagged_escalations" not in json.dumps(published)
    # Enough escalations on both sides: published as measured.
    large = {"full": {"metrics": {"precision_at_capacity": 0.0725, "roc_auc": 0.83}, "flagged_escalations": 29.0},
             "variants": [row(25.0)]}
    shown = publish_precision(large, min_cell=10)
    assert shown["full"]["metrics"]["precision_at_capacity"] == 0.0725 and "precision_withheld" not in shown["full"]
    assert shown["variants"][0]["contribution"]["precision_at_capacity"]["value"] == 0.0025


def test_the_report_calls_out_a_source_that_costs_nothing_apart_from_one_the_data_cannot_decide() -> None:
    from earlysignal.report.necessity_render import render_necessity_html

    def row(name: str, verdict: str, high: float) -> dict:
        entry = {"value": 0.0, "ci_low": -0.01, "ci_high": high}
        return {"kind": "source", "name": name, "label": name.replace("_", " ").capitalize(), "why": "",
                "n_features": 2, "necessary": False, "verdict": verdict, "seconds": 20.0,
                "contribution": {"precision_at_capacity": entry, "roc_auc": entry},
                "without": {"precision_at_capacity": 0.05, "roc_auc": 0.8},
                "fairness": {"findings": 0, "gone": [], "new": []}}

    document = {"label": "cpp_within_6m", "rule": "necessary: ...", "full": {"metrics": {"precision_at_capacity": 0.05, "roc_auc": 0.8},
                                                   "fairness_findings": 0, "seconds": 20.0},
                "seconds_total": 61.0, "bootstrap": {"resamples": 200},
                "variants": [row("fire", "costs nothing", 0.004), row("housing_repairs", "undetermined", 0.14)],
                "not_shown_necessary": ["fire", "housing_repairs"], "costs_nothing": ["fire"],
                "undetermined": ["housing_repairs"], "negligible": {"precision_at_capacity": 0.005, "roc_auc": 0.01}}
    html = render_necessity_html(document)
    costs = html.split('data-verdict="costs nothing">', 1)[1].split("</div>", 1)[0]
    unsure = html.split('data-verdict="undetermined">', 1)[1].split("</div>", 1)[0]
    assert "Fire." in costs and "Housing repairs" not in costs
    assert "Housing repairs." in unsure and "too few escalations" in unsure and "Fire" not in unsure
    assert "Run time 61 s" in html and "Necessary: ..." in html
    assert "housing_repairs" not in html.replace('data-necessity="housing_repairs"', "")  # board words, not IDs


@pytest.mark.slow
def test_necessity_command_writes_the_table_and_the_audit_report_includes_it(tmp_path_factory, monkeypatch) -> None:
    from audit_world import audit_world
    from typer.testing import CliRunner

    from earlysignal.audit import run_audit
    from earlysignal.cli import app

    world = audit_world(tmp_path_factory.getbasetemp(), biased=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.tracking_uri)
    raw = world.config.model_dump(mode="json")
    raw["necessity"].update(bootstrap=30, fairness_bootstrap=0)
    config_path = tmp_path_factory.mktemp("necessity") / "borough.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    out = config_path.parent / "audit"
    result = CliRunner().invoke(app, ["necessity", "--config", str(config_path), "--only", "housing_repairs,age_and_family",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "necessity.json").read_text())
    assert [v["name"] for v in document["variants"]] == ["housing_repairs", "age_and_family"]
    assert document["bootstrap"]["resamples"] == 30
    for row in document["variants"]:
        for metric in ("precision_at_capacity", "roc_auc"):
            entry = row["contribution"][metric]
            assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
        assert row["necessary"] == (row["name"] not in document["not_shown_necessary"])
    assert "Run time" in result.output
    report = run_audit(world.model_uri, out_dir=out, log_to_mlflow=False)
    html = report.html_path.read_text(encoding="utf-8")
    assert report.audit["necessity"] == document
    assert html.count('<section id="necessity">') == 1
    assert 'data-necessity="housing_repairs"' in html and 'data-necessity="age_and_family"' in html
    assert html.index('<section id="necessity">') < html.index('<section id="approval">')
    assert 'alt="Loss in precision at capacity and AUC without each source" src="data:image/png;base64,' in html


def _matrix_with_recording_lags():
    """A small matrix whose positives are recorded up to 200 days after their window ends and 3% of
    whose negatives left the area inside the window: labels as known on a test date differ from the final
    ones, as in a real borough."""
    from synthetic_matrix import make_matrix

    from earlysignal.features import FeatureMatrix
    from earlysignal.features.labels import label_at

    matrix = make_matrix(residents=1500, n_as_of=12, seed=5, unlabelled_tail=0)
    frame = matrix.frame.copy()
    rng = np.random.default_rng(11)
    frame["label_window_end"] = (frame["as_of"] + pd.DateOffset(months=6)).astype("datetime64[us]")
    lag = pd.to_timedelta(rng.integers(-150, 200, len(frame)), unit="D")
    positive = (frame["label"] == 1).to_numpy()
    frame["label_known_at"] = (frame["label_window_end"] + lag).where(positive).astype("datetime64[us]")
    frame["label_censored"] = ~positive & (rng.random(len(frame)) < 0.03)
    extract = pd.Timestamp(matrix.metadata["extract_date"]).date()
    frame["label"] = label_at(frame["label_window_end"], frame["label_known_at"], frame["label_censored"],
                              cut=None, extract_date=extract)
    return FeatureMatrix(frame, matrix.metadata)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_necessity_full_model_scores_each_test_date_exactly_as_train_does(n_jobs) -> None:
    from test_training import small_config

    from earlysignal.modeling.necessity import _test_predictions
    from earlysignal.modeling.train import _labelled_rows, train_model
    from earlysignal.timesplits import plan_from_config

    matrix = _matrix_with_recording_lags()
    config = small_config(training={"negative_sample_fraction": 0.5, "n_jobs": n_jobs})
    trained = train_model(config, matrix=matrix, log_to_mlflow=False)
    data = _labelled_rows(matrix)
    plan = plan_from_config(config, sorted({pd.Timestamp(d).date() for d in np.unique(data.day)}))
    first_test = min(plan.splits[0].test)
    # The recording lags matter: on the first test date fewer training positives were known than in the end.
    assert data.as_known_at(first_test).y[data.mask(plan.splits[0].fit)].sum() < data.y[data.mask(plan.splits[0].fit)].sum()
    full = _test_predictions(data, plan, config, list(matrix.feature_columns))
    assert [p["split"] for p in full] == ["split_1", "split_2", "split_3"]
    for p in full:
        expected = trained.test_predictions[trained.test_predictions["split"] == p["split"]]
        assert list(expected["resident_id"]) == list(data.frame.loc[p["test"], "resident_id"])
        np.testing.assert_array_equal(p["margin"], expected["margin"].to_numpy())
        np.testing.assert_array_equal(p["score"], expected["score"].to_numpy())


def test_pooling_worlds_averages_their_contributions_and_narrows_the_interval(two_dates) -> None:
    from earlysignal.modeling.necessity import pooled_contribution, split_pairs

    data, strong, weak = two_dates
    config = _config(bootstrap=200)
    # A second world: the same kind of rows, drawn afresh.
    rng = np.random.default_rng(1)
    y2 = (rng.random(len(data.y)) < 0.1).astype(np.int8)
    data2 = _Labelled(data.frame, data.X, y2, data.day)
    tests = [f["test"] for f in strong]
    strong2 = [{"test": t, **_predictions(rng, y2[t], 2.0)} for t in tests]
    weak2 = [{"test": t, **_predictions(rng, y2[t], 0.5)} for t in tests]
    one = paired_contribution(data, strong, weak, config, 200)
    two = paired_contribution(data2, strong2, weak2, config, 200)
    pooled = pooled_contribution(split_pairs(data, strong, weak) + split_pairs(data2, strong2, weak2), config, 200)
    assert pooled_contribution(split_pairs(data, strong, weak), config, 200) == one
    for metric in ("precision_at_capacity", "roc_auc"):
        assert pooled["contribution"][metric]["value"] == pytest.approx(
            (one["contribution"][metric]["value"] + two["contribution"][metric]["value"]) / 2)

    def width(result: dict) -> float:
        return result["contribution"]["roc_auc"]["ci_high"] - result["contribution"]["roc_auc"]["ci_low"]

    # Twice the escalations: the mean's interval is about 1/sqrt(2) as wide as either world's.
    assert width(pooled) < 0.85 * min(width(one), width(two))

"""Scoring: approved models only, the model's own spec, ranked list with reasons, nobody dropped silently, drift."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from earlysignal.cli import app
from earlysignal.config import config_from_dict
from earlysignal.errors import ContractError
from earlysignal.modeling.drift import (
    OffGridRows,
    build_reference,
    drift_report,
    off_grid_as_of_dates,
    psi,
    reference_bins,
)
from earlysignal.scoring import RANKED_COLUMNS, score_cohort

pytestmark = pytest.mark.slow
AS_OF = dt.date(2025, 10, 1)  # on the training grid, after the last labelled date


@pytest.fixture(scope="module")
def borough():
    from modeling_pipeline import trained_borough

    return trained_borough("standard")


@pytest.fixture(autouse=True)
def tracking(borough, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", borough.tracking_uri)


@pytest.fixture(scope="module")
def scored(borough, tmp_path_factory):
    out = tmp_path_factory.mktemp("scores")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", borough.tracking_uri)
        yield score_cohort(borough.config, AS_OF, model_uri=borough.result.model_uri, out=out, allow_unapproved=True)


def test_score_refuses_a_model_without_champion_approval(borough, tmp_path):
    result = CliRunner().invoke(
        app,
        ["score", "--as-of", AS_OF.isoformat(), "--model", borough.result.model_uri,
         "--config", str(borough.config_path), "--out", str(tmp_path / "out")],
    )
    assert result.exit_code == 2
    assert "has not been approved for scoring" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_ranked_list_has_the_agreed_columns_and_flags_exactly_capacity(borough, scored):
    ranked = pd.read_parquet(scored.ranked_parquet)
    assert list(ranked.columns) == RANKED_COLUMNS
    assert list(pd.read_csv(scored.ranked_csv).columns) == RANKED_COLUMNS
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["flagged"].sum() == borough.config.capacity.k
    assert ranked["score"].is_monotonic_decreasing
    assert ranked["percentile"].iloc[0] == 100.0
    assert (ranked["as_of"] == pd.Timestamp(AS_OF)).all()


def test_scores_equal_the_models_scores_on_the_training_matrix_rows_for_the_same_as_of(borough, scored):
    from earlysignal.features import read_feature_matrix

    matrix = read_feature_matrix(borough.data_dir / "features" / f"{borough.config.label.name}.parquet")
    rows = matrix.frame[matrix.frame["as_of"] == pd.Timestamp(AS_OF)]
    expected = pd.Series(borough.result.model.predict_proba(rows), index=rows["resident_id"].astype(str).to_numpy())
    ranked = pd.read_parquet(scored.ranked_parquet).set_index("resident_id")
    assert set(ranked.index) == set(expected.index)
    np.testing.assert_allclose(ranked["score"].to_numpy(), expected.loc[ranked.index].to_numpy())


def test_everyone_living_in_the_borough_is_either_scored_or_listed_with_a_reason(borough, scored):
    residency = pd.read_parquet(borough.data_dir / "residency.parquet")
    ts = pd.Timestamp(AS_OF)
    living = residency[(pd.to_datetime(residency["start_date"]) <= ts)
                       & (residency["end_date"].isna() | (pd.to_datetime(residency["end_date"]) > ts))]
    living_ids = set(living["resident_id"].astype(str))
    scored_ids = set(scored.ranked["resident_id"])
    unscored = pd.read_parquet(scored.unscored_parquet)
    assert scored_ids.isdisjoint(set(unscored["resident_id"]))
    assert scored_ids | set(unscored["resident_id"]) == living_ids
    assert unscored["reason"].str.len().gt(0).all()
    reasons = set(unscored["reason"])
    assert "older than the cohort's maximum age (17)" in reasons
    assert scored.summary["counts"]["unscored"] == len(unscored)


def test_flagged_residents_get_plain_english_reasons_from_the_models_feature_descriptions(borough, scored):
    flagged = scored.ranked[scored.ranked["flagged"]]
    assert (flagged["reason_1"].str.len() > 0).all()
    assert (flagged["contribution_1"] > 0).all()
    assert (flagged["contribution_1"] >= flagged["contribution_2"].fillna(0)).all()
    descriptions = [f["description"] for f in borough.result.model.feature_metadata["features"]]
    prefixes = {d.split("{value}")[-1].strip()[:25] for d in descriptions}
    assert all(any(p and p in reason for p in prefixes) for reason in flagged["reason_1"])
    assert not flagged["reason_1"].str.contains("9999").any()


def test_summary_records_model_counts_and_drift_and_the_mlflow_run_holds_no_resident_data(scored):
    summary = json.loads(scored.summary_json.read_text())
    assert summary["model_uri"] == scored.summary["model_uri"]
    assert summary["counts"]["scored"] == len(scored.ranked)
    assert set(summary["drift"]) >= {"score_psi", "feature_psi", "features_over_warn"}
    client = MlflowClient()
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`earlysignal.stage` = 'score'"
    )
    run = runs[0]
    logged = json.dumps({"params": run.data.params, "tags": run.data.tags})
    assert not any(rid in logged for rid in scored.ranked["resident_id"].head(200))
    assert [a.path for a in client.list_artifacts(run.info.run_id, "score")] == ["score/summary.json"]
    assert run.data.metrics["scored"] == len(scored.ranked)


def test_scoring_uses_the_models_feature_spec_when_the_config_has_changed(borough, scored, tmp_path):
    raw = borough.config.model_dump(mode="json")
    raw["features"]["families"] = [f for f in raw["features"]["families"] if f["name"] != "fire"]
    changed = config_from_dict(raw)
    result = score_cohort(changed, AS_OF, model_uri=borough.result.model_uri, out=tmp_path, allow_unapproved=True,
                          log_to_mlflow=False)
    assert result.summary["spec"].startswith("differs from the current config")
    pd.testing.assert_frame_equal(result.ranked, scored.ranked)


def test_data_lacking_a_source_the_models_spec_needs_is_an_error_naming_it(borough, tmp_path):
    data = tmp_path / "no-fire"
    shutil.copytree(borough.data_dir, data, ignore=shutil.ignore_patterns("features", "ground_truth"))
    events = pd.read_parquet(data / "events.parquet")
    events[events["source"] != "fire"].to_parquet(data / "events.parquet", index=False)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["sources"] = [s for s in manifest["sources"] if s != "fire"]
    manifest["row_counts"]["events"] = int((events["source"] != "fire").sum())
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ContractError, match=r"needs source\(s\) \['fire'\]"):
        score_cohort(borough.config, AS_OF, model_uri=borough.result.model_uri, data_dir=data,
                     out=tmp_path / "out", allow_unapproved=True, log_to_mlflow=False)


def test_registry_tags_and_alias_forged_through_mlflow_do_not_let_score_run(borough, tmp_path):
    name, version = borough.config.model.name, borough.result.model_version
    client = MlflowClient()
    for key, value in {"status": "approved", "approver": "Forger", "model_sha256": "x", "report_sha256": "y"}.items():
        client.set_model_version_tag(name, version, f"approval.{key}", value)
    client.set_registered_model_alias(name, "champion", version)
    result = CliRunner().invoke(
        app, ["score", "--as-of", AS_OF.isoformat(), "--config", str(borough.config_path), "--out", str(tmp_path / "out")]
    )
    said = " ".join(result.output.split())
    assert result.exit_code == 2
    assert f"model {name} version {version} has not been approved for scoring: the approval ledger" in said
    assert "(registry tags and aliases do not count)" in said
    assert not (tmp_path / "out").exists()


def test_unapproved_scores_are_marked_in_every_file_name_and_row(scored):
    assert {p.name for p in scored.out_dir.iterdir()} == {
        "ranked-UNAPPROVED.parquet", "ranked-UNAPPROVED.csv", "unscored-UNAPPROVED.parquet",
        "unscored-UNAPPROVED.csv", "summary-UNAPPROVED.json", "case_list-UNAPPROVED.html",
        "reasons-UNAPPROVED.parquet", "model_features-UNAPPROVED.json",
    }
    for path in (scored.ranked_parquet, scored.unscored_parquet):
        assert set(pd.read_parquet(path)["approval_status"]) == {"UNAPPROVED"}
    for path in (scored.ranked_csv, scored.unscored_csv):
        assert set(pd.read_csv(path)["approval_status"]) == {"UNAPPROVED"}
    summary = json.loads(scored.summary_json.read_text())
    assert (summary["approval_checked"], summary["approval_status"], summary["approval"]) == (False, "UNAPPROVED", None)


def test_as_of_outside_the_datas_range_and_non_iso_dates_are_refused(borough, tmp_path):
    manifest = json.loads((borough.data_dir / "manifest.json").read_text())
    extract = dt.date.fromisoformat(manifest["extract_date"])
    start = dt.date.fromisoformat(manifest["window_start"])
    runner = CliRunner()
    base = ["score", "--model", borough.result.model_uri, "--allow-unapproved", "--config", str(borough.config_path),
            "--out", str(tmp_path / "out")]
    cases = {
        (extract + dt.timedelta(days=1)).isoformat(): f"is after the extract date of {borough.data_dir} ({extract})",
        (start - dt.timedelta(days=1)).isoformat(): f"is before the records in {borough.data_dir} start ({start})",
        "2021/01/01": "--as-of must be a date written YYYY-MM-DD, e.g. 2021-01-01; got '2021/01/01'",
    }
    for as_of, message in cases.items():
        result = runner.invoke(app, [*base, "--as-of", as_of])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())
        assert "Downloading artifacts" not in result.output  # MLflow's own progress bars stay quiet
    assert not (tmp_path / "out").exists()


def test_after_approval_the_champion_is_scored_by_default(borough, tmp_path, monkeypatch):
    from earlysignal.approval import approve_model, record_audit_report
    from earlysignal.config import ApprovalSection, ApproverEntry
    from earlysignal.ledger import generate_key_pair

    monkeypatch.setenv("EARLYSIGNAL_APPROVAL_STORE", str(tmp_path / "approval"))  # this test's own ledger
    key, public = generate_key_pair("Test Approver", tmp_path / "keys")
    approvers = (ApproverEntry(name="Test Approver", role="Chair", public_key=str(public)),)
    config = borough.config.model_copy(update={"approval": ApprovalSection(approvers=approvers)})
    name, version = config.model.name, borough.result.model_version
    report, audit_json = tmp_path / "audit.html", tmp_path / "audit.json"
    report.write_text(f"<html><body>audit of {name} {version}</body></html>")
    audit_json.write_text("{}")
    record_audit_report(config, name, version, report, audit_json)
    approve_model(name, version, report_path=report, key_path=key, config=config)
    result = score_cohort(config, AS_OF, out=tmp_path / "out", log_to_mlflow=False)
    assert result.summary["approval_checked"] is True
    assert result.summary["approval_status"] == "approved"
    assert result.summary["approval"]["approver"] == "Test Approver"
    assert result.summary["model_uri"] == borough.result.model_uri
    assert result.ranked_csv.name == "ranked.csv" and set(result.ranked["approval_status"]) == {"approved"}


def test_population_stability_index_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    reference = reference_bins(rng.normal(size=20_000))
    assert psi(reference, rng.normal(size=20_000)) < 0.01
    assert psi(reference, rng.normal(loc=1.0, size=20_000)) > 0.25
    counts = reference_bins(np.r_[np.zeros(900), np.ones(100), np.full(10, np.nan)])
    assert psi(counts, np.r_[np.zeros(900), np.ones(100), np.full(10, np.nan)]) == pytest.approx(0.0)


def test_a_trend_missing_because_the_records_were_too_short_in_training_is_not_drift():
    rng = np.random.default_rng(2)
    # A 3-year trend needs 6 years of records: at the early training as_of dates it is null (history.py).
    complete = rng.poisson(3.0, 6000).astype(float)
    training = pd.DataFrame({"trend": np.r_[np.full(4000, np.nan), complete],
                             "count": rng.poisson(3.0, 10_000).astype(float)})
    reference = build_reference(training, ["trend", "count"], rng.random(10_000), short_history=["trend"])
    now = pd.DataFrame({"trend": rng.poisson(3.0, 3000).astype(float), "count": rng.poisson(3.0, 3000).astype(float)})
    report = drift_report(reference, now, rng.random(3000), warn_psi=0.25)
    assert report["feature_psi"]["trend"] < 0.05
    assert report["features_over_warn"] == []
    # The same reference without the history flag reads the nulls as a shift (the PSI was ~4.6 on a borough).
    naive = drift_report(build_reference(training, ["trend", "count"], rng.random(10_000)), now, rng.random(3000), 0.25)
    assert naive["feature_psi"]["trend"] > 0.25
    # A real shift in the complete windows still shows; a window too short now too is left out, not scored 0.
    shifted = now.assign(trend=rng.poisson(6.0, 3000).astype(float))
    assert drift_report(reference, shifted, rng.random(3000), 0.25)["feature_psi"]["trend"] > 0.25
    too_short = now.assign(trend=np.nan)
    assert "trend" not in drift_report(reference, too_short, rng.random(3000), 0.25)["feature_psi"]


def test_drift_compares_with_training_rows_from_the_same_month_of_the_year():
    rng = np.random.default_rng(1)
    months = np.repeat([1, 4, 7, 10], 5000)
    # A seasonal feature: October values run higher every year.
    values = rng.poisson(np.where(months == 10, 7.0, 5.0)).astype(float)
    frame = pd.DataFrame({"absence": values})
    reference = build_reference(frame, ["absence"], rng.random(len(values)), months=months)
    october = pd.DataFrame({"absence": rng.poisson(7.0, 5000).astype(float)})
    seasonal = drift_report(reference, october, rng.random(5000), warn_psi=0.25, month=10)
    assert seasonal["reference"] == "training as_of dates in month 10"
    assert seasonal["feature_psi"]["absence"] < 0.05
    pooled = drift_report(reference, october, rng.random(5000), warn_psi=0.25, month=None)
    assert pooled["feature_psi"]["absence"] > seasonal["feature_psi"]["absence"]


def test_case_list_journey_commands_name_the_config_and_score_folder_the_list_was_made_with(borough, tmp_path):
    """A caseworker copying the command from a list written to a non-default folder with a non-default config
    must open that list, not the default one."""
    import html
    import shlex

    out = tmp_path / "my lists" / "march"
    result = CliRunner().invoke(
        app,
        ["score", "--as-of", AS_OF.isoformat(), "--model", borough.result.model_uri, "--allow-unapproved",
         "--config", str(borough.config_path), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    top = pd.read_csv(out / "ranked-UNAPPROVED.csv")["resident_id"].iloc[0]
    expected = (f"earlysignal journey --config {shlex.quote(str(borough.config_path))} --scores {shlex.quote(str(out))} "
                f"--resident {top} --as-of {AS_OF.isoformat()}")
    page = html.unescape((out / "case_list-UNAPPROVED.html").read_text(encoding="utf-8"))
    assert expected in page
    assert json.loads((out / "summary-UNAPPROVED.json").read_text(encoding="utf-8"))["config_path"] == str(borough.config_path)


def _seasonal_training(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, OffGridRows]:
    """Training rows on a quarterly grid (months 1, 4, 7, 10) and rows rebuilt at the other months: a school
    absence count runs high in February (the three months before hold the winter term) and ordinary otherwise."""
    grid = np.repeat([1, 4, 7, 10], 4000)
    frame = pd.DataFrame({"absence": rng.poisson(4.0, grid.size).astype(float)})
    other = np.repeat([2, 3, 5, 6, 8, 9, 11, 12], 4000)
    rebuilt = pd.DataFrame({"absence": rng.poisson(np.where(other == 2, 9.0, 4.0)).astype(float)})
    return frame, grid, OffGridRows(rebuilt, rng.random(other.size), other)


def test_a_monthly_list_off_the_training_grid_is_compared_with_the_same_month_rebuilt_over_the_training_span():
    rng = np.random.default_rng(3)
    frame, grid, rebuilt = _seasonal_training(rng)
    february = pd.DataFrame({"absence": rng.poisson(9.0, 4000).astype(float)})
    reference = build_reference(frame, ["absence"], rng.random(len(frame)), months=grid, off_grid=rebuilt)
    report = drift_report(reference, february, rng.random(4000), warn_psi=0.25, month=2)
    assert report["reference"] == "as_of dates in month 2 over the training span (rebuilt for drift, not trained on)"
    assert report["features_over_warn"] == []
    # A month the grid has keeps the training rows' bins; the overall reference stays the training rows'.
    assert "rows" not in reference["by_month"]["4"] and reference["by_month"]["2"]["rows"] == "off_grid"
    assert reference["features"] == build_reference(frame, ["absence"], rng.random(len(frame)))["features"]
    # Without the rebuilt months, February is compared with every training as_of pooled, warns, and says why.
    pooled = drift_report(build_reference(frame, ["absence"], rng.random(len(frame)), months=grid),
                          february, rng.random(4000), warn_psi=0.25, month=2)
    assert pooled["features_over_warn"] == ["absence"]
    assert pooled["reference"] == "all training as_of dates (none in month 2: seasonal features may warn for that alone)"


def test_a_shifted_source_still_warns_against_the_same_month_rebuilt():
    rng = np.random.default_rng(4)
    frame, grid, rebuilt = _seasonal_training(rng)
    reference = build_reference(frame, ["absence"], rng.random(len(frame)), months=grid, off_grid=rebuilt)
    # The school now records twice the absence of a usual February: drift, whatever the season.
    shifted = pd.DataFrame({"absence": rng.poisson(18.0, 4000).astype(float)})
    assert drift_report(reference, shifted, rng.random(4000), warn_psi=0.25, month=2)["features_over_warn"] == ["absence"]
    # And an ordinary month's values in February are a shift too (the rebuilt month is not a wider reference).
    ordinary = pd.DataFrame({"absence": rng.poisson(4.0, 4000).astype(float)})
    assert drift_report(reference, ordinary, rng.random(4000), warn_psi=0.25, month=2)["features_over_warn"] == ["absence"]


def test_off_grid_as_of_dates_are_the_firsts_of_the_months_the_training_grid_never_lands_on():
    grid = [dt.date(2023, 7, 1)] + [dt.date(2024, m, 1) for m in (1, 4, 7, 10)] + [dt.date(2025, 1, 1)]
    assert off_grid_as_of_dates(grid) == [
        dt.date(2023, 8, 1), dt.date(2023, 9, 1), dt.date(2023, 11, 1), dt.date(2023, 12, 1),
        dt.date(2024, 2, 1), dt.date(2024, 3, 1), dt.date(2024, 5, 1), dt.date(2024, 6, 1),
        dt.date(2024, 8, 1), dt.date(2024, 9, 1), dt.date(2024, 11, 1), dt.date(2024, 12, 1),
    ]
    # The span's last year: one as_of for each calendar month the grid lacks.
    assert off_grid_as_of_dates(grid, last_years=1) == [
        dt.date(2024, 2, 1), dt.date(2024, 3, 1), dt.date(2024, 5, 1), dt.date(2024, 6, 1),
        dt.date(2024, 8, 1), dt.date(2024, 9, 1), dt.date(2024, 11, 1), dt.date(2024, 12, 1),
    ]
    assert off_grid_as_of_dates([dt.date(2024, m, 1) for m in range(1, 13)]) == []

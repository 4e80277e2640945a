"""Scoring per partition (build.partitions / build.memory_budget_gb): the same lists, counts and drift as
scoring the borough whole, without loading the borough whole (real pipeline, issue 11)."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd
import pytest

from earlysignal.config import config_from_dict
from earlysignal.scoring import QUARANTINED_PREFIX, score_cohort

pytestmark = pytest.mark.slow
AS_OF = dt.date(2025, 10, 1)
N_QUARANTINED = 4


@pytest.fixture(scope="module")
def borough():
    from modeling_pipeline import trained_borough

    return trained_borough("standard")


@pytest.fixture(autouse=True)
def tracking(borough, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", borough.tracking_uri)


@pytest.fixture(scope="module")
def data_dir(borough, tmp_path_factory):
    """The borough with a few residents living there at AS_OF quarantined (an invalid sex code), so the
    unscored list has quarantined residents as well as the cohort's reasons."""
    data = tmp_path_factory.mktemp("partitioned") / "borough"
    shutil.copytree(borough.data_dir, data, ignore=shutil.ignore_patterns("features", "ground_truth", "quarantine"))
    residency = pd.read_parquet(data / "residency.parquet")
    ts = pd.Timestamp(AS_OF)
    living = residency[(pd.to_datetime(residency["start_date"]) <= ts)
                       & (residency["end_date"].isna() | (pd.to_datetime(residency["end_date"]) > ts))]
    residents = pd.read_parquet(data / "residents.parquet")
    chosen = sorted(set(living["resident_id"].astype(str)))[:: max(1, living["resident_id"].nunique() // N_QUARANTINED)]
    chosen = chosen[:N_QUARANTINED]
    residents["sex"] = residents["sex"].astype(object)
    residents.loc[residents["resident_id"].astype(str).isin(chosen), "sex"] = "not a code"
    residents.to_parquet(data / "residents.parquet", index=False)
    return data


def _score(borough, data_dir, out, build=None):
    raw = borough.config.model_dump(mode="json")
    raw["build"].update(build or {})
    return score_cohort(config_from_dict(raw), AS_OF, model_uri=borough.result.model_uri, data_dir=data_dir,
                        out=out, allow_unapproved=True, log_to_mlflow=False)


@pytest.fixture(scope="module")
def whole(borough, data_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", borough.tracking_uri)
        return _score(borough, data_dir, tmp_path_factory.mktemp("whole") / "scores")


def _assert_same_outputs(result, whole):
    pd.testing.assert_frame_equal(result.ranked, whole.ranked, check_exact=True)
    pd.testing.assert_frame_equal(result.unscored, whole.unscored, check_exact=True)
    for key in ("ranked_parquet", "unscored_parquet", "reasons_parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(result.summary["outputs"][key]),
                                      pd.read_parquet(whole.summary["outputs"][key]), check_exact=True)
    for key in ("capacity_k", "counts", "score", "drift"):
        assert result.summary[key] == whole.summary[key], key
    written = json.loads(result.summary_json.read_text())
    assert written["drift"] == json.loads(whole.summary_json.read_text())["drift"]


def test_the_whole_borough_scored_has_quarantined_residents_and_more_than_capacity(whole, borough):
    # What the comparisons below rest on: the unscored list has quarantined residents and reasons of the
    # cohort, and the cohort is larger than capacity in every partition of the larger counts.
    reasons = whole.unscored["reason"]
    assert reasons.str.startswith(QUARANTINED_PREFIX).sum() == N_QUARANTINED
    assert reasons.str.startswith("older than the cohort's maximum age").any()
    k = whole.summary["capacity_k"]
    assert k == borough.config.capacity.k and len(whole.ranked) > 7 * k
    assert "partitions" not in whole.summary


@pytest.mark.parametrize("partitions", [2, 3, 7])
def test_scoring_per_partition_writes_what_scoring_the_borough_whole_writes(
    borough, data_dir, whole, tmp_path, partitions, monkeypatch
):
    from earlysignal import contract

    def whole_load(*args, **kwargs):
        raise AssertionError("scoring with build.partitions loaded the borough whole")

    monkeypatch.setattr(contract, "load_linked_data", whole_load)
    steps = []
    raw = borough.config.model_dump(mode="json")
    raw["build"].update(partitions=partitions)
    result = score_cohort(config_from_dict(raw), AS_OF, model_uri=borough.result.model_uri, data_dir=data_dir,
                          out=tmp_path / "scores", allow_unapproved=True, log_to_mlflow=False,
                          on_partition=lambda done, total: steps.append((done, total)))
    assert result.summary["partitions"] == partitions
    assert steps == [(i, partitions) for i in range(1, partitions + 1)]
    _assert_same_outputs(result, whole)
    # The rows were scored per partition but ranked over the whole cohort: exactly k flagged.
    assert int(result.ranked["flagged"].sum()) == whole.summary["capacity_k"]
    assert not (tmp_path / "scores.events.tmp").exists()  # the per-partition rows are removed


def test_a_memory_budget_scores_in_the_partitions_it_needs(borough, data_dir, whole, tmp_path):
    from earlysignal.scoring import scoring_partition_count

    result = _score(borough, data_dir, tmp_path / "scores", build={"memory_budget_gb": 0.25})
    raw = borough.config.model_dump(mode="json")
    raw["build"].update(memory_budget_gb=0.25)
    residents = pd.read_parquet(data_dir / "residents.parquet")
    events = pd.read_parquet(data_dir / "events.parquet", columns=["event_id"])
    accepted = len(residents) - N_QUARANTINED
    # The count leaves room for what the process held when it chose (recorded in the summary).
    held = int(result.summary["held_gb_when_partitioned"] * 1024**3)
    expected = scoring_partition_count(config_from_dict(raw), accepted, len(events), held)
    assert result.summary["partitions"] == expected > 1
    _assert_same_outputs(result, whole)


def test_without_sources_and_start_in_the_manifest_the_checks_read_the_partitions_events(borough, data_dir, tmp_path):
    from earlysignal.errors import ContractError, EarlySignalError

    bare = tmp_path / "bare"
    shutil.copytree(data_dir, bare)
    manifest = json.loads((bare / "manifest.json").read_text())
    manifest.pop("window_start")
    manifest.pop("sources")
    (bare / "manifest.json").write_text(json.dumps(manifest))
    events = pd.read_parquet(bare / "events.parquet", columns=["event_time"])
    first = pd.to_datetime(events["event_time"]).min().date()
    before = first - dt.timedelta(days=1)
    raw = borough.config.model_dump(mode="json")
    raw["build"].update(partitions=3)
    for build in ({}, {"partitions": 3}):
        config = borough.config if not build else config_from_dict(raw)
        with pytest.raises(EarlySignalError, match=rf"is before the records in .* start \({first}\)"):
            score_cohort(config, before, model_uri=borough.result.model_uri, data_dir=bare, out=tmp_path / "out",
                         allow_unapproved=True, log_to_mlflow=False)
    events = pd.read_parquet(bare / "events.parquet")
    events[events["source"] != "fire"].to_parquet(bare / "events.parquet", index=False)
    manifest["row_counts"]["events"] = int((events["source"] != "fire").sum())
    (bare / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ContractError, match=r"needs source\(s\) \['fire'\]"):
        score_cohort(config_from_dict(raw), AS_OF, model_uri=borough.result.model_uri, data_dir=bare,
                     out=tmp_path / "out", allow_unapproved=True, log_to_mlflow=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.events.tmp").exists()


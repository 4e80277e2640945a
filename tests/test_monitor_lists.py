"""Monitoring real past lists: a tiny audited borough, lists scored at three dates (two horizons closed,
one open), the audit's promise, and the page in headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_world import AuditWorld, audit_world, tracking_at

from earlysignal.audit.disclosure import published_rate
from earlysignal.audit.suppression import round_count
from earlysignal.monitor import run_monitor
from earlysignal.scoring import score_cohort

pytestmark = pytest.mark.slow
# Referral within 12 months, extract 2026-01-01: the 2024 lists' horizons have closed, 2025-04-01's has not.
CLOSED = (dt.date(2024, 4, 1), dt.date(2024, 10, 1))
OPEN = dt.date(2025, 4, 1)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory):
    world: AuditWorld = audit_world(tmp_path_factory.getbasetemp(), biased=False)
    scores = tmp_path_factory.mktemp("scores")
    with tracking_at(world.tracking_uri):
        for as_of in (*CLOSED, OPEN):
            score_cohort(world.config, as_of, model_uri=world.model_uri, out=scores / f"list-{as_of}",
                         allow_unapproved=True, log_to_mlflow=False)
        result = run_monitor(world.config, scores_dir=scores, audit_path=world.audit_json,
                             out=tmp_path_factory.mktemp("monitor"), log_to_mlflow=False)
    return world, scores, result


def _matrix_labels(world: AuditWorld, as_of: dt.date, resident_ids: pd.Series) -> pd.Series:
    from earlysignal.features import read_feature_matrix

    matrix = read_feature_matrix(world.data_dir / "features" / f"{world.config.label.name}.parquet").frame
    rows = matrix[matrix["as_of"] == pd.Timestamp(as_of)]
    rows.index = rows["resident_id"].astype(str)
    return rows.loc[resident_ids, "label"]


def test_realised_labels_equal_the_feature_matrix_labels_censoring_included(monitored) -> None:
    from earlysignal import contract
    from earlysignal.monitor.realised import realised_labels

    world, scores, result = monitored
    data = contract.load_linked_data(world.data_dir, world.config, write_quarantine=False)
    for entry, as_of in zip(result.document["lists"], CLOSED, strict=False):
        ranked = pd.read_parquet(scores / f"list-{as_of}" / "ranked-UNAPPROVED.parquet")
        expected = _matrix_labels(world, as_of, ranked["resident_id"].astype(str))
        got = realised_labels(world.config, data, ranked["resident_id"].tolist(), as_of, data.extract_date)
        # Same nulls (censored: moved away or died inside the window) and same 0/1 elsewhere.
        assert got.isna().tolist() == expected.isna().tolist()
        assert expected.isna().sum() > 0 and expected.fillna(0).sum() > 0
        assert got.fillna(-1).tolist() == expected.astype("Int8").fillna(-1).tolist()
        censored = int(expected.isna().sum())
        assert entry["censored"] == (None if censored < world.config.audit.min_cell
                                     else round_count(censored, world.config.audit.round_to))


def test_closed_lists_get_realised_precision_with_intervals_and_the_open_one_waits(monitored) -> None:
    world, scores, result = monitored
    lists = result.document["lists"]
    assert [e["as_of"] for e in lists] == [d.isoformat() for d in (*CLOSED, OPEN)]
    assert [e["labels_known"] for e in lists] == [True, True, False]
    for entry in lists[:2]:
        ranked = pd.read_parquet(scores / f"list-{entry['as_of']}" / "ranked-UNAPPROVED.parquet")
        outcomes = pd.read_parquet(world.data_dir / "outcomes.parquet")
        start = pd.Timestamp(entry["as_of"])
        end = pd.Timestamp(entry["horizon_end"])
        hit = outcomes[outcomes["outcome_type"].isin(world.config.label.outcome_types)
                       & (outcomes["outcome_time"] >= start) & (outcomes["outcome_time"] < end)]
        flagged = ranked.loc[ranked["flagged"], "resident_id"].astype(str)
        # Flagged residents censored in the matrix (moved away, died, no outcome) are not counted either way.
        followed = flagged[_matrix_labels(world, dt.date.fromisoformat(entry["as_of"]), flagged).notna().to_numpy()]
        assert len(followed) < len(flagged) or entry["flagged_censored"] == 0
        # Published from rounded counts, withheld when either count is small (docs/monitoring.md).
        expected = published_rate(int(followed.isin(hit["resident_id"]).sum()), len(followed),
                                  world.config.audit.min_cell, world.config.audit.round_to)
        p = entry["precision_at_capacity"]
        assert p["value"] == (pytest.approx(expected) if expected is not None else None)
        if p["ci_low"] is not None:
            assert p["ci_low"] <= followed.isin(hit["resident_id"]).mean() <= p["ci_high"]
    assert lists[2]["precision_at_capacity"]["value"] is None
    promise = result.document["promise"]
    assert promise["precision_at_capacity"] == world.audit["summary"]["headline"]["precision_at_capacity"]
    [criterion] = [c for c in result.document["criteria"] if c["kind"] == "precision_below_promise"]
    assert criterion["evaluated_lists"] == 2
    assert criterion["status"] in ("green", "amber", "red")
    final = next(r for r in world.audit["performance"]["temporal_plan"] if r["split"] == "final model")
    periods = result.document["sources"]["periods"]
    assert (periods["reference_start"], periods["reference_end"]) == (final["trained_from"], final["trained_to"])
    assert result.document["calibration"], "pooled calibration of the closed lists"
    assert all(c["n"] % world.config.audit.round_to == 0 for c in result.document["calibration"])


def test_monitoring_page_renders_in_headless_chromium_without_console_errors(monitored, tmp_path: Path) -> None:
    from test_report_browser import _chromium, _console_messages, _run

    _chromium()
    _, _, result = monitored
    run = _run(result.html_path, tmp_path, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console_messages(run.stderr) == []
    headings = re.findall(r"<h2>(.*?)</h2>", run.stdout)
    assert headings == ["Switch-off criteria", "How past lists turned out", "Calibration of past scores",
                        "Data drift per source"]
    assert len(re.findall(r'<img alt="Monthly records: ', run.stdout)) == len(result.document["sources"]["per_source"])
    assert re.search(r'<img alt="Realised precision at capacity[^"]*" src="data:image/png;base64,', run.stdout)
    closed = [e for e in result.document["lists"] if e["labels_known"]]
    assert "<th>censored (of them flagged)</th>" in run.stdout
    assert len(re.findall(r'<td class="n" data-censored="', run.stdout)) == len(closed)


def test_demo_after_the_list_writes_a_journey_an_explanation_and_the_monitor_report(
    monitored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earlysignal.access_log import verify_access_log
    from earlysignal.demo import DEMO_VIEWER, demo_after_list

    world, scores, _ = monitored
    monkeypatch.chdir(tmp_path)  # the access log and the monitor report go to the config's relative paths
    folder = scores / f"list-{CLOSED[1]}"
    with tracking_at(world.tracking_uri):
        after = demo_after_list(world.config, folder, world.data_dir)
    ranked = pd.read_parquet(folder / "ranked-UNAPPROVED.parquet")
    top = ranked.loc[ranked["flagged"]].sort_values("rank")["resident_id"].iloc[0]
    assert after.resident_id == str(top)
    assert after.case_list == folder / "case_list-UNAPPROVED.html" and after.case_list.exists()
    assert after.journey.exists() and after.explanation.exists()
    assert str(top) in after.journey.read_text(encoding="utf-8")
    assert after.monitor_html.exists() and after.monitor_overall in ("green", "amber", "red")
    log = Path(world.config.caseworker.access_log)
    check = verify_access_log(log)
    assert check.intact and check.entries == 2
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [(e["viewer"], e["action"], e["resident_id"]) for e in entries] == [
        (DEMO_VIEWER, "journey", str(top)), (DEMO_VIEWER, "explanation", str(top))]


def test_a_list_scored_on_the_extract_date_is_monitored_with_its_outcome_not_yet_known(monitored, tmp_path) -> None:
    # The README's steps: score --as-of <extract date>, then monitor (which defaults to the extract date).
    world, _, _ = monitored
    from earlysignal import contract

    extract = contract.load_linked_data(world.data_dir, world.config, write_quarantine=False).extract_date
    scores = tmp_path / "scores"
    with tracking_at(world.tracking_uri):
        score_cohort(world.config, extract, model_uri=world.model_uri, out=scores / f"list-{extract}",
                     allow_unapproved=True, log_to_mlflow=False)
        result = run_monitor(world.config, scores_dir=scores, audit_path=world.audit_json, out=tmp_path / "monitor",
                             log_to_mlflow=False)
    assert [(e["as_of"], e["labels_known"]) for e in result.document["lists"]] == [(extract.isoformat(), False)]

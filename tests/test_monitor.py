"""Monitoring for the board: realised performance of past lists with point-in-time labels, source
drift, switch-off criteria, the planted recording change, the report and MLflow aggregates."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from earlysignal import contract
from earlysignal.cli import app
from earlysignal.config import RecordingChange, SwitchOffCriterion, SynthSection, config_from_dict
from earlysignal.errors import ConfigError
from earlysignal.monitor import build_monitor
from earlysignal.monitor.criteria import evaluate_criteria
from earlysignal.monitor.realised import list_performance, realised_labels
from earlysignal.synth import generate_borough, parse_recording_change

REPO = Path(__file__).resolve().parents[1]
CHANGE = RecordingChange(source="police", factor=0.2, start=dt.date(2025, 6, 1))


def _outcomes(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["resident_id", "outcome_type", "outcome_time", "known_at"])
    frame["outcome_time"] = pd.to_datetime(frame["outcome_time"])
    frame["known_at"] = pd.to_datetime(frame["known_at"])
    return frame


def _people(ids: list[str], outcomes: pd.DataFrame, spells: dict[str, list[tuple[str, str | None]]] | None = None,
            deaths: dict[str, str] | None = None) -> SimpleNamespace:
    """Residents living in the area from 2020 with no end unless `spells` says otherwise."""
    spells = spells or {}
    rows = [(rid, f"H{rid}", f"A{rid}{n}", start, end)
            for rid in ids for n, (start, end) in enumerate(spells.get(rid, [("2020-01-01", None)]))]
    residency = pd.DataFrame(rows, columns=["resident_id", "household_id", "address_id", "start_date", "end_date"])
    for column in ("start_date", "end_date"):
        residency[column] = pd.to_datetime(residency[column])
    residents = pd.DataFrame({"resident_id": ids, "birth_date": pd.Timestamp("2015-01-01"),
                              "death_date": pd.to_datetime([(deaths or {}).get(rid) for rid in ids])})
    return SimpleNamespace(residents=residents, residency=residency, outcomes=outcomes, extract_date=dt.date(2026, 1, 1))


def _config() -> object:
    return config_from_dict(yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8")))


# --- labels: only what was known by the monitoring date ------------------------------------------


def test_label_ignores_outcome_recorded_after_the_monitoring_date() -> None:
    outcomes = _outcomes([
        ("R1", "child_protection_plan", "2024-03-01", "2024-03-05"),
        ("R2", "child_protection_plan", "2024-05-01", "2025-02-01"),  # known only after monitoring
        ("R3", "child_protection_plan", "2024-08-01", "2024-08-02"),  # after the horizon
        ("R4", "s47_enquiry", "2024-03-01", "2024-03-02"),  # not the labelled outcome
        ("R5", "child_protection_plan", "2023-12-31", "2024-01-01"),  # before as_of
    ])
    ids = ["R1", "R2", "R3", "R4", "R5", "R6"]
    data = _people(ids, outcomes)
    labels = realised_labels(_config(), data, ids, dt.date(2024, 1, 1), known_by=dt.date(2025, 1, 1))
    assert labels.tolist() == [1, 0, 0, 0, 0, 0]
    later = realised_labels(_config(), data, ["R2"], dt.date(2024, 1, 1), dt.date(2025, 3, 1))
    assert later.tolist() == [1]


def test_label_is_unknown_while_the_horizon_is_open() -> None:
    outcomes = _outcomes([("R1", "child_protection_plan", "2024-03-01", "2024-03-05")])
    data = _people(["R1"], outcomes)
    assert realised_labels(_config(), data, ["R1"], dt.date(2024, 1, 1), dt.date(2024, 6, 30)) is None
    assert realised_labels(_config(), data, ["R1"], dt.date(2024, 1, 1), dt.date(2024, 7, 1)).tolist() == [1]


def test_a_resident_who_left_inside_the_window_without_the_outcome_is_not_a_realised_negative() -> None:
    outcomes = _outcomes([("R3", "child_protection_plan", "2024-02-01", "2024-02-02")])
    ids = ["R1", "R2", "R3", "R4", "R5"]
    spells = {
        "R1": [("2020-01-01", "2024-03-01")],  # left the area inside [2024-01-01, 2024-07-01)
        "R3": [("2020-01-01", "2024-03-01")],  # had the outcome, then left: a realised positive
        "R4": [("2020-01-01", "2024-03-01"), ("2024-03-01", None)],  # moved within the area: followed up
        "R5": [("2020-01-01", "2024-09-01")],  # left after the window closed
    }
    data = _people(ids, outcomes, spells, deaths={"R2": "2024-05-01"})
    as_of, known_by = dt.date(2024, 1, 1), dt.date(2025, 1, 1)
    labels = realised_labels(_config(), data, ids, as_of, known_by)
    assert labels.isna().tolist() == [True, True, False, False, False]
    assert labels.fillna(-1).tolist() == [-1, -1, 1, 0, 0]
    # Perturbation: the same people followed up to the window's end are realised negatives.
    stayed = _people(ids, outcomes, {**spells, "R1": [("2020-01-01", None)]})
    assert realised_labels(_config(), stayed, ids, as_of, known_by).fillna(-1).tolist() == [0, 0, 1, 0, 0]
    # Censoring switched off in the config: the leaver reads as a negative again (the check can fail).
    config = _config()
    off = config.model_copy(update={"label": config.label.model_copy(update={
        "censoring": config.label.censoring.model_copy(update={"residency": False, "death": False})})})
    assert realised_labels(off, data, ids, as_of, known_by).tolist() == [0, 0, 1, 0, 0]


def test_censored_residents_are_left_out_of_realised_precision_and_recall() -> None:
    ranked = pd.DataFrame({"resident_id": [f"R{i}" for i in range(8)], "score": np.linspace(0.9, 0.2, 8),
                           "rank": np.arange(1, 9)})
    # Ranks 1-4 flagged; rank 2 moved away (unknown), rank 6 died (unknown).
    labels = pd.array([1, None, 0, 1, 0, None, 1, 0], dtype="Int8")
    result = list_performance(ranked, labels, k=4, bootstrap=0, seed=0)
    assert result["precision_at_capacity"]["value"] == pytest.approx(2 / 3)  # 2 of the 3 known flagged
    assert result["recall_at_capacity"]["value"] == pytest.approx(2 / 3)  # 2 of the 3 known positives
    assert result["base_rate"] == pytest.approx(3 / 6)
    # Read as negatives instead, the flagged leaver would lower precision to 2 of 4.
    as_negative = list_performance(ranked, labels.fillna(0), k=4, bootstrap=0, seed=0)
    assert as_negative["precision_at_capacity"]["value"] == pytest.approx(2 / 4)


def test_realised_precision_and_recall_at_capacity_follow_the_list_order() -> None:
    ranked = pd.DataFrame({
        "resident_id": [f"R{i}" for i in range(10)],
        "score": np.linspace(0.9, 0.1, 10),
        "rank": np.arange(1, 11),
    })
    labels = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 1], dtype=np.int8)
    result = list_performance(ranked, labels, k=3, bootstrap=50, seed=3)
    assert result["precision_at_capacity"]["value"] == pytest.approx(2 / 3)
    assert result["recall_at_capacity"]["value"] == pytest.approx(2 / 4)
    assert result["base_rate"] == pytest.approx(0.4)
    low, high = result["precision_at_capacity"]["ci_low"], result["precision_at_capacity"]["ci_high"]
    assert 0 <= low <= 2 / 3 <= high <= 1
    assert list_performance(ranked, labels, k=3, bootstrap=50, seed=3) == result  # seeded


# --- switch-off criteria ----------------------------------------------------------------------------


def _entry(as_of: str, precision: float | None) -> dict:
    return {"as_of": as_of, "labels_known": precision is not None,
            "precision_at_capacity": {"value": precision}, "recall_at_capacity": {"value": None}}


@pytest.mark.parametrize(
    ("precisions", "status"),
    [
        ([0.5, 0.3, 0.3], "red"),  # two latest lists in a row below the bound
        ([0.3, 0.5, 0.3], "amber"),  # only the latest
        ([0.3, 0.3, 0.5], "green"),  # the latest list recovered
        ([0.3, 0.3, None], "red"),  # an open horizon does not break the streak
        ([None], "not evaluable"),
    ],
)
def test_precision_criterion_turns_red_after_consecutive_lists_below_the_audits_lower_bound(precisions, status) -> None:
    criterion = SwitchOffCriterion(name="precision", kind="precision_below_promise", consecutive=2)
    lists = [_entry(f"2024-0{i + 1}-01", p) for i, p in enumerate(precisions)]
    promise = {"precision_at_capacity": {"value": 0.45, "ci_low": 0.4, "ci_high": 0.5}}
    [result] = evaluate_criteria([criterion], lists, promise, [], None)
    assert result["status"] == status
    assert result["bound"] == 0.4


def test_lists_of_another_model_version_are_not_held_to_this_audits_promise() -> None:
    criterion = SwitchOffCriterion(name="precision", kind="precision_below_promise", consecutive=2)
    lists = [{**_entry("2024-01-01", 0.3), "model_version": "1"}, {**_entry("2024-04-01", 0.3), "model_version": "2"}]
    promise = {"precision_at_capacity": {"value": 0.45, "ci_low": 0.4, "ci_high": 0.5}, "model_version": "2"}
    [result] = evaluate_criteria([criterion], lists, promise, [], None)
    assert (result["status"], result["evaluated_lists"]) == ("amber", 1)


def test_source_criteria_band_by_thresholds_and_ignore_drops_chance_explains() -> None:
    volume = SwitchOffCriterion(name="volume", kind="source_volume_drop", amber=0.25, red=0.5)
    psi = SwitchOffCriterion(name="psi", kind="source_psi", amber=0.1, red=0.25)
    sources = [
        {"source": "a", "drop": 0.8, "significant": True, "silent_months": []},
        {"source": "b", "drop": 0.3, "significant": True, "silent_months": []},
        {"source": "c", "drop": 0.9, "significant": False, "silent_months": []},
        {"source": "d", "drop": 0.0, "significant": False, "silent_months": ["2025-12-01"]},
    ]
    latest_psi = {"a": 0.3, "b": 0.15, "c": 0.01}
    by_volume, by_psi = evaluate_criteria([volume, psi], [], None, sources, latest_psi)
    assert by_volume["per_source"] == {"a": "red", "b": "amber", "c": "green", "d": "red"}
    assert by_volume["status"] == "red"
    assert by_psi["per_source"] == {"a": "red", "b": "amber", "c": "green"}


def test_config_refuses_a_source_criterion_without_a_red_threshold() -> None:
    raw = yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8"))
    raw["monitoring"] = {"switch_off": [{"name": "volume", "kind": "source_volume_drop", "amber": 0.2}]}
    with pytest.raises(ConfigError, match=r"monitoring\.switch_off\.0.*needs a 'red' threshold"):
        config_from_dict(raw)


# --- the planted recording change ------------------------------------------------------------------


@pytest.fixture(scope="module")
def boroughs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("monitor-boroughs")
    settings = SynthSection(residents=4000, years=3, seed=5)
    generate_borough(root / "steady", settings)
    generate_borough(root / "changed", settings.model_copy(update={"recording_change": (CHANGE,)}))
    return {"steady": root / "steady", "changed": root / "changed"}


def _tiny_config(data_dir: Path) -> dict:
    raw = yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8"))
    raw["data"]["dir"] = str(data_dir)
    raw["temporal"].update(first_as_of="2023-07-01", last_as_of="2025-10-01")
    return raw


def _monitor(data_dir: Path) -> dict:
    config = config_from_dict(_tiny_config(data_dir))
    data = contract.load_linked_data(data_dir, config, write_quarantine=False)
    return build_monitor(config, data, [], None, data.extract_date)


def test_recording_change_thins_only_that_source_from_its_date(boroughs: dict[str, Path]) -> None:
    for name in ("residents.parquet", "residency.parquet", "outcomes.parquet"):
        assert (boroughs["steady"] / name).read_bytes() == (boroughs["changed"] / name).read_bytes(), name
    columns = ["resident_id", "address_id", "source", "event_type", "event_time", "known_at", "value"]
    steady = pd.read_parquet(boroughs["steady"] / "events.parquet", columns=columns)
    changed = pd.read_parquet(boroughs["changed"] / "events.parquet", columns=columns)
    touched = (steady["source"] == "police") & (steady["event_time"] >= pd.Timestamp(CHANGE.start))
    untouched = steady.loc[~touched].reset_index(drop=True)
    touched_after = (changed["source"] == "police") & (changed["event_time"] >= pd.Timestamp(CHANGE.start))
    pd.testing.assert_frame_equal(changed.loc[~touched_after].reset_index(drop=True), untouched)
    kept = changed.loc[touched_after]
    assert kept.merge(steady.loc[touched], how="left", indicator=True)["_merge"].eq("both").all()
    assert 0.1 < len(kept) / touched.sum() < 0.3  # about 20% recorded
    manifest = json.loads((boroughs["changed"] / "manifest.json").read_text())
    assert manifest["generator"]["recording_change"] == [{"source": "police", "factor": 0.2, "start": "2025-06-01"}]
    assert "recording_change" not in json.loads((boroughs["steady"] / "manifest.json").read_text())["generator"]


def test_recording_change_option_is_parsed_and_bad_values_are_named() -> None:
    assert parse_recording_change("police:0.2@2024-06-01") == RecordingChange(source="police", factor=0.2,
                                                                              start=dt.date(2024, 6, 1))
    with pytest.raises(ConfigError, match="unknown source 'polce'"):
        parse_recording_change("polce:0.2@2024-06-01")
    with pytest.raises(ConfigError, match="not a date"):
        parse_recording_change("police:0.2@June")
    with pytest.raises(ConfigError, match="factor"):
        parse_recording_change("police:1.5@2024-06-01")


def test_planted_recording_change_turns_the_source_volume_indicator_red(boroughs: dict[str, Path]) -> None:
    document = _monitor(boroughs["changed"])
    [volume] = [c for c in document["criteria"] if c["kind"] == "source_volume_drop"]
    assert volume["status"] == "red"
    assert [s for s, status in volume["per_source"].items() if status != "green"] == ["police"]
    police = next(s for s in document["sources"]["per_source"] if s["source"] == "police")
    assert police["drop"] > 0.5 and police["significant"]
    assert document["overall"] == "red"


def test_the_same_world_without_the_change_stays_green(boroughs: dict[str, Path]) -> None:
    document = _monitor(boroughs["steady"])
    [volume] = [c for c in document["criteria"] if c["kind"] == "source_volume_drop"]
    assert set(volume["per_source"].values()) == {"green"}
    assert document["overall"] == "green"
    # Lagged and seasonal sources are compared like for like: school records arrive a term late.
    school = next(s for s in document["sources"]["per_source"] if s["source"] == "school")
    assert abs(school["drop"]) < 0.25


def test_monitor_command_writes_report_and_logs_only_aggregates_to_mlflow(
    boroughs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    config_path = tmp_path / "borough.yaml"
    config_path.write_text(yaml.safe_dump(_tiny_config(boroughs["changed"]), sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    out = tmp_path / "monitor"
    result = CliRunner().invoke(app, ["monitor", "--config", str(config_path), "--scores", str(tmp_path / "none"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "RED" in result.output and "police (red)" in result.output
    document = json.loads((out / "monitor.json").read_text())
    html = (out / "monitor.html").read_text()
    assert 'data-source="police"' in html and 'data-status="red"' in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
    client = MlflowClient()
    [run] = client.search_runs([client.get_experiment_by_name("early-signal").experiment_id])
    assert run.data.tags["earlysignal.stage"] == "monitor"
    assert run.data.metrics["status_source_volume_drop"] == 2
    assert run.data.metrics["volume_drop_police"] == pytest.approx(
        next(s["drop"] for s in document["sources"]["per_source"] if s["source"] == "police"))
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "monitor/monitor.json", str(tmp_path))).read_text())
    residents = pd.read_parquet(boroughs["changed"] / "residents.parquet", columns=["resident_id"])["resident_id"]
    text = json.dumps(logged)
    assert not any(rid in text for rid in residents.head(500))


def test_monitor_refuses_a_date_after_the_extract(boroughs: dict[str, Path], tmp_path: Path) -> None:
    config_path = tmp_path / "borough.yaml"
    config_path.write_text(yaml.safe_dump(_tiny_config(boroughs["steady"]), sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["monitor", "--config", str(config_path), "--as-of", "2026-02-01",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "after the data's extract date 2026-01-01" in result.output
    assert not (tmp_path / "out").exists()


def test_monitor_ignores_everything_recorded_after_the_monitoring_date(boroughs: dict[str, Path], tmp_path: Path) -> None:
    import dataclasses

    from earlysignal.monitor.past_lists import find_past_lists

    config = config_from_dict(_tiny_config(boroughs["steady"]))
    data = contract.load_linked_data(boroughs["steady"], config, write_quarantine=False)
    as_of, known_by = dt.date(2024, 7, 1), dt.date(2025, 3, 1)
    ids = data.residents["resident_id"].astype(str).iloc[:300].tolist()
    ranked = pd.DataFrame({"resident_id": ids, "score": np.linspace(0.5, 0.0, 300), "rank": np.arange(1, 301)})
    ranked["flagged"] = ranked["rank"] <= 30
    (tmp_path / "list").mkdir()
    ranked.to_parquet(tmp_path / "list" / "ranked.parquet")
    (tmp_path / "list" / "summary.json").write_text(json.dumps({"as_of": as_of.isoformat(), "capacity_k": 30}))
    lists = find_past_lists(tmp_path)
    before = build_monitor(config, data, lists, None, known_by)
    assert before["lists"][0]["labels_known"]

    late = pd.Timestamp(known_by)
    extra_outcomes = pd.DataFrame({"resident_id": ids[:30], "outcome_type": "child_protection_plan",
                                   "outcome_time": pd.Timestamp("2024-08-01"), "known_at": late, "end_time": pd.NaT})
    extra_events = data.events.loc[data.events["event_time"] < late].head(5000).assign(known_at=late)
    perturbed = dataclasses.replace(
        data,
        outcomes=pd.concat([data.outcomes, extra_outcomes.astype(data.outcomes.dtypes.to_dict())], ignore_index=True),
        events=pd.concat([data.events, extra_events], ignore_index=True),
    )
    assert build_monitor(config, perturbed, lists, None, known_by) == before
    # The same outcomes known a day earlier do count: the check can fail.
    known = dataclasses.replace(perturbed, outcomes=pd.concat(
        [data.outcomes, extra_outcomes.assign(known_at=late - pd.Timedelta(days=1)).astype(data.outcomes.dtypes.to_dict())],
        ignore_index=True))
    assert build_monitor(config, known, lists, None, known_by)["lists"][0]["precision_at_capacity"]["value"] == 1.0


# --- small numbers: a past list's figures never reveal a count under min_cell --------------------------------


def _list_world(boroughs: dict[str, Path], tmp_path: Path, flagged_escalations: int, other_escalations: int):
    """A 300-resident list at 2024-07-01 (100 flagged) whose escalations are planted: the first
    `flagged_escalations` flagged and `other_escalations` unflagged residents get a plan in the window."""
    import dataclasses

    from earlysignal.monitor.past_lists import find_past_lists

    config = config_from_dict(_tiny_config(boroughs["steady"]))
    data = contract.load_linked_data(boroughs["steady"], config, write_quarantine=False)
    as_of, known_by = dt.date(2024, 7, 1), dt.date(2025, 3, 1)
    candidates = data.residents["resident_id"].astype(str).tolist()
    labels = realised_labels(config, data, candidates, as_of, known_by)
    ids = [rid for rid, label in zip(candidates, labels.fillna(-1).tolist(), strict=True) if label == 0][:300]
    ranked = pd.DataFrame({"resident_id": ids, "score": np.linspace(0.5, 0.0, 300), "rank": np.arange(1, 301)})
    ranked["flagged"] = ranked["rank"] <= 100
    root = tmp_path / f"lists-{flagged_escalations}-{other_escalations}"
    folder = root / "list"
    folder.mkdir(parents=True)
    ranked.to_parquet(folder / "ranked.parquet")
    (folder / "summary.json").write_text(json.dumps({"as_of": as_of.isoformat(), "capacity_k": 100}))
    escalated = ids[:flagged_escalations] + ids[100:100 + other_escalations]
    extra = pd.DataFrame({"resident_id": escalated, "outcome_type": "child_protection_plan",
                          "outcome_time": pd.Timestamp("2024-08-01"), "known_at": pd.Timestamp("2024-08-02"),
                          "end_time": pd.NaT})
    planted = dataclasses.replace(data, outcomes=pd.concat(
        [data.outcomes, extra.astype(data.outcomes.dtypes.to_dict())], ignore_index=True))
    audit = {"summary": {"headline": {"precision_at_capacity": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}}}}
    return build_monitor(config, planted, find_past_lists(root), audit, known_by)


def test_a_past_lists_precision_is_withheld_when_few_flagged_escalated_but_the_criterion_still_judges_it(
    boroughs: dict[str, Path], tmp_path: Path
) -> None:
    two = _list_world(boroughs, tmp_path, flagged_escalations=2, other_escalations=38)
    three = _list_world(boroughs, tmp_path, flagged_escalations=3, other_escalations=38)
    [entry] = two["lists"]
    # Before: precision 0.02 beside "100 flagged" said exactly 2 flagged residents escalated.
    for metric in ("precision_at_capacity", "recall_at_capacity"):
        assert entry[metric] == {"value": None, "ci_low": None, "ci_high": None, "withheld": True}
    assert entry["flagged_positives"] is None
    assert entry["positives"] == 40 and entry["base_rate"] == pytest.approx(40 / 300)
    # Two worlds differing only in that small cell publish the same figures (AUC aside, two decimals).
    published = ("precision_at_capacity", "recall_at_capacity", "base_rate", "positives", "flagged_positives")
    assert {k: entry[k] for k in published} == {k: three["lists"][0][k] for k in published}
    assert entry["roc_auc"]["value"] == round(entry["roc_auc"]["value"], 2)
    assert entry["roc_auc"]["ci_low"] is None  # an interval's width tells 2 escalations from 3
    # The board's criterion is evaluated on the exact figure: the status shows, the count does not.
    [criterion] = [c for c in two["criteria"] if c["kind"] == "precision_below_promise"]
    assert (criterion["status"], criterion["evaluated_lists"]) == ("amber", 1)


def test_a_past_lists_precision_is_rounded_numerator_over_rounded_denominator_with_intervals(
    boroughs: dict[str, Path], tmp_path: Path
) -> None:
    document = _list_world(boroughs, tmp_path, flagged_escalations=22, other_escalations=19)
    [entry] = document["lists"]
    assert entry["precision_at_capacity"]["value"] == pytest.approx(20 / 100)  # 22 rounds to 20
    assert entry["recall_at_capacity"]["value"] == pytest.approx(20 / 40)  # 22 of 41
    assert entry["flagged_positives"] == 20 and entry["positives"] == 40
    low, high = entry["precision_at_capacity"]["ci_low"], entry["precision_at_capacity"]["ci_high"]
    assert low is not None and low < 0.22 < high


def test_the_response_share_is_withheld_when_few_flagged_residents_received_one() -> None:
    from earlysignal.monitor.disclosure import publish_response

    assert publish_response({"flagged": 100, "responded": 3, "share": 0.03}, 10, 5) == {
        "flagged": 100, "responded": None, "share": None}
    assert publish_response({"flagged": 100, "responded": 47, "share": 0.47}, 10, 5) == {
        "flagged": 100, "responded": 45, "share": 0.45}
    assert publish_response({"flagged": 100, "responded": 0, "share": 0.0}, 10, 5)["share"] == 0.0


def test_the_precision_criterion_says_when_the_audit_withheld_its_promise() -> None:
    criterion = SwitchOffCriterion(name="precision", kind="precision_below_promise", consecutive=2)
    lists = [_entry("2024-01-01", 0.3)]
    withheld = {"precision_at_capacity": {"value": None, "ci_low": None, "ci_high": None, "pooled": True}}
    [result] = evaluate_criteria([criterion], lists, withheld, [], None)
    assert result["status"] == "not evaluable"
    assert "withheld under the small-number rules" in result["detail"]
    [no_audit] = evaluate_criteria([criterion], lists, None, [], None)
    assert no_audit["detail"].startswith("no audit to compare with")


def test_source_psi_judges_windowed_features_not_those_over_the_whole_record(
    boroughs: dict[str, Path], tmp_path: Path
) -> None:
    from earlysignal.monitor.past_lists import find_past_lists

    config = config_from_dict(_tiny_config(boroughs["steady"]))
    data = contract.load_linked_data(boroughs["steady"], config, write_quarantine=False)

    def source_psi(feature_psi: dict[str, float]) -> dict:
        root = tmp_path / f"lists-{len(list(tmp_path.iterdir()))}"
        (root / "list").mkdir(parents=True)
        ranked = pd.DataFrame({"resident_id": ["R1"], "score": [0.5], "rank": [1], "flagged": [True]})
        ranked.to_parquet(root / "list" / "ranked.parquet")
        (root / "list" / "summary.json").write_text(json.dumps(
            {"as_of": "2026-01-01", "capacity_k": 1, "drift": {"feature_psi": feature_psi}}))
        document = build_monitor(config, data, find_past_lists(root), None, data.extract_date)
        return next(c for c in document["criteria"] if c["kind"] == "source_psi")

    # General repairs ever recorded at the address grow with the length of the record: not a drift of the source.
    whole_record = source_psi({"address__housing_repairs__general_repair__count__all": 0.46,
                               "address__housing_repairs__general_repair__days_since_last__all": 0.3,
                               "address__housing_repairs__general_repair__count__12m": 0.05})
    assert whole_record["per_source"]["housing_repairs"] == "green"
    windowed = source_psi({"address__housing_repairs__general_repair__count__all": 0.46,
                           "address__housing_repairs__general_repair__count__12m": 0.31})
    assert windowed["per_source"]["housing_repairs"] == "red"


def test_the_page_says_the_audit_withheld_its_promise_instead_of_showing_dashes(
    boroughs: dict[str, Path], tmp_path: Path
) -> None:
    from earlysignal.report.monitor_render import render_monitor_html

    document = _list_world(boroughs, tmp_path, flagged_escalations=2, other_escalations=38)
    document["promise"] = {"precision_at_capacity": {"value": None, "ci_low": None, "ci_high": None, "pooled": True},
                           "recall_at_capacity": {"value": None, "ci_low": None, "ci_high": None, "pooled": True},
                           "model_version": "2"}
    html = render_monitor_html(document)
    assert 'data-promise="withheld">The audit of model version 2 withheld its' in html
    assert "The audit promised" not in html
    assert html.count("withheld (small numbers)") >= 2  # the list's precision and recall (40 escalations: AUC shown)
    assert "0.02" not in html.split('id="realised"', 1)[1].split("</table>", 1)[0]

"""`earlysignal monitor` with a memory budget: the borough is read per partition (contract/streaming.py) and
the monitoring document is the one the whole borough gives, figure for figure, with every accepted event
counted once although events at an address where their resident never lived are stored in two partitions."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from planted_visits import plant_visits

from earlysignal import contract
from earlysignal.config import SynthSection, config_from_dict
from earlysignal.monitor import run_monitor
from earlysignal.synth import generate_borough

REPO = Path(__file__).resolve().parents[1]
LIST_DATES = ("2024-07-01", "2025-04-01", "2025-10-01")  # two horizons closed by 2026-01-01, one open
PLANTED_VISITS = 400


@pytest.fixture(scope="module")
def borough(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4,000-resident borough with planted cross-partition events, and three past lists."""
    root = tmp_path_factory.mktemp("monitor-partitioned")
    folder = root / "borough"
    generate_borough(folder, SynthSection(residents=4000, years=3, seed=5))
    outcomes = pd.read_parquet(folder / "outcomes.parquet", columns=["resident_id", "outcome_type"])
    residents = pd.read_parquet(folder / "residents.parquet", columns=["resident_id"])["resident_id"].astype(str)
    rng = np.random.default_rng(11)

    # Lists: residents with a child protection plan some time (so labels have positives) among random others.
    with_plan = outcomes.loc[outcomes["outcome_type"] == "child_protection_plan", "resident_id"].astype(str).unique()
    scores = root / "scores"
    flagged_by_date: dict[str, np.ndarray] = {}
    for as_of in LIST_DATES:
        others = rng.choice(np.setdiff1d(residents.to_numpy(), with_plan), 1400, replace=False)
        ids = rng.permutation(np.concatenate([with_plan[:100], others]))
        ranked = pd.DataFrame({"resident_id": ids, "score": np.sort(rng.random(len(ids)))[::-1],
                               "rank": np.arange(1, len(ids) + 1)})
        ranked["flagged"] = ranked["rank"] <= 200
        flagged_by_date[as_of] = ids[:200]
        (scores / as_of).mkdir(parents=True)
        ranked.to_parquet(scores / as_of / "ranked.parquet")
        (scores / as_of / "summary.json").write_text(json.dumps({"as_of": as_of, "capacity_k": 200}))

    # Early help contacts of the first list's flagged residents at addresses where they never lived: the response
    # share reads them, from whichever partition holds them.
    first = pd.Timestamp(LIST_DATES[0])
    contacts = pd.DataFrame({
        "resident_id": flagged_by_date[LIST_DATES[0]][:60],
        "source": "early_help", "event_type": "contact", "value": np.nan,
        "event_time": first + pd.Timedelta(days=20), "known_at": first + pd.Timedelta(days=21),
    })
    plant_visits(folder, PLANTED_VISITS, seed=3, extra=contacts)
    return {"data": folder, "scores": scores, "root": root}


def _config(data_dir: Path, partitions: int | None = None, budget: float | None = None):
    raw = yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8"))
    raw["data"]["dir"] = str(data_dir)
    raw["temporal"].update(first_as_of="2023-07-01", last_as_of="2025-10-01")
    # Published counts exact (no suppression, no rounding): one event counted twice changes the document.
    raw["audit"].update(min_cell=1, round_to=1)
    if partitions is not None or budget is not None:
        raw["build"] = {"partitions": partitions, "memory_budget_gb": budget}
    return config_from_dict(raw)


def _monitor(borough: dict[str, Path], name: str, **build) -> dict:
    result = run_monitor(_config(borough["data"], **build), scores_dir=borough["scores"],
                         out=borough["root"] / f"out-{name}", log_to_mlflow=False)
    return result.document


@pytest.fixture(scope="module")
def whole(borough: dict[str, Path]) -> dict:
    return _monitor(borough, "whole")


@pytest.mark.parametrize("partitions", [2, 5])
def test_monitor_per_partition_gives_the_whole_boroughs_document(
    borough: dict[str, Path], whole: dict, partitions: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole borough is never loaded on this path.
    def refuse(*args, **kwargs):
        raise AssertionError("monitor loaded the whole borough although build.partitions is set")

    monkeypatch.setattr(contract, "load_linked_data", refuse)
    document = _monitor(borough, f"p{partitions}", partitions=partitions)
    assert document == whole
    # What the document holds is not empty: closed lists with positives, a response share, monthly volumes.
    closed = [entry for entry in whole["lists"] if entry["labels_known"]]
    assert len(closed) == 2 and all(entry["positives"] > 0 for entry in closed)
    assert whole["lists"][0]["response"]["responded"] >= 60
    assert sum(sum(c for c in s["monthly"].values() if c) for s in whole["sources"]["per_source"]) > 10_000


def test_each_accepted_event_is_counted_once_although_stored_in_two_partitions(borough: dict[str, Path]) -> None:
    from earlysignal.contract.streaming import iter_events_part
    from earlysignal.monitor.inputs import inputs_from_data, inputs_per_partition
    from earlysignal.monitor.past_lists import find_past_lists
    from earlysignal.monitor.run import _loaded_per_partition

    config = _config(borough["data"], partitions=5)
    lists = find_past_lists(borough["scores"])
    known_by, recent = dt.date(2026, 1, 1), (dt.date(2025, 10, 1), dt.date(2026, 1, 1))
    data = contract.load_linked_data(borough["data"], config, write_quarantine=False)
    expected = inputs_from_data(config, data, lists, known_by, recent)
    with _loaded_per_partition(config, borough["data"], borough["root"] / "work") as streamed:
        stored = sum(len(e) for p in range(streamed.partitions)
                     for e in iter_events_part(streamed.events_dir, p, ["event_id"]))
        got = inputs_per_partition(config, streamed, lists, known_by, recent)
    # The planted visits make the partitions' files hold more rows than were accepted ...
    assert stored > len(data.events) + PLANTED_VISITS // 2
    # ... and the counts are the whole borough's, row for row.
    pd.testing.assert_frame_equal(got.volumes.counts, expected.volumes.counts)
    assert int(got.volumes.counts["n"].sum()) == int((data.events["known_at"] < pd.Timestamp(known_by)).sum())
    assert got.responses == expected.responses
    for mine, theirs in zip(got.labels, expected.labels, strict=True):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert mine.isna().tolist() == theirs.isna().tolist()
            assert mine.fillna(-1).tolist() == theirs.fillna(-1).tolist()


def test_a_memory_budget_alone_also_reads_the_borough_per_partition(
    borough: dict[str, Path], whole: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earlysignal.contract import streaming

    calls = []
    load = streaming.load_partitioned_data

    def counted(*args, **kwargs):
        calls.append(1)
        return load(*args, **kwargs)

    monkeypatch.setattr(streaming, "load_partitioned_data", counted)
    assert _monitor(borough, "budget", budget=0.25) == whole
    assert calls == [1]


def test_the_monitor_says_its_measured_peak_against_the_budget_instead_of_promising_it() -> None:
    """A 150,000-resident trial's monitor peaked at 0.80 GB with a 0.6 GB budget while the console said "within
    the memory budget": the budget bounds each partition, not the process, so the line now says the peak."""
    from types import SimpleNamespace

    from earlysignal.console import peak_memory_words as _peak_words

    tiny = _peak_words(SimpleNamespace(build=SimpleNamespace(memory_budget_gb=1e-6)))
    assert "above build.memory_budget_gb 1e-06" in tiny and "within" not in tiny
    assert "within build.memory_budget_gb" in _peak_words(SimpleNamespace(build=SimpleNamespace(memory_budget_gb=1e6)))
    assert re.fullmatch(r"peak memory \d+\.\d\d GB", _peak_words(SimpleNamespace(build=SimpleNamespace(memory_budget_gb=None))))

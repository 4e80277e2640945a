"""What a real council's extracts do differently from the synthetic ones: accented names, rule names
carried to the linked events, encodings (docs/ingest-and-link.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from link_fixtures import LINKAGE_CONFIG, write_ingested

from earlysignal.config import config_from_dict
from earlysignal.contract import validate_directory
from earlysignal.linkage.people import standardise
from earlysignal.linkage.run import run_link


def _records(first: list[str], last: list[str]) -> pd.DataFrame:
    n = len(first)
    return pd.DataFrame({
        "source": ["police"] * n, "record_id": [str(i) for i in range(n)], "source_person_id": [None] * n,
        "first_name": first, "middle_name": [None] * n, "last_name": last, "birth_date": ["2001-02-03"] * n,
        "sex": ["F"] * n, "postcode": ["N19 5DJ"] * n, "uprn": [None] * n,
    })


def test_accented_names_standardise_to_the_same_letters_as_their_unaccented_spelling() -> None:
    records = _records(["Zoë", "José", "Chloé", "Łukasz", "Søren"], ["Brontë", "Núñez", "O'Brien", "Straße", "Ærø"])
    out = standardise(records, {"F": "F"})
    assert out["first_name"].tolist() == ["zoe", "jose", "chloe", "lukasz", "soren"]
    assert out["last_name"].tolist() == ["bronte", "nunez", "obrien", "strasse", "aero"]
    assert out["full_name"].tolist()[0] == "zoe bronte"


def test_linked_events_keep_the_rule_or_code_list_entry_that_coded_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", "test-secret-" + "0123456789abcdef" * 2)
    write_ingested(tmp_path / "in", n_households=30)
    events = pd.read_parquet(tmp_path / "in" / "events.parquet")
    # One rule name per source, as ingest writes them (e.g. text_front_door_forced for a repair).
    events["coded_by"] = "rule_for_" + events["source"]
    events.to_parquet(tmp_path / "in" / "events.parquet", index=False)
    config = config_from_dict({"temporal": {"first_as_of": "2019-01-01", "last_as_of": "2025-10-01"},
                               "linkage": LINKAGE_CONFIG})
    run_link(tmp_path / "in", tmp_path / "out", config)
    linked = pd.read_parquet(tmp_path / "out" / "events.parquet")
    assert len(linked) > 0 and linked["coded_by"].notna().all()
    expected = events.set_index("event_id")["coded_by"]
    assert linked.set_index("event_id")["coded_by"].to_dict() == expected.loc[linked["event_id"]].to_dict()
    accepted = validate_directory(tmp_path / "out", config, write_quarantine=False)
    assert accepted.report.tables["events"].quarantined == 0
    assert sorted(accepted.events["coded_by"].astype(str).unique()) == sorted(linked["coded_by"].unique())

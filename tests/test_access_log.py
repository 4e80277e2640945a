"""The access log: every viewing appended, hash-chained, and any edit or deletion detected."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from earlysignal.access_log import (
    GENESIS,
    AccessLogError,
    append_access,
    current_viewer,
    read_access_log,
    verify_access_log,
)
from earlysignal.cli import app

AS_OF = dt.date(2025, 1, 1)
NOON = dt.datetime(2025, 1, 6, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "access" / "log.jsonl"
    for i, (viewer, resident) in enumerate([("A. Worker", "R1"), ("B. Worker", "R2"), ("A. Worker", "R3")]):
        append_access(path, viewer=viewer, action="journey", resident_id=resident, as_of=AS_OF,
                      output=f"journeys/{resident}.html", now=NOON + dt.timedelta(minutes=i))
    return path


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_each_viewing_is_one_entry_chained_to_the_one_before(log):
    entries = read_access_log(log)
    assert [(e.seq, e.viewer, e.resident_id, e.action) for e in entries] == [
        (1, "A. Worker", "R1", "journey"), (2, "B. Worker", "R2", "journey"), (3, "A. Worker", "R3", "journey")
    ]
    assert entries[0].prev == GENESIS
    assert [e.prev for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert entries[1].time == "2025-01-06T12:01:00+00:00"
    check = verify_access_log(log)
    assert check.intact and check.entries == 3 and check.head == entries[-1].hash


def test_editing_an_entry_is_detected_at_that_entry(log):
    lines = _lines(log)
    entry = json.loads(lines[1])
    entry["viewer"] = "Someone Else"
    lines[1] = json.dumps(entry, sort_keys=True)
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    check = verify_access_log(log)
    assert not check.intact
    assert check.problems == ["line 2 (entry 2): its content does not match its hash (edited)"]


def test_deleting_an_entry_is_detected(log):
    lines = _lines(log)
    log.write_text("\n".join([lines[0], lines[2]]) + "\n", encoding="utf-8")
    check = verify_access_log(log)
    assert not check.intact
    assert check.problems == [
        "line 2: entry 3 where entry 2 was expected (an entry is missing)",
        "line 2 (entry 3): does not follow the entry before it (deleted or reordered)",
    ]


def test_rehashing_an_edited_entry_still_breaks_the_link_to_the_next(log):
    from earlysignal.access_log import _entry_hash

    lines = _lines(log)
    entry = json.loads(lines[0])
    entry["resident_id"] = "R9"
    entry["hash"] = _entry_hash(entry)
    lines[0] = json.dumps(entry, sort_keys=True)
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert verify_access_log(log).problems == [
        "line 2 (entry 2): does not follow the entry before it (deleted or reordered)"
    ]


def test_nothing_is_appended_to_an_altered_log(log):
    lines = _lines(log)
    log.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    before = log.read_text(encoding="utf-8")
    with pytest.raises(AccessLogError, match="has been altered"):
        append_access(log, viewer="C", action="journey", resident_id="R4", as_of=AS_OF)
    assert log.read_text(encoding="utf-8") == before


def test_viewer_defaults_to_the_operating_system_user(monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "caseworker7")
    assert current_viewer(None) == "caseworker7"
    assert current_viewer("  Named Person ") == "Named Person"


def test_access_log_command_reports_an_intact_chain_and_refuses_an_altered_one(log):
    ok = CliRunner().invoke(app, ["access-log", "--log", str(log)])
    assert ok.exit_code == 0, ok.output
    assert "3 entries, chain intact" in " ".join(ok.output.split())  # the console wraps long lines
    lines = _lines(log)
    log.write_text("\n".join([lines[0], lines[2]]) + "\n", encoding="utf-8")
    bad = CliRunner().invoke(app, ["access-log", "--log", str(log)])
    assert bad.exit_code == 2
    assert "entry 2 was expected" in " ".join(bad.output.split())

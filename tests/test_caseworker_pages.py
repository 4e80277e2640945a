"""The journey and explain commands end to end on a tiny score folder, and the pages they write."""

from __future__ import annotations

import re

import pytest
from caseworker_folder import REASON_TEXTS, caseworker_folder
from journey_world import AS_OF, OTHERS, RESIDENT
from typer.testing import CliRunner

from earlysignal.access_log import read_access_log
from earlysignal.caselist import case_list_rows, score_band
from earlysignal.cli import app
from earlysignal.config import CaseworkerSection
from earlysignal.errors import EarlySignalError
from earlysignal.explanation import write_explanation
from earlysignal.journey import view_journey
from earlysignal.report.journey import JUDGEMENT_NOTE


@pytest.fixture
def folder(tmp_path, monkeypatch):
    # explain reads the approval record from MLflow: keep that store inside the test's folder.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return caseworker_folder(tmp_path)


def _behind(html: str, tag: str) -> dict[str, str]:
    pattern = rf'<{tag} class="[^"]*behind-reason[^"]*" data-event-id="([^"]+)" data-reasons="([^"]*)"'
    return dict(re.findall(pattern, html))


def test_journey_page_highlights_the_records_behind_each_reason_beside_its_text(folder):
    page = view_journey(folder.config, RESIDENT, AS_OF, scores_dir=folder.scores_dir, viewer="A. Worker")
    html = page.path.read_text(encoding="utf-8")
    # The list was scored with --allow-unapproved: the page's name says so too.
    assert page.path == folder.scores_dir / "journeys" / f"{RESIDENT}-UNAPPROVED.html"
    expected = {"E04": "1", "E01": "1", "E14": "2", "E07": "2", "E15": "2"}
    assert _behind(html, "tr") == expected
    assert _behind(html, "g") == expected
    for text in REASON_TEXTS:
        assert text in html
    assert JUDGEMENT_NOTE in html
    assert "Rank 2 of 3" in html and "flagged for review" in html
    assert "NOT APPROVED" in html  # the list was scored with --allow-unapproved
    # Labels come from the wording stored with the model's features, not from code.
    assert "<td>section 47 enquiry</td>" in html and "<td>Repairs</td>" in html


def test_journey_page_is_self_contained(folder):
    html = view_journey(folder.config, RESIDENT, AS_OF, scores_dir=folder.scores_dir, viewer="A").path.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in html and "url(" not in html


def test_viewing_a_journey_appends_who_viewed_whom_and_when(folder):
    view_journey(folder.config, RESIDENT, AS_OF, scores_dir=folder.scores_dir, viewer="A. Worker")
    page = view_journey(folder.config, "res-little", AS_OF, scores_dir=folder.scores_dir, viewer="B. Worker")
    entries = read_access_log(folder.access_log)
    assert [(e.viewer, e.resident_id, e.action, e.as_of) for e in entries] == [
        ("A. Worker", RESIDENT, "journey", "2025-01-01"), ("B. Worker", "res-little", "journey", "2025-01-01")
    ]
    assert entries[1].hash in page.path.read_text(encoding="utf-8")


def test_an_unknown_resident_is_refused_and_not_logged(folder):
    with pytest.raises(EarlySignalError, match="not in the residents table"):
        view_journey(folder.config, "nobody", AS_OF, scores_dir=folder.scores_dir, viewer="A")
    assert not folder.access_log.exists()


def test_journey_needs_the_score_folder_of_the_same_date(folder, tmp_path):
    with pytest.raises(EarlySignalError, match=r"run `earlysignal score --as-of DATE` first"):
        view_journey(folder.config, RESIDENT, AS_OF, scores_dir=tmp_path / "none", viewer="A")
    import datetime as dt

    with pytest.raises(EarlySignalError, match="holds the list scored at 2025-01-01, not 2025-04-01"):
        view_journey(folder.config, RESIDENT, dt.date(2025, 4, 1), scores_dir=folder.scores_dir, viewer="A")


def test_journey_command_writes_the_page_and_logs_the_os_user(folder, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "caseworker7")
    result = CliRunner().invoke(app, ["journey", "--resident", RESIDENT, "--as-of", "2025-01-01",
                                      "--scores", str(folder.scores_dir), "--config", str(folder.config_path)])
    assert result.exit_code == 0, result.output
    assert "13 records, 5 behind its reasons" in result.output
    assert [e.viewer for e in read_access_log(folder.access_log)] == ["caseworker7"]


def test_explain_command_writes_html_and_markdown_without_other_residents(folder):
    result = CliRunner().invoke(app, ["explain", "--resident", RESIDENT, "--as-of", "2025-01-01", "--viewer", "DPO",
                                      "--scores", str(folder.scores_dir), "--config", str(folder.config_path)])
    assert result.exit_code == 0, result.output
    assert "challenge_contact is NOT PROVIDED" in " ".join(result.output.split())
    out = folder.scores_dir / "explanations" / f"{RESIDENT}-UNAPPROVED"
    for name in ("explanation.html", "explanation.md"):
        text = (out / name).read_text(encoding="utf-8")
        assert REASON_TEXTS[0] in text
        assert all(other not in text for other in OTHERS)
    assert [e.action for e in read_access_log(folder.access_log)] == ["explanation"]


def test_explain_tells_an_unscored_resident_why(folder):
    files = write_explanation(folder.config, "res-mum", AS_OF, scores_dir=folder.scores_dir, viewer="DPO")
    assert "You were not scored on this date (older than the cohort's maximum age (17))." in files.markdown.read_text()


@pytest.mark.parametrize(("flagged", "percentile", "band"),
                         [(True, 50.0, "flagged for review"), (False, 95.0, "top 10%"), (False, 90.0, "top 10%"),
                          (False, 89.99, "top 25%"), (False, 3.0, "lower 75%")])
def test_score_band_is_the_flagged_band_else_the_first_band_reached(flagged, percentile, band):
    assert score_band(flagged, percentile, CaseworkerSection()) == band


def test_case_list_lists_everyone_flagged_even_beyond_the_row_limit():
    import pandas as pd

    ranked = pd.DataFrame({"resident_id": [f"R{i}" for i in range(6)], "rank": range(1, 7),
                           "score": [0.5, 0.4, 0.3, 0.2, 0.1, 0.05], "percentile": [100, 83, 67, 50, 33, 17],
                           "flagged": [True, True, True, False, False, False],
                           "reason_1": ["a", "b", "", "", "", ""], "reason_2": [""] * 6, "reason_3": [""] * 6})
    rows = case_list_rows(ranked, CaseworkerSection(case_list_rows=2))
    assert [(r["resident_id"], r["band"], r["reasons"], r["journey"]) for r in rows] == [
        ("R0", "flagged for review", ["a"], "journeys/R0.html"),
        ("R1", "flagged for review", ["b"], "journeys/R1.html"),
        ("R2", "flagged for review", [], "journeys/R2.html"),
    ]


def test_config_refuses_bands_that_leave_someone_out():
    from earlysignal.config import config_from_dict, config_to_dict, load_config
    from earlysignal.errors import ConfigError

    raw = config_to_dict(load_config("conf/borough.yaml"))
    raw["caseworker"] = {"bands": [{"label": "top", "min_percentile": 50}]}
    with pytest.raises(ConfigError, match="caseworker.bands"):
        config_from_dict(raw)


@pytest.mark.parametrize("command", ["journey", "explain", "access-log"])
def test_caseworker_commands_explain_themselves(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--config" in result.output


def test_a_bad_as_of_is_a_message_and_exit_code_2(folder):
    result = CliRunner().invoke(app, ["journey", "--resident", RESIDENT, "--as-of", "01/01/2025",
                                      "--config", str(folder.config_path)])
    assert result.exit_code == 2
    assert "--as-of must be a date written YYYY-MM-DD, e.g. 2021-01-01; got '01/01/2025'" in result.output
    assert "Traceback" not in result.output


def test_files_from_an_unapproved_list_say_so_in_their_names():
    from earlysignal.caselist import journey_filename, marked

    assert marked("case_list.html", approved=True) == "case_list.html"
    assert marked("case_list.html", approved=False) == "case_list-UNAPPROVED.html"
    assert journey_filename("R0.1/2", approved=False) == "journeys/R0_1_2-UNAPPROVED.html"


def test_each_reason_is_traced_to_the_feature_whose_contribution_and_wording_it_carries():
    import numpy as np
    import pandas as pd

    from earlysignal.caselist import reason_features

    values = pd.DataFrame({"resident_id": ["A", "B"], "f_doors": [3.0, 1.0], "f_calls": [2.0, 2.0]})
    metadata = {"features": [{"name": "f_doors", "description": "{value} door replacements"},
                             {"name": "f_calls", "description": "{value} call-outs"}]}
    # B's two features contribute exactly as much: the wording decides.
    contributions = np.array([[0.7, 0.2, -1.0], [0.3, 0.3, -1.0]])
    ranked = pd.DataFrame({"resident_id": ["B", "A"], "reason_1": ["2 call-outs", "3 door replacements"],
                           "contribution_1": [0.3, 0.7], "reason_2": ["1 door replacements", "2 call-outs"],
                           "contribution_2": [0.3, 0.2], "reason_3": ["", ""], "contribution_3": [None, None]})
    traced = reason_features(ranked, contributions, values, ["f_doors", "f_calls"], metadata)
    assert traced[["resident_id", "reason", "feature"]].values.tolist() == [
        ["A", 1, "f_doors"], ["A", 2, "f_calls"], ["B", 1, "f_calls"], ["B", 2, "f_doors"]
    ]
    ranked.loc[0, "reason_1"] = "2 things nobody described"
    with pytest.raises(EarlySignalError, match="reason 1 of resident B .* matches no feature"):
        reason_features(ranked, contributions, values, ["f_doors", "f_calls"], metadata)

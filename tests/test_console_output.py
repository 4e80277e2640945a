"""What a newcomer reads on the console: absent tables said so, blanks counted as not recorded, cut lists say
how many more and where."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from earlysignal.cli import app
from earlysignal.console import console
from test_contract_dictionary import _council_config, _write_two_people


def _row(output: str, label: str) -> list[str]:
    """The cells of the validate table's row whose first cell is `label`."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{output}")


def test_validate_says_residency_is_not_provided_when_the_folder_has_none(tmp_path: Path) -> None:
    data = _write_two_people(tmp_path / "data")
    (data / "residency.csv").unlink()
    result = CliRunner().invoke(app, ["validate", str(data), "--config", str(_council_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert _row(result.output, "residency (not provided)") == ["residency (not provided)", "–", "–", "–"]
    assert "residency.parquet" not in result.output
    # No checks listed under a table that is not there: the next row is the events table.
    lines = result.output.splitlines()
    after = next(i for i, line in enumerate(lines) if "residency (not provided)" in line) + 1
    assert "events (events.csv)" in lines[after]
    assert "0 rows quarantined; 5 accepted." in result.output


def test_validate_counts_blank_and_whitespace_values_as_not_recorded(tmp_path: Path) -> None:
    data = _write_two_people(tmp_path / "data")
    # P2's ethnicity is only spaces; the residency file has tenure "unknown" for P1 and an empty cell for P2.
    residents = (data / "residents.csv").read_text(encoding="utf-8").replace("female,White", "female,   ")
    (data / "residents.csv").write_text(residents, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(data), "--config", str(_council_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert _row(result.output, "tenure read as not recorded") == ["tenure read as not recorded", "", "2", ""]
    assert _row(result.output, "ethnicity read as not recorded") == ["ethnicity read as not recorded", "", "1", ""]


def test_the_audit_counts_blanks_and_the_dictionary_s_own_group_as_not_recorded() -> None:
    from earlysignal.audit.assemble import missingness

    sample = pd.DataFrame({"attr__ethnicity": ["White"] * 40 + ["Not stated"] * 10 + [""] * 5 + ["  "] * 5 + [None] * 10})
    # 30 of 70 not recorded: the dictionary's group ("Not stated"), blanks and nulls alike.
    shares = missingness(sample, [], ["ethnicity"], 10, 5, not_recorded_group="Not stated")
    assert shares["attributes"] == [{"attribute": "ethnicity", "share_not_recorded": 30 / 70}]


def test_a_cut_list_of_findings_says_how_many_more_and_where() -> None:
    from earlysignal.cli import _print_cut_list

    with console.capture() as captured:
        _print_cut_list([f"  - finding {i}" for i in range(1, 9)], Path("reports/audit/m-v1/audit.html"))
    assert captured.get().splitlines() == [
        "  - finding 1", "  - finding 2", "  - finding 3", "  - finding 4", "  - finding 5",
        "  ... and 3 more (see reports/audit/m-v1/audit.html)",
    ]
    with console.capture() as captured:
        _print_cut_list(["  - finding 1", "  - finding 2"], Path("audit.html"))
    assert captured.get().splitlines() == ["  - finding 1", "  - finding 2"]


def test_drifted_features_cut_at_five_say_how_many_more_and_where() -> None:
    from earlysignal.scoring import _report_drift

    names = [f"feature_{i}" for i in range(7)]
    drift = {"score_over_warn": False, "warn_psi": 0.25, "features_over_warn": names,
             "feature_psi": dict(zip(names, np.linspace(0.9, 0.3, 7))), "reference": "training as_of dates in month 1"}
    with console.capture() as captured:
        _report_drift(drift, Path("reports/scores/2025-01-01/summary.json"))
    text = " ".join(captured.get().split())
    assert text == (
        "7 feature(s) drifted beyond PSI 0.25 (compared with training as_of dates in month 1): feature_0 (0.90), feature_1 (0.80), feature_2 (0.70), "
        "feature_3 (0.60), feature_4 (0.50) ... and 2 more (see reports/scores/2025-01-01/summary.json)"
    )
    assert not re.search(r"feature_[56]", text)


def test_every_matrix_build_status_reads_as_what_was_done() -> None:
    from earlysignal.features import matrix_status_words

    assert {status: matrix_status_words(status) for status in (
        "built: no matrix", "reused", "built: spec changed", "built: data changed", "built: spec and data changed",
        "built: code changed", "built: spec, code and data changed",
    )} == {
        "built: no matrix": "Built the feature matrix (first build: none existed yet)",
        "reused": "Reused the feature matrix (spec, code and data unchanged)",
        "built: code changed": "Rebuilt the feature matrix (code changed)",
        "built: spec, code and data changed": "Rebuilt the feature matrix (spec, code and data changed)",
        "built: spec changed": "Rebuilt the feature matrix (spec changed)",
        "built: data changed": "Rebuilt the feature matrix (data changed)",
        "built: spec and data changed": "Rebuilt the feature matrix (spec and data changed)",
    }
    assert matrix_status_words("built: data changed: events.parquet, manifest.json") == (
        "Rebuilt the feature matrix (data changed: events.parquet, manifest.json)")

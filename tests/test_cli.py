"""The command line: every stage is there, explains itself, and user errors carry no traceback."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from earlysignal.cli import app

STAGES = ("synth", "validate", "features", "train", "audit", "approve", "revoke", "score", "demo")


def test_every_stage_is_a_command_with_help():
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0
    for stage in STAGES:
        assert stage in listing.output
        assert runner.invoke(app, [stage, "--help"]).exit_code == 0


def test_a_bad_config_is_a_message_and_exit_code_2_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("temporal: {first_as_of: 2020-01-01, last_as_of: 2019-01-01}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["features", "--config", str(bad)])
    assert result.exit_code == 2
    assert "last_as_of" in result.output
    assert "Traceback" not in result.output


def test_python_dash_m_runs_the_same_cli():
    completed = subprocess.run(
        [sys.executable, "-m", "earlysignal", "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0
    assert "demo" in completed.stdout


def test_every_command_that_reads_data_takes_data_dir():
    runner = CliRunner()
    for stage in ("validate", "features", "train", "score"):
        assert "--data" in runner.invoke(app, [stage, "--help"], env={"COLUMNS": "200"}).output, stage


def test_validate_reads_the_folder_given_by_data(tmp_path):
    from contract_fixtures import write_borough

    folder = write_borough(tmp_path / "borough")
    result = CliRunner().invoke(app, ["validate", "--data", str(folder), "--no-quarantine"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "0 rows quarantined" in result.output
    clash = CliRunner().invoke(app, ["validate", str(folder), "--data", str(tmp_path)])
    assert clash.exit_code == 2


def test_help_lists_every_command_by_stage_in_pipeline_order_whichever_module_holds_it() -> None:
    import re

    from typer.testing import CliRunner

    from earlysignal.cli import app

    output = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}).output
    listed = re.findall(r"^│ ([a-z][a-z-]+) {2,}", output, flags=re.MULTILINE)
    assert listed == [
        "demo", "synth", "ingest", "link", "validate", "privacy-scan", "features", "train", "audit", "necessity",
        "keys", "approvers", "approve", "revoke", "score", "journey", "explain", "access-log", "monitor",
        "evaluation-purge", "release", "release-sign", "pool",
    ]
    panels = re.findall(r"^╭─ (.+?) ─", output, flags=re.MULTILINE)
    assert panels == ["Options", "Try it", "Data in: synthesise or ingest, link, check",
                      "Model: features, training, the board's audit", "Governance: keys and approval",
                      "Each month: the list, the caseworker's pages, monitoring", "Across boroughs: aggregates only"]


def test_a_command_not_in_the_listed_order_comes_after_the_known_ones_in_registration_order() -> None:
    import typer

    from earlysignal.commands import _listed_position

    def later() -> None: ...

    def earlier() -> None: ...

    infos = [typer.models.CommandInfo(name="zeta", callback=later), typer.models.CommandInfo(callback=earlier),
             typer.models.CommandInfo(name="pool", callback=later)]
    ordered = [info for _, info in sorted(enumerate(infos), key=_listed_position)]
    assert [info.name or info.callback.__name__ for info in ordered] == ["pool", "zeta", "earlier"]


def test_each_help_paragraph_wrapped_in_the_source_is_one_line_in_help_and_lists_keep_their_lines() -> None:
    from earlysignal.commands import help_from_docstring

    doc = """Run the whole story: synth, ingest,
    link and the rest.

    Second paragraph
    reflowed too.

    - a list item
    - kept as written"""
    assert help_from_docstring(doc) == (
        "Run the whole story: synth, ingest, link and the rest.\n\nSecond paragraph reflowed too.\n\n"
        "- a list item\n- kept as written"
    )


def test_a_later_help_paragraph_is_not_broken_where_the_source_wraps_it() -> None:
    output = CliRunner().invoke(app, ["release", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}).output
    # The docstring wraps after "link quality,"; on a wide terminal the sentence goes on, on the same line.
    line = next(line for line in output.splitlines() if "link quality," in line)
    assert "link quality, model and code versions" in line

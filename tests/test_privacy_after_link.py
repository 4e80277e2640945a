"""The privacy boundary end to end: nothing written after `link` carries a raw identifier.

One tiny run from the synthetic borough's raw extracts through every command a council runs after
linking (validate, features, train with its MLflow store, audit, approval, score with its case list,
journey, explanation, monitor), with the console output and Python logs of each kept as files. The
scan (tests/privacy_scan.py) looks in every file for the names, dates of birth, NHS numbers, UPNs,
addresses, postcodes and UPRNs the raw files hold, and names the file and the kind of identifier.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from privacy_scan import Identifiers, raw_identifiers, scan_files
from typer.testing import CliRunner

from earlysignal.cli import app

REPO = Path(__file__).resolve().parents[1]
SECRET = "privacy-scan-test-secret-" + "7" * 16
SCORED_AT = ("2025-01-01", "2026-01-01")
# Dates of birth are looked for only among people born before the data's first records (2022), so
# the event dates every artefact holds cannot be mistaken for one.
BORN_BEFORE = dt.date(2015, 1, 1)
# The contract tables and link's person_links (the day each record joined its resident, ADR 0023) hold dates
# by design: any date can equal someone's birth date.
CONTRACT_TABLES = ("residents.parquet", "residency.parquet", "events.parquet", "outcomes.parquet", "person_links.parquet")


def _config(root: Path) -> dict:
    """The repository config, shrunk for the tiny borough (as tests/audit_world.py does) and writing
    everything under `root`."""
    raw = yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8"))
    raw["data"]["dir"] = str(root / "linked")
    raw["label"].update(name="csc_referral_12m", outcome_types=["csc_referral"], horizon_months=12)
    raw["temporal"].update(first_as_of="2023-01-01", last_as_of="2025-01-01")
    raw["model"].update(n_estimators=40, learning_rate=0.1, num_leaves=15, min_child_samples=20,
                        early_stopping_rounds=10)
    raw["training"].update(bootstrap=20, history_years=1, n_test_splits=2)
    raw["capacity"].update(k=None, top_percent=10)
    raw["audit"].update(bootstrap=50)
    raw["approval"]["store"] = str(root / "approval")
    raw["caseworker"]["access_log"] = str(root / "access" / "access-log.jsonl")
    raw["evaluation"]["dir"] = str(root / "evaluation")
    raw.setdefault("monitoring", {})["scores_dir"] = str(root / "scores")
    return raw


@pytest.fixture(scope="module")
def after_link(raw_borough_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run ingest, link and every later command on the tiny borough; keep each command's console output."""
    from earlysignal.config import load_config
    from earlysignal.demo import demo_approve

    root = tmp_path_factory.mktemp("privacy_after_link")
    config_path = root / "borough.yaml"
    config_path.write_text(yaml.safe_dump(_config(root), sort_keys=False), encoding="utf-8")
    config = load_config(config_path)
    logs = root / "logs"
    logs.mkdir()
    handler = logging.FileHandler(logs / "python.log", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    mp = pytest.MonkeyPatch()
    mp.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    mp.setenv("EARLYSIGNAL_APPROVAL_STORE", str(root / "approval"))  # conftest points it elsewhere
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
    (root / "mlflow").mkdir()
    mp.chdir(root)  # anything written to a default relative path lands under root and is scanned
    runner = CliRunner()

    def run(name: str, *args: str) -> str:
        result = runner.invoke(app, [*args, "--config", str(config_path)], catch_exceptions=False)
        (logs / f"{name}.console.txt").write_text(result.output, encoding="utf-8")
        assert result.exit_code == 0, (name, result.output[-2000:])
        return result.output

    try:
        run("ingest", "ingest", "--raw", str(raw_borough_tiny / "raw"), "--out", str(root / "ingested"))
        root_logger = logging.getLogger()
        level = root_logger.level
        root_logger.addHandler(handler)
        root_logger.setLevel(logging.INFO)
        try:
            run("link", "link", "--ingested", str(root / "ingested"), "--out", str(root / "linked"))
            run("validate", "validate", "--data", str(root / "linked"))
            run("features", "features")
            run("train", "train")
            run("audit", "audit", "--out", str(root / "audit"))
            from mlflow.tracking import MlflowClient

            name = config.model.name
            version = max(int(v.version) for v in MlflowClient().search_model_versions(f"name='{name}'"))
            demo_approve(config, name, version, root / "audit" / "audit.html")
            for day in SCORED_AT:
                run(f"score-{day}", "score", "--as-of", day, "--out", str(root / "scores" / day))
            ranked = pd.read_csv(next((root / "scores" / SCORED_AT[-1]).glob("*ranked*.csv")))
            resident = str(ranked["resident_id"].iloc[0])
            scores = str(root / "scores" / SCORED_AT[-1])
            run("journey", "journey", "--resident", resident, "--as-of", SCORED_AT[-1], "--scores", scores,
                "--out", str(root / "journey" / "journey.html"), "--viewer", "test caseworker")
            run("explain", "explain", "--resident", resident, "--as-of", SCORED_AT[-1], "--scores", scores,
                "--out", str(root / "explain"), "--viewer", "test caseworker")
            run("monitor", "monitor", "--scores", str(root / "scores"), "--as-of", SCORED_AT[-1],
                "--out", str(root / "monitor"))
        finally:
            root_logger.removeHandler(handler)
            root_logger.setLevel(level)
            handler.close()
    finally:
        mp.undo()
    return {"root": root, "ingested": root / "ingested"}


def _after_link_files(root: Path) -> list[Path]:
    """Every file the run wrote after ingest: all of root but the ingest output and the config."""
    return sorted(p for p in root.rglob("*") if p.is_file() and "ingested" not in p.relative_to(root).parts
                  and p.name != "borough.yaml")


def _scan(root: Path, identifiers: Identifiers) -> list[str]:
    files = _after_link_files(root)
    # The data contract's tables hold the birth date (residents) and dates of moves and events by design
    # (docs/data-contract.md; a child's first residency spell starts on the day of birth), so dates of
    # birth are looked for everywhere else: features, models, reports, lists, pages and logs.
    without_birth = Identifiers(identifiers.tokens, {k: v for k, v in identifiers.phrases.items() if k != "date_of_birth"})
    contract = [p for p in files if p.parent == root / "linked" and p.name in CONTRACT_TABLES]
    return scan_files([p for p in files if p not in contract], identifiers) + scan_files(contract, without_birth)


def test_every_kind_of_artefact_after_link_is_written_and_scanned(after_link: dict[str, Path]) -> None:
    root = after_link["root"]
    names = {p.relative_to(root).as_posix() for p in _after_link_files(root)}
    expected = [
        "linked/residents.parquet", "linked/events.parquet", "linked/person_links.parquet", "linked/link_quality.json",
        "audit/audit.html", "audit/audit.json", "journey/journey.html", "monitor/monitor.html", "monitor/monitor.json",
        "mlflow/mlflow.db", "logs/python.log", "logs/train.console.txt", "access/access-log.jsonl",
    ]
    assert [n for n in expected if n not in names] == []
    for pattern in ("linked/features/*.parquet", "mlflow/artifacts/**/MLmodel", "scores/2026-01-01/*ranked*.csv",
                    "scores/2026-01-01/*unscored*.csv", "scores/2026-01-01/*case*", "explain/*.html", "approval/*"):
        assert list(root.glob(pattern)), pattern


def test_no_name_birth_date_nhs_number_upn_address_or_postcode_after_link(after_link: dict[str, Path]) -> None:
    identifiers = raw_identifiers(after_link["ingested"], BORN_BEFORE)
    counts = identifiers.count()
    # The scan looks for thousands of values of every kind, not an empty list.
    assert all(counts[k] > 300 for k in ("name", "nhs_number", "upn", "uprn", "postcode", "address", "date_of_birth",
                                          "system_person_id")), counts
    assert _scan(after_link["root"], identifiers) == []


@pytest.mark.parametrize("kind", ["name", "date_of_birth", "nhs_number", "upn", "address", "postcode"])
def test_the_scan_names_the_file_and_kind_of_a_planted_identifier(after_link: dict[str, Path], tmp_path: Path, kind: str) -> None:
    identifiers = raw_identifiers(after_link["ingested"], BORN_BEFORE)
    people = pd.read_parquet(after_link["ingested"] / "person_records.parquet")
    adult = people[pd.to_datetime(people["birth_date"]) < pd.Timestamp(BORN_BEFORE)].iloc[0]
    with_upn = people[people["upn"].notna()].iloc[0]
    value = {
        "name": f"{people['first_name'].dropna().iloc[0]} {people['last_name'].dropna().iloc[0]}",
        "date_of_birth": pd.Timestamp(adult["birth_date"]).strftime("%d/%m/%Y"),
        "nhs_number": str(people["nhs_number"].dropna().iloc[0]),
        "upn": str(with_upn["upn"]),
        "address": str(people["address_text"].dropna().iloc[0]),
        "postcode": str(people["postcode"].dropna().iloc[0]),
    }[kind]
    copy = tmp_path / "copy"
    shutil.copytree(after_link["root"] / "monitor", copy / "monitor")
    shutil.copytree(after_link["root"] / "audit", copy / "audit")
    html = copy / "audit" / "audit.html"
    html.write_text(html.read_text(encoding="utf-8").replace("</body>", f"<p>{value}</p></body>"), encoding="utf-8")
    findings = scan_files(sorted(p for p in copy.rglob("*") if p.is_file()), identifiers)
    assert [f.split(": ")[0] for f in findings] == [str(html)] * len(findings)
    assert kind in {f.split(": ")[1].split(" (")[0] for f in findings}, findings


def test_the_scan_reads_the_mlflow_store_cell_by_cell_and_finds_a_planted_name(after_link: dict[str, Path], tmp_path: Path) -> None:
    """The SQLite store is read as cells, not bytes, so chance letter runs in its pages are no finding while a
    name written into a run's tag is one."""
    import sqlite3

    identifiers = raw_identifiers(after_link["ingested"], BORN_BEFORE)
    store = tmp_path / "mlflow.db"
    shutil.copyfile(after_link["root"] / "mlflow" / "mlflow.db", store)
    assert scan_files([store], identifiers) == []
    people = pd.read_parquet(after_link["ingested"] / "person_records.parquet")
    name = f"{people['first_name'].dropna().iloc[0]} {people['last_name'].dropna().iloc[0]}"
    with sqlite3.connect(store) as connection:
        run_uuid = connection.execute("select run_uuid from runs limit 1").fetchone()[0]
        connection.execute("insert into tags (key, value, run_uuid) values (?, ?, ?)", ("planted", name, run_uuid))
    findings = scan_files([store], identifiers)
    assert [f.split(": ")[0] for f in findings] == [str(store)]
    assert findings[0].split(": ")[1].startswith("name ("), findings


def test_sanctuary_works_reach_the_linked_events_but_never_a_model_feature_or_a_reason(after_link: dict[str, Path]) -> None:
    """Sanctuary / target-hardening works are done because abuse is already known: they must not become an
    early warning. They are in the linked events (so the check below is not empty) and nowhere in the model's
    features, the ranked lists' reasons, the case list or the explanation letter."""
    import json

    root = after_link["root"]
    events = pd.read_parquet(root / "linked" / "events.parquet", columns=["event_type"])
    assert (events["event_type"] == "sanctuary_works").sum() > 0
    for day in SCORED_AT:
        scores = root / "scores" / day
        features = json.loads((scores / "model_features.json").read_text(encoding="utf-8"))["features"]
        assert len(features) > 50 and [f for f in features if "sanctuary" in f] == []
        ranked = pd.read_csv(scores / "ranked.csv")
        reasons = ranked[[c for c in ranked.columns if c.startswith("reason_")]].astype(str)
        assert reasons.notna().any().any()
        assert not reasons.apply(lambda s: s.str.contains("sanctuary|target-hardening", case=False)).any().any()
        for name in ("reasons.parquet", "case_list.html"):
            text = " ".join(pd.read_parquet(scores / name).astype(str).to_numpy().ravel()) if name.endswith(".parquet") \
                else (scores / name).read_text(encoding="utf-8")
            assert "sanctuary" not in text.lower() and "target-hardening" not in text.lower(), (day, name)
    letter = (root / "explain" / "explanation.md").read_text(encoding="utf-8").lower()
    assert "sanctuary" not in letter and "target-hardening" not in letter


def test_the_scan_ignores_digits_after_a_decimal_point_but_finds_an_id_written_as_a_float(tmp_path: Path) -> None:
    ids = Identifiers(tokens={"system_person_id": {"0065123"}, "uprn": {"100023336956"}})
    leaf = tmp_path / "booster.txt"
    leaf.write_text("leaf_value=-0.00196374 0.0065123 0.0308269\n")
    as_float = tmp_path / "uprns.txt"
    as_float.write_text("uprn 100023336956.0 and 0065123\n")
    assert scan_files([leaf], ids) == []
    assert scan_files([as_float], ids) == [f"{as_float}: system_person_id (0065123)", f"{as_float}: uprn (100023336956)"]

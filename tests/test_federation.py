"""End to end on three synthetic boroughs: a model trained and approved in one is released at home,
shipped with its approval to two others and evaluated there on their own data; each borough's output
checker signs its bundle off, and `pool` combines the three into one pan-London report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from federation_world import FederationWorld, federation_world
from test_release_bundle import SETTINGS, _whole_numbers
from typer.testing import CliRunner

from earlysignal.audit.disclosure import is_small
from earlysignal.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> FederationWorld:
    return federation_world(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def pooled(world: FederationWorld, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("pool")
    config = world.root / "pool.yaml"
    # The pooling party's config: its own list of output checkers it trusts (here all three).
    config.write_text(json.dumps(world.configs["Northgate"].model_dump(mode="json")), encoding="utf-8")
    result = CliRunner().invoke(app, ["pool", *map(str, world.bundles.values()), "--out", str(out),
                                      "--config", str(config)])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "pool.json").read_text(encoding="utf-8"))


def test_each_borough_releases_only_aggregates_of_the_one_shipped_model(world: FederationWorld) -> None:
    releases = {name: json.loads((folder / "release.json").read_text()) for name, folder in world.bundles.items()}
    assert {n: r["kind"] for n, r in releases.items()} == {
        "Northgate": "home", "Riverside": "transfer", "Eastmarsh": "transfer"}
    shas = {r["model"]["model_sha256"] for r in releases.values()}
    assert len(shas) == 1 and len(next(iter(shas))) == 64
    assert {r["trained_in"] for r in releases.values()} == {"Northgate"}
    # The shipped model travelled with its signed approval, checked in the receiving borough.
    for name in ("Riverside", "Eastmarsh"):
        assert releases[name]["approval"]["status"] == "approved"
        assert releases[name]["approval"]["approver"] == "Northgate DCS"
        assert releases[name]["approval"]["model_sha256"] == releases[name]["model"]["model_sha256"]
    for name, folder in world.bundles.items():
        release = releases[name]
        # Dates a release states on purpose: its test dates, the extract date, when it was made and approved.
        own_dates = {row["as_of"] for row in release["performance"]["per_as_of"]} | {
            str(release["coverage"]["extract_date"])[:10], release["generated_at"][:10],
            str((release["approval"] or {}).get("approved_at"))[:10]}
        residents = pd.read_parquet(Path(world.configs[name].data.dir) / "residents.parquet")
        ids = set(residents["resident_id"].astype(str))
        births = {str(d)[:10] for d in residents["birth_date"].dropna()}
        for path in folder.iterdir():
            text = path.read_text(encoding="utf-8")
            assert not [rid for rid in ids if f'"{rid}"' in text], (name, path.name)
            assert not [b for b in births if b in text and b not in own_dates], (name, path.name)
            small = [(k, v) for k, v in _whole_numbers(json.loads(text)) if k not in SETTINGS and is_small(v, 10)]
            assert small == [], (name, path.name, small)


def test_the_transfer_is_scored_on_the_receiving_boroughs_residents_at_its_capacity(world: FederationWorld) -> None:
    release = json.loads((world.bundles["Riverside"] / "release.json").read_text())
    per_date = release["performance"]["per_as_of"]
    home = json.loads((world.bundles["Northgate"] / "release.json").read_text())
    # The test dates training would use under the same temporal config (Northgate's were chosen by `train`).
    assert [row["as_of"] for row in per_date] == [row["as_of"] for row in home["performance"]["per_as_of"]]
    assert [row["as_of"] for row in per_date] == ["2024-10-01", "2025-01-01"]
    for row in per_date:
        # top 20% of Riverside's cohort on that date (capacity.top_percent 20), from Riverside's data
        assert row["k"] >= 0.2 * row["n"] - 5 and row["k"] <= 0.2 * row["n"] + 5


def test_pool_combines_the_three_bundles_into_one_report(world: FederationWorld, pooled: tuple[Path, dict]) -> None:
    out, document = pooled
    assert [b["borough"] for b in document["bundles"]] == ["Northgate", "Riverside", "Eastmarsh"]
    assert all(b["signed_off"]["checker"] == f"{b['borough']} output checker" for b in document["bundles"])
    titles = [s["title"] for s in document["sets"]]
    # One borough released its own model, so the only pooled set is the shipped model in all three.
    assert titles == ["Model es-northgate version 1 (trained in Northgate) in every borough that evaluated it"]
    shipped = document["sets"][0]
    auc = shipped["metrics"]["roc_auc"]
    assert [r["borough"] for r in auc["boroughs"]] == [
        "Northgate", "Riverside (model from Northgate)", "Eastmarsh (model from Northgate)"]
    pooled_auc = auc["pooled"]
    assert pooled_auc is not None and pooled_auc["df"] == 2
    assert pooled_auc["ci_low"] < pooled_auc["value"] < pooled_auc["ci_high"]
    assert 0 <= pooled_auc["i2"] <= 1 and pooled_auc["tau2"] >= 0
    assert sum(r["weight"] for r in auc["boroughs"]) == pytest.approx(1.0)
    values = [r["value"] for r in auc["boroughs"]]
    assert min(values) <= pooled_auc["value"] <= max(values)
    assert [t["borough"] for t in document["transfer"]] == ["Riverside", "Eastmarsh"]
    html = (out / "pool.html").read_text(encoding="utf-8")
    for heading in ("What was pooled", "Performance across boroughs", "Fairness across boroughs",
                    "Transfer: a model evaluated outside the borough that trained it"):
        assert f"<h2>{heading}</h2>" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_pool_refuses_a_bundle_edited_after_sign_off(world: FederationWorld, tmp_path: Path) -> None:
    edited = shutil.copytree(world.bundles["Riverside"], tmp_path / "riverside")
    release = json.loads((edited / "release.json").read_text())
    release["performance"]["summary"]["roc_auc"]["value"] = 0.9
    (edited / "release.json").write_text(json.dumps(release))
    config = world.root / "pool.yaml"
    config.write_text(json.dumps(world.configs["Northgate"].model_dump(mode="json")), encoding="utf-8")
    result = CliRunner().invoke(app, ["pool", str(world.bundles["Northgate"]), str(edited),
                                      "--out", str(tmp_path / "out"), "--config", str(config)])
    assert result.exit_code == 2
    message = " ".join(result.output.split())  # whatever the console wraps
    assert "manifest check failed" in message and "release.json hashes to" in message
    assert not (tmp_path / "out" / "pool.html").exists()


def test_a_shipped_model_predicting_another_outcome_is_refused_before_any_data_is_read(
    world: FederationWorld, tmp_path: Path
) -> None:
    from audit_world import tracking_at

    from earlysignal.federation.bundle import BundleError
    from earlysignal.federation.release import run_release

    config = world.configs["Riverside"]
    other = config.model_copy(update={"label": config.label.model_copy(update={"horizon_months": 6})})
    with tracking_at(world.tracking_uri), pytest.raises(BundleError, match="different label definition"):
        run_release(other, world.model_uri, out_dir=tmp_path / "x", shipped=True)
    assert not (tmp_path / "x").exists()


def test_release_without_a_key_waits_for_the_checker_and_release_sign_signs_it_off(
    world: FederationWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit_world import tracking_at

    from earlysignal.federation.bundle import verify_bundle

    config = world.root / "northgate.yaml"
    config.write_text(json.dumps(world.configs["Northgate"].model_dump(mode="json")), encoding="utf-8")
    out = tmp_path / "bundle"
    with tracking_at(world.tracking_uri):
        result = CliRunner().invoke(app, ["release", "--model", world.model_uri, "--out", str(out),
                                          "--config", str(config)])
    # This test's own release register is empty, but the registry records that Northgate's model was released
    # from the world's register: a release here would forget it, so it stops and names that register.
    words = " ".join(result.output.split())
    assert result.exit_code == 2 and "home releases of es-northgate were registered in" in words, result.output
    assert not out.exists()
    # A copy of the world's register (a register moved with its copies) holds them: the release goes ahead.
    shutil.copytree(world.root / "release-register", tmp_path / "register")
    monkeypatch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(tmp_path / "register"))
    with tracking_at(world.tracking_uri):
        result = CliRunner().invoke(app, ["release", "--model", world.model_uri, "--out", str(out),
                                          "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Not signed off yet" in " ".join(result.output.split())
    # Read with the world's own Northgate bundle (the same evaluation), from its register.
    assert "Checked with 1 earlier release(s) of Northgate" in " ".join(result.output.split())
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "release.json"]
    key = world.checker_keys["Northgate"]
    result = CliRunner().invoke(app, ["release-sign", str(out), "--key", str(key), "--config", str(config)])
    assert result.exit_code == 0, result.output
    # The bundle was registered when written; release-sign reads the register, leaves itself out, and registers
    # the sign-off.
    assert "Checked with 1 earlier release(s) of Northgate" in " ".join(result.output.split())
    signed = verify_bundle(out, world.configs["Northgate"])
    assert signed["signed_off"]["checker"] == "Northgate output checker" and signed["kind"] == "home"
    # The same evaluation as the bundle the world wrote, figure for figure.
    original = json.loads((world.bundles["Northgate"] / "release.json").read_text())
    assert signed["performance"] == original["performance"] and signed["fairness"] == original["fairness"]


def test_a_receiving_borough_listing_its_own_approvers_too_is_told_to_use_a_transfer_config(
    world: FederationWorld, tmp_path: Path
) -> None:
    from audit_world import tracking_at

    from earlysignal.config import ApproverEntry
    from earlysignal.errors import ApprovalError
    from earlysignal.federation.release import run_release
    from earlysignal.ledger import generate_key_pair

    config = world.configs["Riverside"]
    _, public = generate_key_pair("Riverside DCS", tmp_path / "keys")
    own = ApproverEntry(name="Riverside DCS", role="Director of Children's Services", public_key=str(public))
    both = config.model_copy(update={"approval": config.approval.model_copy(
        update={"approvers": (*config.approval.approvers, own)})})
    with tracking_at(world.tracking_uri), pytest.raises(ApprovalError) as error:
        run_release(both, world.model_uri, out_dir=tmp_path / "x", shipped=True)
    message = str(error.value)
    assert message.startswith("approver-set check failed") and "added in the config: Riverside DCS" in message
    assert "give the transfer evaluation a config of its own whose approval.approvers lists exactly the home " \
           "board's approvers and whose approval.store is that copy" in message
    assert not (tmp_path / "x").exists()

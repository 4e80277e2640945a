"""A borough's own earlier bundles always count in the differencing attack (docs/adr/0024, "A borough's own bundles").

`release` registers every bundle it writes (federation/register.py) and reads the borough's registered
releases with each new one, whatever `release.earlier` lists and wherever `--out` points. The world is the
hand-made evaluation rows of test_release_bundle (two test dates of 2,000; the second date's list finds a
handful), released through `run_release` with the model's evaluation stubbed, so no model is trained.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
from test_release_bundle import config, evaluation_rows, keys  # noqa: F401 (fixtures)

from earlysignal.audit.differencing import attack_releases
from earlysignal.config import ProjectConfig
from earlysignal.federation.bundle import BundleError, build_release
from earlysignal.federation.evaluate import Evaluation

MODEL = {"name": "es", "version": "3", "model_sha256": "ab" * 32, "trained_in": "Northgate"}
WITHHELD_DATE = "2025-01-01 flagged who escalated"


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return evaluation_rows(seed=0)


def _release(config: ProjectConfig, frame: pd.DataFrame, out: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """`run_release` of the borough's own model, whose logged test rows are `frame`; returns release.json as written."""
    import earlysignal.federation.release as release_module

    monkeypatch.setattr(release_module, "home_evaluation",
                        lambda uri, cfg: Evaluation(frame.copy(), dict(MODEL), {}, None))
    folder, _ = release_module.run_release(config, "models:/es/3", out_dir=out)
    return json.loads((folder / "release.json").read_text(encoding="utf-8"))


def _pinned(*releases: dict) -> list[str]:
    return [b.name for b in attack_releases(list(releases)) if b.worked_back]


def test_two_releases_with_an_empty_release_earlier_cannot_be_differenced(
    config: ProjectConfig, rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    assert config.release.earlier == ()
    # Month one: both test dates. The second date's handful found is withheld, and the first date's number found
    # with it (the complement), so the total over the dates cannot give it back.
    first = _release(config, rows, tmp_path / "month-1", monkeypatch)
    assert first["performance"]["per_as_of"][1]["precision_at_capacity"] is None
    assert first["performance"]["per_as_of"][0]["precision_at_capacity"] is None
    # Month two, over the first test date only. Read on its own it may show that date's number found; a reader
    # holding both then takes it from month one's total over the dates and pins the handful.
    only_first_date = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    alone = build_release(only_first_date, config=config, borough="Northgate", model=dict(MODEL))
    assert alone["performance"]["per_as_of"][0]["precision_at_capacity"] is not None
    pinned = [b for b in attack_releases([first, alone]) if b.worked_back and b.name == WITHHELD_DATE]
    assert pinned and pinned[0].high - pinned[0].low + 1 < config.audit.min_cell - 1
    part = rows[rows["as_of"] == pd.Timestamp("2025-01-01")]
    truth = int((part["label"].astype(bool) & part["flagged"]).sum())
    assert pinned[0].low <= truth <= pinned[0].high < config.audit.min_cell
    # `release` itself, with release.earlier still empty and the bundle written somewhere else altogether:
    # month one is read from the register, so month two withholds that date's number found too.
    second = _release(config, only_first_date, tmp_path / "elsewhere" / "month-2", monkeypatch)
    assert second["performance"]["per_as_of"][0]["precision_at_capacity"] is None
    assert _pinned(first, second) == []
    assert [e["from"] for e in second["earlier_releases"]] == ["register"]
    assert second["earlier_releases"][0]["generated_at"] == first["generated_at"]


def test_a_bundle_moved_or_rewritten_in_place_is_still_read(
    config: ProjectConfig, rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    first = _release(config, rows, tmp_path / "bundle", monkeypatch)
    shutil.move(tmp_path / "bundle", tmp_path / "sent" / "bundle")
    only_first_date = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    # The next release goes into the very folder the first was written to (the default folder of the same
    # model version, say): the first's release.json is gone from disk, its registered copy is not.
    second = _release(config, only_first_date, tmp_path / "bundle", monkeypatch)
    assert second["performance"]["per_as_of"][0]["precision_at_capacity"] is None
    assert _pinned(first, second) == []


def _register(release_register: Path) -> list[dict]:
    return [json.loads(line) for line in (release_register / "register.jsonl").read_text().splitlines()]


def test_an_altered_registered_copy_or_bundle_is_a_clear_error(
    config: ProjectConfig, rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    release_register: Path,
) -> None:
    _release(config, rows, tmp_path / "first", monkeypatch)
    entry = _register(release_register)[0]
    assert entry["event"] == "written" and entry["borough"] == "Northgate"
    assert entry["bundle"] == str((tmp_path / "first").resolve())
    # The bundle's release.json edited by hand after `release` wrote it.
    path = tmp_path / "first" / "release.json"
    text = path.read_text()
    path.write_text(text.replace('"kind": "home"', '"kind": "homely"'))
    with pytest.raises(BundleError, match=r"first/release.json is not the release.json registered for that bundle"):
        _release(config, rows, tmp_path / "second", monkeypatch)
    path.write_text(text)
    # The register's own copy edited.
    copy = release_register / "archive" / f"{entry['release_sha256']}.json"
    os.chmod(copy, stat.S_IRUSR | stat.S_IWUSR)
    copy.write_text(copy.read_text().replace('"kind": "home"', '"kind": "homely"'))
    with pytest.raises(BundleError, match="no longer hashes to its name"):
        _release(config, rows, tmp_path / "second", monkeypatch)
    copy.unlink()
    with pytest.raises(BundleError, match="is missing; restore it from a backup"):
        _release(config, rows, tmp_path / "second", monkeypatch)
    assert not (tmp_path / "second").exists()


def test_a_register_line_removed_is_a_clear_error(
    config: ProjectConfig, rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    release_register: Path,
) -> None:
    only_first_date = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    _release(config, only_first_date, tmp_path / "a", monkeypatch)
    _release(config, only_first_date, tmp_path / "b", monkeypatch)
    lines = (release_register / "register.jsonl").read_text().splitlines()
    assert len(lines) == 2
    (release_register / "register.jsonl").write_text(lines[1] + "\n")
    with pytest.raises(BundleError, match="line 1 does not follow the line before it"):
        _release(config, only_first_date, tmp_path / "c", monkeypatch)


def test_lines_cut_from_the_end_of_the_register_are_still_read_from_their_copies(
    config: ProjectConfig, rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    release_register: Path,
) -> None:
    # Cutting the last lines leaves a chain that still checks (each line only names the one before it), and
    # deleting register.jsonl leaves no line at all: found by a newcomer's three-month trial, where the next
    # release was then checked without them. Their archived copies are still there, and are read.
    register = release_register / "register.jsonl"
    first = _release(config, rows, tmp_path / "month-1", monkeypatch)
    only_first_date = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    second = _release(config, only_first_date, tmp_path / "month-2", monkeypatch)
    first_sha, second_sha = (e["release_sha256"] for e in _register(release_register))
    register.write_text(register.read_text().splitlines()[0] + "\n")
    third = _release(config, only_first_date, tmp_path / "month-3", monkeypatch)
    assert {(e["release_sha256"], e["from"]) for e in third["earlier_releases"]} == {
        (first_sha, "register"), (second_sha, "register archive")}
    # register.jsonl deleted: month one's copy is still read, so the first date's number found stays withheld.
    register.unlink()
    fourth = _release(config, only_first_date, tmp_path / "month-4", monkeypatch)
    assert first_sha in {e["release_sha256"] for e in fourth["earlier_releases"]}
    assert {e["from"] for e in fourth["earlier_releases"]} == {"register archive"}
    assert fourth["performance"]["per_as_of"][0]["precision_at_capacity"] is None
    assert _pinned(first, second, third, fourth) == []


def test_a_renamed_borough_releasing_its_own_model_is_a_clear_error(
    config: ProjectConfig, rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    release_register: Path,
) -> None:
    # The register matches releases by borough name: month two released as "Northgate Council" was checked on
    # its own (a newcomer's three-month trial), and a reader holding both could difference them.
    first = _release(config, rows, tmp_path / "month-1", monkeypatch)
    only_first_date = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    renamed = config.model_copy(update={"release": config.release.model_copy(update={"borough": "Northgate Council"})})
    with pytest.raises(BundleError, match=r"home release of model es under the borough name 'Northgate'.*"
                                          r"Release under 'Northgate'"):
        _release(renamed, only_first_date, tmp_path / "month-2", monkeypatch)
    assert not (tmp_path / "month-2").exists()
    # write_bundle guards the door too: a document built under the new name by a script is refused.
    from earlysignal.federation.bundle import write_bundle

    alone = build_release(only_first_date, config=config, borough="Northgate Council", model=dict(MODEL))
    assert _pinned({**first, "borough": "Northgate Council"}, alone)
    with pytest.raises(BundleError, match="Release under 'Northgate'"):
        write_bundle(alone, tmp_path / "direct", renamed)
    # A register that already holds both names (renamed before this check existed): no name is refused, and a
    # new release reads the releases under both, since they are the same borough's own model.
    from earlysignal.federation.bundle import release_bytes
    from earlysignal.federation.register import ReleaseRegister

    ReleaseRegister(release_register).record(tmp_path / "old-renamed", release_bytes(alone), "written")
    third = _release(config, only_first_date, tmp_path / "month-3", monkeypatch)
    assert len(third["earlier_releases"]) == 2
    assert _pinned(first, alone, third) == _pinned(first, alone)
    # A transfer release of the same model in another borough name is not a rename.
    shipped = build_release(only_first_date, config=config, borough="Riverside", model=dict(MODEL), kind="transfer",
                            earlier=[])
    from earlysignal.federation.register import check_home_borough

    check_home_borough(config, shipped)


def test_a_second_register_or_a_deleted_one_is_a_clear_error_when_the_registry_knows_the_first(
    config: ProjectConfig, rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    release_register: Path,
) -> None:
    # A second config with another release.register_dir (or the register folder deleted) started the borough's
    # history again in silence (a newcomer's three-month trial). The model registry, which every config of the
    # borough shares, records where the model's home releases were registered.
    from mlflow import MlflowClient

    from earlysignal.tracking import configure_tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    configure_tracking()
    MlflowClient().create_registered_model("es")
    _release(config, rows, tmp_path / "month-1", monkeypatch)
    assert MlflowClient().get_registered_model("es").tags["earlysignal.release_register"] == str(
        release_register.resolve())
    only_first_date = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    second = config.model_copy(update={"release": config.release.model_copy(
        update={"register_dir": tmp_path / "second-register"})})
    monkeypatch.delenv("EARLYSIGNAL_RELEASE_REGISTER")
    with pytest.raises(BundleError, match=r"home releases of es were registered in .*"
                                          r"Point release.register_dir .* at "):
        _release(second, only_first_date, tmp_path / "month-2", monkeypatch)
    assert not (tmp_path / "month-2").exists()
    # The register moved with its copies is the same history: released into, and the registry follows it.
    shutil.copytree(release_register, tmp_path / "second-register")
    _release(second, only_first_date, tmp_path / "month-2", monkeypatch)
    # The register folder deleted where it is: the same error, saying to restore it.
    shutil.rmtree(tmp_path / "second-register")
    with pytest.raises(BundleError, match="Restore the register folder from a backup"):
        _release(second, only_first_date, tmp_path / "month-3", monkeypatch)


def test_a_listed_bundle_that_is_missing_or_altered_is_a_clear_error(
    config: ProjectConfig, rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    release_register: Path,
) -> None:
    # A bundle written under another register (another working folder), listed by hand.
    monkeypatch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(tmp_path / "other-register"))
    _release(config, rows, tmp_path / "theirs", monkeypatch)
    monkeypatch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(release_register))
    listing = config.model_copy(update={"release": config.release.model_copy(
        update={"earlier": (str(tmp_path / "theirs"),)})})
    only_first_date = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    second = _release(listing, only_first_date, tmp_path / "second", monkeypatch)
    assert [e["from"] for e in second["earlier_releases"]] == ["release.earlier"]
    assert second["performance"]["per_as_of"][0]["precision_at_capacity"] is None
    path = tmp_path / "theirs" / "release.json"
    path.write_text(path.read_text().replace('"kind": "home"', '"kind": "homely"'))
    with pytest.raises(BundleError, match=r"release.earlier\[0\]: manifest check failed: .*release.json hashes to"):
        _release(listing, only_first_date, tmp_path / "third", monkeypatch)
    shutil.rmtree(tmp_path / "theirs")
    with pytest.raises(BundleError, match=r"release.earlier\[0\]: cannot read"):
        _release(listing, only_first_date, tmp_path / "third", monkeypatch)


def test_release_sign_reads_the_register_and_registers_what_it_signs(
    config: ProjectConfig, rows: pd.DataFrame, keys: dict, tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, release_register: Path,
) -> None:
    from earlysignal.federation.bundle import sign_bundle, write_bundle

    first = _release(config, rows, tmp_path / "first", monkeypatch)
    # Month two built and written without this register (another working folder, or code before it).
    only_first_date = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    alone = build_release(only_first_date, config=config, borough="Northgate", model=dict(MODEL))
    # Written here (a script calling write_bundle on a document built without the register): refused.
    with pytest.raises(BundleError, match=r"can be worked back .* read with 1 earlier release\(s\) of this borough"):
        write_bundle(alone, tmp_path / "direct", config)
    assert not (tmp_path / "direct").exists()
    monkeypatch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(tmp_path / "elsewhere-register"))
    folder = write_bundle(alone, tmp_path / "alone", config)
    monkeypatch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(release_register))
    assert WITHHELD_DATE in _pinned(first, alone)
    with pytest.raises(BundleError, match=r"can be worked back .* read with 1 earlier release\(s\) of this borough"):
        sign_bundle(folder, keys["Olu Checker"][0], config)
    assert not (folder / "signature.json").exists()
    # A safe one written elsewhere is signed, and registered here: the next release reads it.
    safe = build_release(only_first_date, config=config, borough="Northgate", model=dict(MODEL), earlier=[first])
    monkeypatch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(tmp_path / "elsewhere-register"))
    shutil.rmtree(tmp_path / "alone")
    folder = write_bundle(safe, tmp_path / "safe", config)
    monkeypatch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(release_register))
    sign_bundle(folder, keys["Olu Checker"][0], config)
    assert [(e["event"], Path(e["bundle"]).name) for e in _register(release_register)] == [
        ("written", "first"), ("signed", "safe")]


def test_the_console_says_which_earlier_releases_were_read() -> None:
    from earlysignal.commands.federation import earlier_words

    assert earlier_words("Northgate", []) == [
        "No earlier release of Northgate in the release register or release.earlier: checked on its own."]
    lines = earlier_words("Northgate", [{"generated_at": "2026-11-01T09:00:00Z", "kind": "home", "model": "es v3",
                                         "release_sha256": "c0ffee" * 10 + "abcd", "from": "register"}])
    assert lines == ["Checked with 1 earlier release(s) of Northgate read together (a reader may hold them all):",
                     "  - 2026-11-01T09:00:00Z home es v3 (release.json sha256 c0ffeec0ffee, from the register)"]

"""Release bundles: aggregates only, disclosure-safe, signed off by a named checker; pool refuses anything else.

These tests use hand-made evaluation rows (no model), so every small cell is known; the end-to-end
run on three synthetic boroughs is tests/test_federation.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_audit_disclosure import MIN_CELL, group_numbers, recovered

from earlysignal.config import ApproverEntry, ProjectConfig, load_config
from earlysignal.federation.bundle import (
    BundleError,
    build_release,
    released_linkage,
    sign_bundle,
    verify_bundle,
    write_bundle,
)
from earlysignal.audit.differencing import DATE_COMPLEMENT
from earlysignal.ledger import generate_key_pair
from earlysignal.modeling import metrics as M

REPO = Path(__file__).resolve().parents[1]
# Whole numbers in a bundle that are settings, not counts of people (the rest must be 0 or >= MIN_CELL).
SETTINGS = {"schema", "min_cell", "round_to", "bootstrap", "resamples", "seed", "horizon_months", "top_percent"}


def evaluation_rows(seed: int = 0, strength: float = 1.5, weak_second_date: bool = True) -> pd.DataFrame:
    """Two test dates of 2,000 residents; 2% are 'Mixed' (a group with a handful of escalations).

    On the second date the model is nearly useless when weak_second_date, so its list of 100 finds
    only a few escalations: a small count behind precision at capacity.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for number, as_of in enumerate(("2024-10-01", "2025-01-01")):
        n = 2000
        ethnicity = rng.choice(["White", "Black", "Asian", "Mixed"], n, p=[0.6, 0.25, 0.13, 0.02])
        risk = rng.normal(size=n) + 0.6 * (ethnicity == "Black")
        label = (rng.random(n) < 1 / (1 + np.exp(-(strength * risk - 3.2)))).astype(int)
        margin = risk if not (weak_second_date and number == 1) else -risk + rng.normal(size=n)
        parts.append(pd.DataFrame({
            "resident_id": [f"RES{seed}{number}{i:05d}" for i in range(n)],
            "as_of": pd.Timestamp(as_of),
            "label": label,
            "score": 1 / (1 + np.exp(-(margin - 3))),
            "margin": margin,
            "attr__sex": rng.choice(["Female", "Male"], n),
            "attr__ethnicity": ethnicity,
        }))
    frame = pd.concat(parts, ignore_index=True)
    frame["flagged"] = False
    for _, part in frame.groupby("as_of"):
        rank = M.ranks(part["score"].to_numpy(), part["resident_id"].to_numpy(), part["margin"].to_numpy())
        frame.loc[part.index, "flagged"] = rank <= 100
    return frame


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("release-keys")
    return {name: generate_key_pair(name, folder) for name in ("Olu Checker", "Someone Else")}


@pytest.fixture(scope="module")
def config(keys: dict[str, tuple[Path, Path]]) -> ProjectConfig:
    base = load_config(REPO / "conf" / "borough.yaml")
    checker = ApproverEntry(name="Olu Checker", role="Output checker", public_key=str(keys["Olu Checker"][1]))
    return base.model_copy(update={
        "capacity": base.capacity.model_copy(update={"k": 100, "top_percent": None}),
        "training": base.training.model_copy(update={"bootstrap": 50}),
        "audit": base.audit.model_copy(update={"bootstrap": 50}),
        "release": base.release.model_copy(update={"borough": "Northgate", "checkers": (checker,)}),
    })


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return evaluation_rows()


@pytest.fixture(scope="module")
def release(rows: pd.DataFrame, config: ProjectConfig) -> dict:
    return build_release(rows, config=config, borough="Northgate",
                         model={"name": "es", "version": "3", "model_sha256": "ab" * 32})


def _signed(release: dict, folder: Path, config: ProjectConfig, key: Path) -> Path:
    write_bundle(release, folder, config)
    sign_bundle(folder, key, config)
    return folder


def _whole_numbers(value: object, key: str = "") -> list[tuple[str, int]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() if k not in SETTINGS for item in _whole_numbers(v, k)]
    if isinstance(value, list):
        return [item for v in value for item in _whole_numbers(v, key)]
    if isinstance(value, int) and not isinstance(value, bool):
        return [(key, value)]
    return []


def test_bundle_holds_no_resident_row_and_no_count_under_the_threshold_in_any_file(
    rows: pd.DataFrame, release: dict, config: ProjectConfig, keys: dict, tmp_path: Path
) -> None:
    folder = _signed(release, tmp_path / "bundle", config, keys["Olu Checker"][0])
    files = sorted(folder.iterdir())
    assert [p.name for p in files] == ["manifest.json", "release.json", "signature.json"]
    ids = set(rows["resident_id"])
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not any(rid in text for rid in ids), path.name
        assert "resident_id" not in text
        document = json.loads(text)
        small = [(k, v) for k, v in _whole_numbers(document) if 0 < v < MIN_CELL]
        assert small == [], (path.name, small)
        # No list as long as a test date's cohort: nothing row-shaped.
        lists = []

        def walk(value: object) -> None:
            if isinstance(value, list):
                lists.append(len(value))
                for item in value:
                    walk(item)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)

        walk(document)
        assert max(lists, default=0) < 100
    # There was something to hide: the 'Mixed' group has fewer than 10 escalations and is suppressed.
    mixed = rows[rows["attr__ethnicity"] == "Mixed"]
    assert 0 < int(mixed["label"].sum()) < MIN_CELL
    ethnicity = next(c for c in release["fairness"]["characteristics"] if c["key"] == "ethnicity")
    shown = next(g for g in ethnicity["groups"] if g["group"] == "Mixed")
    assert shown["suppressed"] == "primary" and shown["n"] is None and shown["positives"] is None


def test_a_small_number_of_escalations_found_withholds_precision_recall_and_their_intervals(
    rows: pd.DataFrame, release: dict
) -> None:
    second = rows[rows["as_of"] == pd.Timestamp("2025-01-01")]
    found = int(second.loc[second["flagged"], "label"].sum())
    assert 0 < found < MIN_CELL  # the weak second date finds a handful
    per_date = release["performance"]["per_as_of"][1]
    assert per_date["precision_at_capacity"] is None and per_date["recall_at_capacity"] is None
    assert per_date["k"] == 100 and per_date["n"] == 2000
    first = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    found_first = int(first.loc[first["flagged"], "label"].sum())
    positives_first = int(first["label"].sum())
    rounded = lambda v: int(5 * np.floor(v / 5 + 0.5))  # noqa: E731
    # The first date's number found would give the second's back from the total over both dates (65 of 200 less
    # 60 of 100 leaves 3 to 7): it is withheld too, as a complementary suppression, and says so.
    first_shown = release["performance"]["per_as_of"][0]
    assert found_first >= MIN_CELL and positives_first >= MIN_CELL
    assert first_shown["precision_at_capacity"] is None and first_shown["recall_at_capacity"] is None
    assert first_shown["withheld"]["precision_at_capacity"] == DATE_COMPLEMENT
    assert release["flagged_outcomes"][0]["escalated_share"] is None
    summary = release["performance"]["summary"]["precision_at_capacity"]
    assert summary["value"] == rounded(found_first + found) / 200
    assert summary["ci_low"] is not None and summary["ci_low"] <= summary["ci_high"]


def test_no_small_count_can_be_recovered_from_the_bundle(rows: pd.DataFrame, release: dict) -> None:
    """The audit's recovery attack (test_audit_disclosure) run on the bundle's fairness tables."""
    document = json.loads(json.dumps(release))
    targets = []
    for key, attributes in (("sex", ["sex"]), ("ethnicity", ["ethnicity"])):
        labels = rows[[f"attr__{a}" for a in attributes]].astype(str).agg(" + ".join, axis=1)
        for label, part in rows.groupby(labels):
            y, p = part["label"].astype(bool), part["flagged"]
            cells = {"tp": int((y & p).sum()), "fp": int((~y & p).sum()), "fn": int((y & ~p).sum()),
                     "flagged": int(p.sum()), "positives": int(y.sum())}
            denominators = {len(part), int(y.sum()), int(p.sum()), int((~y).sum())}
            for value in cells.values():
                if 0 < value < MIN_CELL:
                    targets.extend((key, str(label), value, d) for d in denominators if d >= value)
    assert any(t[1] == "Mixed" for t in targets)  # the attack has small cells to aim at
    for key, label, value, denominator in targets:
        assert not recovered(group_numbers(document, key, label), value, denominator), (key, label, value)
    # The headline figures: precision at capacity times the public k gives the number found.
    for row in document["performance"]["per_as_of"]:
        for metric in ("precision_at_capacity",):
            if row[metric] is not None:
                assert round(row[metric] * row["k"]) % 5 == 0 and round(row[metric] * row["k"]) >= MIN_CELL


def test_link_quality_leaves_with_cluster_counts_rounded_and_a_single_cluster_withheld() -> None:
    from earlysignal.audit.linkage import linkage_section
    from test_report_browser import LINK_QUALITY

    shown = released_linkage(linkage_section({"link_run_id": "L1", "quality": LINK_QUALITY}), MIN_CELL, 5)
    bands = {row["size"]: row for row in shown["cluster_sizes"]}
    assert bands["51+"] == {"size": "51+", "clusters": None, "share": None}
    assert bands["1"]["clusters"] == 2400 and bands["1"]["share"] == 2400 / 4155  # 4,154 clusters rounded
    assert shown["records"] == 37405 and shown["residents"] == 5300
    # Per source: counts rounded, shares from the rounded counts (2,158 of 6,351 council tax records dropped).
    sources = {row["source"]: row for row in shown["per_source"]}
    assert sources["council_tax"]["records"] == 6350
    assert sources["council_tax"]["dropped_share"] == 2160 / 6350
    assert sources["ae"]["linked_share"] == round(0.8671 * 6036 / 5) * 5 / 6035
    assert "dropped_records" not in sources["council_tax"]
    assert shown["ground_truth"] == {"precision": 0.99, "recall": 0.96, "f1": 0.97}


def test_a_document_with_a_small_count_is_never_written(release: dict, config: ProjectConfig, tmp_path: Path) -> None:
    leaky = json.loads(json.dumps(release))
    leaky["performance"]["per_as_of"][0]["positives"] = 7
    with pytest.raises(BundleError, match=r"counts under 10 at \['performance.per_as_of\[0\].positives'\]"):
        write_bundle(leaky, tmp_path / "leaky", config)
    assert not (tmp_path / "leaky" / "release.json").exists()


def test_pool_refuses_an_unsigned_bundle(release: dict, config: ProjectConfig, tmp_path: Path) -> None:
    folder = write_bundle(release, tmp_path / "unsigned", config)
    with pytest.raises(BundleError, match="signature check failed: .* is not signed off"):
        verify_bundle(folder, config)


def test_an_edited_or_added_file_after_sign_off_is_refused(
    release: dict, config: ProjectConfig, keys: dict, tmp_path: Path
) -> None:
    folder = _signed(release, tmp_path / "signed", config, keys["Olu Checker"][0])
    assert verify_bundle(folder, config)["signed_off"]["checker"] == "Olu Checker"
    edited = shutil.copytree(folder, tmp_path / "edited")
    text = (edited / "release.json").read_text(encoding="utf-8")
    (edited / "release.json").write_text(text.replace('"borough": "Northgate"', '"borough": "Elsewhere"'))
    with pytest.raises(BundleError, match=r"manifest check failed: .*release.json hashes to"):
        verify_bundle(edited, config)
    added = shutil.copytree(folder, tmp_path / "added")
    (added / "rows.csv").write_text("resident_id\nR1\n")
    with pytest.raises(BundleError, match=r"manifest check failed: .* does not list \['rows.csv'\]"):
        verify_bundle(added, config)


def test_a_bundle_rewritten_and_resigned_with_an_untrusted_key_is_refused(
    release: dict, config: ProjectConfig, keys: dict, tmp_path: Path
) -> None:
    # Someone edits the release, rewrites the manifest and signs with their own key, listed in *their* config.
    forged = json.loads(json.dumps(release))
    forged["performance"]["summary"]["roc_auc"]["value"] = 0.99
    theirs = config.model_copy(update={"release": config.release.model_copy(update={"checkers": (
        ApproverEntry(name="Someone Else", public_key=str(keys["Someone Else"][1])),)})})
    folder = _signed(forged, tmp_path / "forged", theirs, keys["Someone Else"][0])
    with pytest.raises(BundleError, match="signature check failed: .* not listed in release.checkers"):
        verify_bundle(folder, config)


def test_a_signature_moved_onto_another_bundle_is_refused(
    release: dict, config: ProjectConfig, keys: dict, tmp_path: Path
) -> None:
    first = _signed(release, tmp_path / "first", config, keys["Olu Checker"][0])
    other = json.loads(json.dumps(release))
    other["performance"]["summary"]["roc_auc"]["value"] = 0.99
    second = write_bundle(other, tmp_path / "second", config)
    shutil.copy(first / "signature.json", second / "signature.json")
    with pytest.raises(BundleError, match="signature check failed: .* does not match its content"):
        verify_bundle(second, config)


def test_only_a_configured_checker_can_sign_off(release: dict, config: ProjectConfig, keys: dict, tmp_path: Path) -> None:
    folder = write_bundle(release, tmp_path / "bundle", config)
    with pytest.raises(BundleError, match="is not listed in release.checkers in the config"):
        sign_bundle(folder, keys["Someone Else"][0], config)
    with pytest.raises(BundleError, match="does not match the owner of key"):
        sign_bundle(folder, keys["Olu Checker"][0], config, checker="Someone Else")
    assert not (folder / "signature.json").exists()


def test_a_bundle_is_never_written_into_a_folder_holding_other_files(
    release: dict, config: ProjectConfig, tmp_path: Path
) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "predictions.parquet").write_bytes(b"resident-level")
    with pytest.raises(BundleError, match=r"holds other files \['predictions.parquet'\]"):
        write_bundle(release, folder, config)
    assert sorted(p.name for p in folder.iterdir()) == ["predictions.parquet"]
    # Its own earlier bundle folder is fine: rewritten, and the old sign-off removed.
    write_bundle(release, tmp_path / "again", config)
    (tmp_path / "again" / "signature.json").write_text("{}")
    write_bundle(release, tmp_path / "again", config)
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["manifest.json", "release.json"]


def test_a_second_approval_and_a_small_feature_spec_do_not_block_the_release(
    rows: pd.DataFrame, config: ProjectConfig, tmp_path: Path
) -> None:
    # The ledger position of an approval and the number of feature columns are not counts of people.
    approval = {"status": "approved", "approver": "A Director", "role": "DCS", "approved_at": "2026-12-01T02:50:37Z",
                "model_sha256": "ab" * 32, "report_sha256": "cd" * 32, "ledger_seq": 1, "demo": False}
    release = build_release(rows, config=config, borough="Northgate", approval=approval,
                            model={"name": "es", "version": "4", "model_sha256": "ab" * 32},
                            feature_metadata={"feature_columns": ["a", "b", "c"]})
    folder = write_bundle(release, tmp_path / "second-approval", config)
    written = json.loads((folder / "release.json").read_text())
    assert written["approval"]["ledger_seq"] == 1
    assert written["coverage"]["features"] == 3


def test_the_receiving_boroughs_own_test_rows_are_read_without_its_approval_ledger(monkeypatch) -> None:
    # A transfer evaluation is configured with a copy of the shipped model's home ledger; the receiving
    # borough's own model (approved in its own ledger) must not be checked against that copy.
    import types

    import earlysignal.approval
    import earlysignal.modeling.artifacts
    from earlysignal.errors import ApprovalError
    from earlysignal.federation.evaluate import home_test_rows

    logged = pd.DataFrame({"resident_id": ["R1", "R2", "R3"], "as_of": pd.to_datetime(["2025-01-01"] * 3),
                           "label": [1.0, None, 0.0], "score": [0.9, 0.5, 0.1]})
    stub = types.SimpleNamespace(metrics={"evaluated": True}, test_predictions=logged)
    monkeypatch.setattr(earlysignal.modeling.artifacts, "load_training_artifacts", lambda uri: stub)

    def no_ledger(*args, **kwargs):
        raise ApprovalError("head check failed: the copied ledger is another borough's")

    monkeypatch.setattr(earlysignal.approval, "approval_status", no_ledger)
    monkeypatch.setattr(earlysignal.approval, "require_approved", no_ledger)
    rows = home_test_rows("models:/es-elmbridge/1")
    assert rows.to_dict("list") == {"resident_id": ["R1", "R3"], "as_of": [pd.Timestamp("2025-01-01")] * 2,
                                    "label": [1.0, 0.0]}
    stub.metrics = {"evaluated": False}
    with pytest.raises(BundleError, match="was not evaluated"):
        home_test_rows("models:/es-elmbridge/1")


def test_keys_tells_an_output_checker_where_their_public_key_goes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from earlysignal.cli import app

    result = CliRunner().invoke(app, ["keys", "--name", "Riverside output checker", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "An output checker who signs release bundles off is listed under release.checkers instead" in said


def _with_few_escalations(rows: pd.DataFrame, as_of: str, escalations: int) -> pd.DataFrame:
    """The same rows with exactly `escalations` residents escalating on one test date (the top-scored ones
    excepted, so the list still misses some)."""
    out = rows.copy()
    index = out.index[out["as_of"] == pd.Timestamp(as_of)]
    out.loc[index, "label"] = 0
    out.loc[index[-escalations:], "label"] = 1
    return out


def test_a_date_with_a_handful_of_escalations_carries_no_auc_and_says_why(config: ProjectConfig) -> None:
    rows = _with_few_escalations(evaluation_rows(), "2025-01-01", 3)
    release = build_release(rows, config=config, borough="Northgate", model={"name": "es", "version": "3"})
    first, second = release["performance"]["per_as_of"]
    assert second["positives"] is None and second["roc_auc"] is None
    assert set(second["withheld"]) == {"precision_at_capacity", "recall_at_capacity", "roc_auc"}
    assert "small number" in second["withheld"]["roc_auc"]
    assert first["roc_auc"] is not None and "roc_auc" not in first["withheld"]
    # The overall AUC is the first date's alone (figure and interval), so the hidden one cannot be
    # worked back as twice the mean minus the first date's.
    first_rows = rows[rows["as_of"] == pd.Timestamp("2024-10-01")]
    exact_first = M.RankedList.build(first_rows["label"].to_numpy(float), first_rows["score"].to_numpy(float),
                                     first_rows["resident_id"].to_numpy(), 100).metrics()["roc_auc"]
    summary = release["performance"]["summary"]["roc_auc"]
    assert summary["value"] == round(exact_first, 2) == first["roc_auc"]
    assert summary["over_as_of"] == ["2024-10-01"] and summary["withheld_as_of"] == ["2025-01-01"]
    assert summary["withheld"] is not None and summary["ci_low"] <= summary["value"] <= summary["ci_high"]


def test_a_date_with_a_handful_of_residents_not_escalating_carries_no_auc(config: ProjectConfig) -> None:
    rows = evaluation_rows()
    index = rows.index[rows["as_of"] == pd.Timestamp("2025-01-01")]
    rows.loc[index, "label"] = 1
    rows.loc[index[:4], "label"] = 0
    release = build_release(rows, config=config, borough="Northgate", model={"name": "es", "version": "3"})
    second = release["performance"]["per_as_of"][1]
    assert second["roc_auc"] is None and "did not escalate" in second["withheld"]["roc_auc"]
    assert release["performance"]["summary"]["roc_auc"]["withheld_as_of"] == ["2025-01-01"]


def test_no_overall_auc_when_every_dates_escalations_are_withheld(config: ProjectConfig) -> None:
    rows = _with_few_escalations(_with_few_escalations(evaluation_rows(), "2025-01-01", 3), "2024-10-01", 8)
    summary = build_release(rows, config=config, borough="Northgate",
                            model={"name": "es", "version": "3"})["performance"]["summary"]["roc_auc"]
    assert summary["value"] is None and summary["ci_low"] is None and summary["ci_high"] is None
    assert summary["over_as_of"] == [] and summary["withheld_as_of"] == ["2024-10-01", "2025-01-01"]
    assert summary["withheld"].startswith("no test date's AUC is shown")

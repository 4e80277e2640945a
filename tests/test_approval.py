"""The approval gate: only a named, recorded, untampered approval lets a model score."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from earlysignal.approval import (
    approval_status,
    approve_model,
    model_artifact_sha256,
    require_approved,
    revoke_approval,
)
from earlysignal.errors import ApprovalError
from earlysignal.fingerprint import file_sha256
from earlysignal.tracking import use_experiment

NAME = "toy-model"


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context: object, model_input: list[str], params: dict | None = None) -> list[str]:
        return model_input


def _register_version() -> str:
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=_Echo(), registered_model_name=NAME, pip_requirements=[]
        )
    return str(info.registered_model_version)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # One SQLite store per module: creating one costs seconds of schema migrations.
    folder = tmp_path_factory.mktemp("approval-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        use_experiment("approval-tests")
        yield folder


@pytest.fixture()
def registry(store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The module's store, with the toy model deleted after each test so versions start at 1 again."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    use_experiment("approval-tests")
    yield store
    client = mlflow.MlflowClient()
    if client.search_registered_models(filter_string=f"name='{NAME}'"):
        client.delete_registered_model(NAME)


@pytest.fixture()
def report(tmp_path: Path) -> Path:
    path = tmp_path / "audit.html"
    path.write_text(
        f'<html><head><meta name="earlysignal-model" content="{NAME}/1"></head><body>audit</body></html>',
        encoding="utf-8",
    )
    return path


def _version_artifact_dir(store: Path, version: str) -> Path:
    source = mlflow.MlflowClient().get_model_version(NAME, version).source
    model_id = source.removeprefix("models:/")
    folders = [p for p in store.rglob(model_id) if p.is_dir()]
    assert folders, f"no artefact folder for {model_id} under {store}"
    return folders[0] / "artifacts"


def test_approval_sets_champion_and_records_who_when_and_hashes(registry: Path, report: Path) -> None:
    version = _register_version()
    record = approve_model(NAME, version, approver="A. Chair", report_path=report, note="board 12 Nov")

    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == version
    tags = client.get_model_version(NAME, version).tags
    assert tags["approval.status"] == "approved"
    assert tags["approval.approver"] == "A. Chair"
    assert tags["approval.note"] == "board 12 Nov"
    assert tags["approval.report_sha256"] == file_sha256(report)
    assert tags["approval.model_sha256"] == model_artifact_sha256((NAME, version))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", tags["approval.approved_at"])
    assert approval_status(NAME, version) == record


def test_require_approved_passes_for_the_champion_by_alias_and_by_version(registry: Path, report: Path) -> None:
    version = _register_version()
    approve_model(NAME, version, approver="A. Chair", report_path=report)
    require_approved(f"models:/{NAME}@champion")
    require_approved(f"models:/{NAME}/{version}")


def test_require_approved_refuses_a_version_never_approved(registry: Path) -> None:
    version = _register_version()
    assert approval_status(NAME, version) is None
    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}/{version}")
    assert str(caught.value) == (
        f"model {NAME} version 1 has not been approved for scoring. "
        f"Audit it (earlysignal audit --model models:/{NAME}/1), have the board read the report, "
        f'then approve it: earlysignal approve --model {NAME} --version 1 --approver "NAME" --report PATH'
    )


def test_require_approved_refuses_after_revocation_and_champion_is_removed(registry: Path, report: Path) -> None:
    version = _register_version()
    approve_model(NAME, version, approver="A. Chair", report_path=report)
    revoke_approval(NAME, version, by="B. Officer", reason="drift above threshold")

    record = approval_status(NAME, version)
    assert record is not None and record.status == "revoked" and record.revoked_by == "B. Officer"
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.MlflowClient().get_model_version_by_alias(NAME, "champion")
    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}/{version}")
    assert str(caught.value) == (
        f"model {NAME} version 1 is not approved: its approval was revoked by B. Officer "
        f"at {record.revoked_at} (drift above threshold). "
        f"Score with an approved champion (models:/{NAME}@champion) or re-audit and approve again."
    )


def test_require_approved_refuses_an_approved_version_that_is_no_longer_champion(
    registry: Path, report: Path
) -> None:
    first = _register_version()
    approve_model(NAME, first, approver="A. Chair", report_path=report)
    second = _register_version()
    report.write_text(f'<meta name="earlysignal-model" content="{NAME}/{second}">', encoding="utf-8")
    approve_model(NAME, second, approver="A. Chair", report_path=report)

    require_approved(f"models:/{NAME}/{second}")
    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}/{first}")
    assert str(caught.value) == (
        f"model {NAME} version 1 is not the approved champion (version 2 holds the champion alias). "
        f"Score with models:/{NAME}@champion, or approve version 1: "
        f'earlysignal approve --model {NAME} --version 1 --approver "NAME" --report PATH'
    )


def test_require_approved_refuses_a_model_whose_files_changed_after_approval(registry: Path, report: Path) -> None:
    version = _register_version()
    record = approve_model(NAME, version, approver="A. Chair", report_path=report)
    artefacts = _version_artifact_dir(registry, version)
    with open(artefacts / "MLmodel", "a", encoding="utf-8") as handle:
        handle.write("# edited after approval\n")

    tampered = model_artifact_sha256((NAME, version))
    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}@champion")
    assert str(caught.value) == (
        f"model {NAME} version 1 has changed since it was approved: its artefact files hash to "
        f"{tampered[:12]}, not the approved {record.model_sha256[:12]}. Do not score with it; "
        "find out who changed the files, then re-register, re-audit and approve the model again."
    )


def test_approval_needs_an_existing_report_for_the_same_model_version(registry: Path, tmp_path: Path) -> None:
    version = _register_version()
    missing = tmp_path / "nowhere.html"
    with pytest.raises(ApprovalError, match="nowhere.html does not exist"):
        approve_model(NAME, version, approver="A. Chair", report_path=missing)
    other = tmp_path / "other.html"
    other.write_text('<meta name="earlysignal-model" content="toy-model/7">', encoding="utf-8")
    with pytest.raises(ApprovalError, match="describes model toy-model/7, not toy-model/1"):
        approve_model(NAME, version, approver="A. Chair", report_path=other)
    assert approval_status(NAME, version) is None


def test_unknown_model_version_and_bad_uri_are_clear_errors(registry: Path) -> None:
    _register_version()
    with pytest.raises(ApprovalError, match="toy-model' version 9 is not in the model registry"):
        approval_status(NAME, 9)
    with pytest.raises(ApprovalError, match="not of the form models:/NAME/VERSION"):
        require_approved("runs:/abc/model")


def test_cli_approve_then_revoke_and_errors_show_without_traceback(registry: Path, report: Path) -> None:
    from typer.testing import CliRunner

    from earlysignal.cli import app

    version = _register_version()
    runner = CliRunner()
    approved = runner.invoke(
        app, ["approve", "--model", NAME, "--version", version, "--approver", "A. Chair", "--report", str(report)]
    )
    assert approved.exit_code == 0, approved.output
    assert approval_status(NAME, version).is_approved  # type: ignore[union-attr]

    revoked = runner.invoke(
        app, ["revoke", "--model", NAME, "--version", version, "--by", "B. Officer", "--reason", "board decision"]
    )
    assert revoked.exit_code == 0, revoked.output
    assert approval_status(NAME, version).status == "revoked"  # type: ignore[union-attr]

    missing = runner.invoke(
        app, ["approve", "--model", NAME, "--version", "5", "--approver", "A. Chair", "--report", str(report)]
    )
    assert missing.exit_code == 2
    assert "version 5 is not in the model registry" in missing.output
    assert "Traceback" not in missing.output


def test_approval_records_the_criterion_and_findings_from_the_audit_beside_the_report(
    registry: Path, report: Path
) -> None:
    import json

    version = _register_version()
    audit = {
        "model": {"name": NAME, "version": version},
        "summary": {"criterion": {"met": False}},
        "fairness": {"findings": [{"text": "a"}, {"text": "b"}]},
    }
    (report.parent / "audit.json").write_text(json.dumps(audit), encoding="utf-8")
    record = approve_model(NAME, version, approver="A. Chair", report_path=report)
    assert (record.criterion, record.findings) == ("not met", 2)
    assert approval_status(NAME, version) == record

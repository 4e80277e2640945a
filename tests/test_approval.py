"""The approval gate: only a signed, chained, untampered approval of an audited version lets a model score.

Each way of forging, replaying or erasing an approval is a test here, and each must make the gate refuse
with a message naming the check that failed.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from earlysignal.approval import (
    approval_status,
    approve_model,
    model_artifact_sha256,
    protected_report_paths,
    record_audit_report,
    require_approved,
    revoke_approval,
)
from earlysignal.config import ApprovalSection, ApproverEntry, load_config, packaged_config_path
from earlysignal.errors import ApprovalError
from earlysignal.fingerprint import file_sha256
from earlysignal.ledger import (
    DEMO_APPROVER_NAME,
    Ledger,
    archive_path,
    ensure_demo_key,
    entry_hash,
    generate_key_pair,
    load_private_key,
    signing_payload,
)
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
    folder = tmp_path_factory.mktemp("approval-mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        use_experiment("approval-tests")
        yield folder


@pytest.fixture()
def registry(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The module's MLflow store and an empty approval ledger; the toy model is deleted after each test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.setenv("EARLYSIGNAL_APPROVAL_STORE", str(tmp_path / "approval"))
    use_experiment("approval-tests")
    yield store
    client = mlflow.MlflowClient()
    if client.search_registered_models(filter_string=f"name='{NAME}'"):
        client.delete_registered_model(NAME)


@pytest.fixture()
def ledger_dir(registry: Path, tmp_path: Path) -> Path:
    return tmp_path / "approval"


@pytest.fixture()
def chair_key(tmp_path: Path) -> Path:
    private, _ = generate_key_pair("A. Chair", tmp_path / "keys")
    return private


@pytest.fixture()
def config(registry: Path, chair_key: Path):
    public = chair_key.with_suffix(".pub").read_text(encoding="utf-8").strip()
    base = load_config(packaged_config_path())
    approvers = (ApproverEntry(name="A. Chair", role="Chair of the Board", public_key=public),)
    return base.model_copy(update={"approval": ApprovalSection(approvers=approvers, trust_demo_key=False)})


def _audit(config, version: str, folder: Path, verdict: str = "NOT MET") -> Path:
    """What `earlysignal audit` leaves: a report and audit.json for the version, archived and recorded."""
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / "audit.html"
    html.write_text(f"<html><body>{NAME} version {version}: criterion {verdict}</body></html>", encoding="utf-8")
    audit = {
        "model": {"name": NAME, "version": version},
        "summary": {"criterion": {"met": verdict == "MET"}},
        "fairness": {"findings": [{"text": "a"}, {"text": "b"}]},
    }
    (folder / "audit.json").write_text(json.dumps(audit), encoding="utf-8")
    record_audit_report(config, NAME, version, html, folder / "audit.json")
    return html


def _approved_version(config, chair_key: Path, tmp_path: Path) -> tuple[str, Path]:
    version = _register_version()
    report = _audit(config, version, tmp_path / f"audit-v{version}")
    approve_model(NAME, version, report_path=report, key_path=chair_key, config=config, note="board 12 Nov")
    return version, report


def _rewrite_ledger(ledger_dir: Path, entries: list[dict]) -> None:
    """An attacker with write access to the store: rewrite the ledger and its head consistently."""
    ledger = Ledger(ledger_dir)
    ledger.path.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    ledger.head_path.write_text(json.dumps({"entries": len(entries), "head": entry_hash(entries[-1])}))


# --- what an approval records ---------------------------------------------------------------------------


def test_approval_appends_a_signed_entry_archives_the_report_read_only_and_sets_champion(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    version, report = _approved_version(config, chair_key, tmp_path)

    (entry,) = Ledger(ledger_dir).entries()
    assert entry["action"] == "approve" and entry["seq"] == 0 and entry["prev"] == "0" * 64
    assert (entry["model_name"], entry["model_version"], entry["approver"]) == (NAME, version, "A. Chair")
    assert entry["report_sha256"] == file_sha256(report)
    assert entry["model_sha256"] == model_artifact_sha256((NAME, version))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["at"])
    public = load_private_key(chair_key).public_key()
    import base64

    public.verify(base64.b64decode(entry["signature"]), signing_payload(entry))  # raises if not signed by the chair

    archived = archive_path(ledger_dir, entry["report_sha256"])
    assert archived.read_bytes() == report.read_bytes()
    assert stat.S_IMODE(archived.stat().st_mode) & 0o222 == 0
    assert str(mlflow.MlflowClient().get_model_version_by_alias(NAME, "champion").version) == version

    record = require_approved(f"models:/{NAME}@champion", config)
    assert (record.approver, record.role, record.note) == ("A. Chair", "Chair of the Board", "board 12 Nov")
    assert (record.criterion, record.findings) == ("not met", 2)
    assert require_approved(f"models:/{NAME}/{version}", config) == record == approval_status(NAME, version, config)


def test_approve_accepts_only_the_report_audit_wrote_for_that_exact_version(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    first = _register_version()
    first_report = _audit(config, first, tmp_path / "v1")
    second = _register_version()
    _audit(config, second, tmp_path / "v2")
    empty = tmp_path / "empty.html"
    empty.write_bytes(b"")
    edited = tmp_path / "edited.html"
    edited.write_text(first_report.read_text().replace("NOT MET", "MET"), encoding="utf-8")

    with pytest.raises(ApprovalError, match=f"is the audit of {NAME} version 1, not version 2"):
        approve_model(NAME, second, report_path=first_report, key_path=chair_key, config=config)
    for wrong in (empty, edited, Path("/etc/hostname") if Path("/etc/hostname").is_file() else empty):
        with pytest.raises(ApprovalError, match=f"is not a report `earlysignal audit` wrote for {NAME} version 1"):
            approve_model(NAME, first, report_path=wrong, key_path=chair_key, config=config)
    assert Ledger(ledger_dir).entries() == []
    assert approval_status(NAME, first, config) is None


def test_a_key_not_listed_in_config_cannot_approve(config, tmp_path: Path) -> None:
    version = _register_version()
    report = _audit(config, version, tmp_path / "v1")
    stranger, _ = generate_key_pair("Someone Else", tmp_path / "other-keys")
    with pytest.raises(ApprovalError, match=r"is not listed in approval.approvers in the config"):
        approve_model(NAME, version, report_path=report, key_path=stranger, config=config)


def test_approver_name_must_match_the_keys_configured_owner(config, chair_key: Path, tmp_path: Path) -> None:
    version = _register_version()
    report = _audit(config, version, tmp_path / "v1")
    with pytest.raises(ApprovalError, match="does not match the owner of key .* lists it as 'A. Chair'"):
        approve_model(NAME, version, report_path=report, key_path=chair_key, config=config, approver="B. Officer")


# --- the gate refuses every forgery, naming the check -----------------------------------------------------


def test_registry_tags_and_alias_written_through_mlflow_do_not_pass_the_gate(config, ledger_dir: Path) -> None:
    version = _register_version()
    client = mlflow.MlflowClient()
    for key, value in {"status": "approved", "approver": "Forger", "model_sha256": "x", "report_sha256": "y"}.items():
        client.set_model_version_tag(NAME, version, f"approval.{key}", value)
    client.set_registered_model_alias(NAME, "champion", version)

    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}@champion", config)
    assert str(caught.value).startswith(
        f"model {NAME} version 1 has not been approved for scoring: the approval ledger "
        f"{ledger_dir / 'ledger.jsonl'} has no signed approval of it (registry tags and aliases do not count)."
    )


def test_deleting_an_entry_from_the_middle_of_the_ledger_fails_the_chain_check(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    first, _ = _approved_version(config, chair_key, tmp_path)
    revoke_approval(NAME, first, reason="drift", key_path=chair_key, config=config)
    second, _ = _approved_version(config, chair_key, tmp_path)
    entries = Ledger(ledger_dir).entries()
    _rewrite_ledger(ledger_dir, [entries[0], entries[2]])  # the revocation of version 1 is gone

    with pytest.raises(ApprovalError, match=r"^chain check failed: entry 2 of .* has seq 2, expected 1"):
        require_approved(f"models:/{NAME}/{second}", config)


def test_cutting_the_last_entry_fails_the_head_check_even_when_the_head_file_is_rewritten(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    version, _ = _approved_version(config, chair_key, tmp_path)
    revoke_approval(NAME, version, reason="drift", key_path=chair_key, config=config)
    ledger = Ledger(ledger_dir)
    first = ledger.entries()[0]
    ledger.path.write_text(json.dumps(first) + "\n", encoding="utf-8")

    with pytest.raises(ApprovalError, match=r"^head check failed: the ledger once had 2 entries"):
        require_approved(f"models:/{NAME}/{version}", config)
    # The registry's checkpoint is a second witness when the head file is rewritten to match.
    _rewrite_ledger(ledger_dir, [first])
    with pytest.raises(ApprovalError, match=r"^head check failed: the ledger once had 2 entries"):
        require_approved(f"models:/{NAME}/{version}", config)


def test_editing_the_archived_report_fails_the_report_check(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    version, report = _approved_version(config, chair_key, tmp_path)
    archived = archive_path(ledger_dir, file_sha256(report))
    os.chmod(archived, 0o644)
    archived.write_text(archived.read_text().replace("NOT MET", "MET"), encoding="utf-8")

    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}@champion", config)
    assert str(caught.value).startswith(
        f"report check failed: the archived audit report {archived} hashes to {file_sha256(archived)[:12]}, "
        f"not the approved {file_sha256(report)[:12]}; it was edited after approval."
    )


def test_editing_the_archived_audit_json_fails_the_report_check(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    # audit.json holds every number the report shows and the verdict the ledger entry summarises:
    # an approval covers it as much as the HTML.
    version, report = _approved_version(config, chair_key, tmp_path)
    entry = Ledger(ledger_dir).entries()[-1]
    archived = archive_path(ledger_dir, entry["audit_json_sha256"], ".json")
    os.chmod(archived, 0o644)
    audit = json.loads(archived.read_text(encoding="utf-8"))
    audit["summary"]["criterion"]["met"] = True
    archived.write_text(json.dumps(audit), encoding="utf-8")

    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}@champion", config)
    assert str(caught.value).startswith(
        f"report check failed: the archived audit.json {archived} hashes to {file_sha256(archived)[:12]}, "
        f"not the approved {entry['audit_json_sha256'][:12]}"
    )
    archived.unlink()
    with pytest.raises(ApprovalError, match=r"^report check failed: the approved audit.json .* is missing"):
        require_approved(f"models:/{NAME}@champion", config)


def test_replaying_another_versions_approval_fails_the_signature_check(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    _approved_version(config, chair_key, tmp_path)
    second = _register_version()
    (approval,) = Ledger(ledger_dir).entries()
    replay = {**approval, "model_version": second, "model_sha256": model_artifact_sha256((NAME, second)),
              "seq": 1, "prev": entry_hash(approval)}
    _rewrite_ledger(ledger_dir, [approval, replay])
    mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", second)

    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}@champion", config)
    assert str(caught.value) == (
        f"signature check failed: ledger entry 2 (approve {NAME} version 2) does not carry a valid signature by "
        "A. Chair's key; the entry was edited after it was signed (or copied from another entry)"
    )


def test_an_entry_signed_by_a_key_not_in_config_fails_the_signature_check(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    version = _register_version()
    report = _audit(config, version, tmp_path / "v1")
    stranger, _ = generate_key_pair("Forger", tmp_path / "forger")
    Ledger(ledger_dir).append(
        {"action": "approve", "model_name": NAME, "model_version": version, "approver": "A. Chair",
         "model_sha256": model_artifact_sha256((NAME, version)), "report_sha256": file_sha256(report)},
        load_private_key(stranger),
    )
    with pytest.raises(ApprovalError, match=(
        r"^signature check failed: ledger entry 1 \(approve toy-model version 1\) is signed by key [0-9a-f]{16}\.\.\., "
        r"which is not listed in approval.approvers in the config"
    )):
        require_approved(f"models:/{NAME}/{version}", config)


def test_a_revocation_is_final_and_a_later_approval_is_refused(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    version, report = _approved_version(config, chair_key, tmp_path)
    record = revoke_approval(NAME, version, reason="drift above threshold", key_path=chair_key, config=config)
    assert (record.status, record.revoked_by, record.revoke_reason) == ("revoked", "A. Chair", "drift above threshold")
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.MlflowClient().get_model_version_by_alias(NAME, "champion")

    with pytest.raises(ApprovalError, match="was revoked by A. Chair at .* a revocation is final"):
        approve_model(NAME, version, report_path=report, key_path=chair_key, config=config)
    assert [e["action"] for e in Ledger(ledger_dir).entries()] == ["approve", "revoke"]
    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}/{version}", config)
    assert str(caught.value) == (
        f"model {NAME} version 1 is not approved: its approval was revoked by A. Chair at {record.revoked_at} "
        f"(drift above threshold). Score with an approved champion (models:/{NAME}@champion) or audit and "
        "approve a new version."
    )


def test_an_approved_version_that_is_no_longer_the_ledgers_champion_is_refused(
    config, chair_key: Path, tmp_path: Path
) -> None:
    first, _ = _approved_version(config, chair_key, tmp_path)
    second, _ = _approved_version(config, chair_key, tmp_path)
    require_approved(f"models:/{NAME}/{second}", config)
    mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", first)  # the alias is no authority
    with pytest.raises(ApprovalError, match=r"version 1 is not the approved champion \(the ledger's champion is version 2\)"):
        require_approved(f"models:/{NAME}@champion", config)


def test_a_model_whose_files_changed_after_approval_is_refused(
    config, chair_key: Path, registry: Path, tmp_path: Path
) -> None:
    version, _ = _approved_version(config, chair_key, tmp_path)
    approved = approval_status(NAME, version, config)
    source = mlflow.MlflowClient().get_model_version(NAME, version).source.removeprefix("models:/")
    (folder,) = [p for p in registry.rglob(source) if p.is_dir()]
    with open(folder / "artifacts" / "MLmodel", "a", encoding="utf-8") as handle:
        handle.write("# edited after approval\n")

    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}@champion", config)
    assert str(caught.value) == (
        f"model {NAME} version 1 has changed since it was approved: its artefact files hash to "
        f"{model_artifact_sha256((NAME, version))[:12]}, not the approved {approved.model_sha256[:12]}. Do not score "
        "with it; find out who changed the files, then re-register, re-audit and approve the model again."
    )


def test_reauditing_never_overwrites_an_approved_report(config, chair_key: Path, tmp_path: Path) -> None:
    version, report = _approved_version(config, chair_key, tmp_path)
    new_html = "<html>re-audit, now showing the approval</html>"
    html_path, json_path = protected_report_paths(config, report.parent, new_html)
    assert html_path.parent == report.parent and re.fullmatch(r"audit-[0-9a-f]{12}\.html", html_path.name)
    assert json_path.name == html_path.name.replace(".html", ".json")
    unapproved = tmp_path / "fresh"
    assert protected_report_paths(config, unapproved, new_html) == (unapproved / "audit.html", unapproved / "audit.json")


# --- the demo's own key, keys and the command line ---------------------------------------------------------


def test_demo_key_approves_only_when_the_config_trusts_it_and_is_labelled_demo(
    config, ledger_dir: Path, tmp_path: Path
) -> None:
    version = _register_version()
    report = _audit(config, version, tmp_path / "v1")
    demo_key = ensure_demo_key(ledger_dir)
    assert stat.S_IMODE(demo_key.stat().st_mode) == 0o600
    with pytest.raises(ApprovalError, match="is not listed in approval.approvers"):
        approve_model(NAME, version, report_path=report, key_path=demo_key, config=config)

    trusting = config.model_copy(update={"approval": config.approval.model_copy(update={"trust_demo_key": True})})
    record = approve_model(NAME, version, report_path=report, key_path=demo_key, config=trusting)
    assert (record.approver, record.role, record.demo) == (DEMO_APPROVER_NAME, "demo", True)
    assert require_approved(f"models:/{NAME}@champion", trusting).demo is True
    # Turning trust off removes the demo key from the pinned set: the gate says so before any signature.
    with pytest.raises(ApprovalError, match=r"^approver-set check failed: .* added in the config: none; removed: "
                       r"[0-9a-f]{16}\.\.\."):
        require_approved(f"models:/{NAME}@champion", config)


def test_the_demo_signs_its_labelled_approval_with_a_key_it_makes_beside_the_ledger(
    config, ledger_dir: Path, tmp_path: Path
) -> None:
    from earlysignal.demo import DEMO_NOTE, demo_approve

    version = _register_version()
    report = _audit(config, version, tmp_path / "v1")
    with pytest.raises(ApprovalError, match="approval.trust_demo_key is false in this config"):
        demo_approve(config, NAME, version, report)
    assert not (ledger_dir / "demo").exists()

    trusting = config.model_copy(update={"approval": config.approval.model_copy(update={"trust_demo_key": True})})
    key = demo_approve(trusting, NAME, version, report)
    assert key == ledger_dir / "demo" / "demo-approver.key"
    record = require_approved(f"models:/{NAME}@champion", trusting)
    assert (record.approver, record.role, record.demo, record.note) == (DEMO_APPROVER_NAME, "demo", True, DEMO_NOTE)


def test_keys_writes_a_private_key_readable_only_by_its_owner_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from earlysignal.cli import app

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home-config"))
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "--name", "Jane Smith, DCS"])
    assert made.exit_code == 0, made.output
    private = tmp_path / "home-config" / "earlysignal" / "keys" / "jane-smith-dcs.key"
    public = private.with_suffix(".pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("ssh-ed25519 ") and public.read_text().strip().endswith("Jane Smith, DCS")
    assert f'public_key: "{public.read_text().strip()}"' in made.output
    again = runner.invoke(app, ["keys", "--name", "Jane Smith, DCS"])
    assert again.exit_code == 2 and "already exists; a key is never overwritten" in " ".join(again.output.split())


def test_cli_approve_then_revoke_and_errors_show_without_traceback(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    import yaml
    from typer.testing import CliRunner

    from earlysignal.cli import app

    config_path = tmp_path / "borough.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    version = _register_version()
    report = _audit(config, version, tmp_path / "v1")
    runner = CliRunner()
    common = ["--model", NAME, "--version", version, "--key", str(chair_key), "--config", str(config_path)]
    approved = runner.invoke(app, ["approve", *common, "--report", str(report)])
    assert approved.exit_code == 0, approved.output
    head = f"1:{entry_hash(Ledger(ledger_dir).entries()[0])}"
    assert f"ledger head   {head}" in approved.output
    assert "success criterion was NOT MET" in approved.output

    revoked = runner.invoke(app, ["revoke", *common, "--reason", "board decision"])
    assert revoked.exit_code == 0, revoked.output
    assert approval_status(NAME, version, config).status == "revoked"  # type: ignore[union-attr]

    again = runner.invoke(app, ["approve", *common, "--report", str(report)])
    said = " ".join(again.output.split())  # rich wraps long messages
    assert again.exit_code == 2 and "a revocation is final" in said and "Traceback" not in said


def test_a_passphrase_protected_key_is_read_only_with_the_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = generate_key_pair("B. Officer", tmp_path, passphrase="correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    monkeypatch.delenv("EARLYSIGNAL_KEY_PASSPHRASE", raising=False)
    with pytest.raises(ApprovalError, match=r"cannot be read .* set EARLYSIGNAL_KEY_PASSPHRASE"):
        load_private_key(private)
    monkeypatch.setenv("EARLYSIGNAL_KEY_PASSPHRASE", "correct horse")
    from earlysignal.ledger import parse_public_key, public_key_text

    assert public_key_text(load_private_key(private).public_key(), "B. Officer") == public.read_text().strip()
    assert public_key_text(parse_public_key(str(public), "test")) == public.read_text().split(" B.")[0]


# --- the resident's explanation reads the same ledger ---------------------------------------------------------


def test_the_explanation_names_who_approved_the_model_and_when_and_a_later_withdrawal(
    config, chair_key: Path, tmp_path: Path
) -> None:
    from caseworker_folder import caseworker_folder
    from journey_world import AS_OF, RESIDENT

    from earlysignal.explanation import write_explanation

    version, _ = _approved_version(config, chair_key, tmp_path)
    folder = caseworker_folder(tmp_path / "caseworker", challenge_contact="Data Protection Officer, dpo@example.org")
    summary = json.loads((folder.scores_dir / "summary.json").read_text(encoding="utf-8"))
    summary.update(model_name=NAME, model_version=version, model_uri=f"models:/{NAME}/{version}", approval_checked=True)
    (folder.scores_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    project = folder.config.model_copy(update={"approval": config.approval})
    approved = approval_status(NAME, version, config)

    files = write_explanation(project, RESIDENT, AS_OF, scores_dir=folder.scores_dir, viewer="DPO", out=tmp_path / "a")
    assert (files.document["approval"]["approver"], files.document["approval"]["approved_at"]) == (
        "A. Chair", approved.approved_at)
    sentence = f"approved for use by A. Chair on {approved.approved_at[:10]}."
    assert sentence in files.markdown.read_text(encoding="utf-8") and sentence in files.html.read_text(encoding="utf-8")

    revoked = revoke_approval(NAME, version, "drift", key_path=chair_key, config=config)
    again = write_explanation(project, RESIDENT, AS_OF, scores_dir=folder.scores_dir, viewer="DPO", out=tmp_path / "b")
    assert f"That approval was later withdrawn by A. Chair on {revoked.revoked_at[:10]}." in again.markdown.read_text(
        encoding="utf-8")


def test_a_claim_added_to_the_last_entry_fails_the_head_check_saying_it_was_edited_not_cut(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    version, _ = _approved_version(config, chair_key, tmp_path)
    ledger = Ledger(ledger_dir)
    entry = {**ledger.entries()[0], "extra_claim": "approved by the full board"}
    ledger.path.write_text(json.dumps(entry) + "\n", encoding="utf-8")
    with pytest.raises(ApprovalError, match=r"^head check failed: entry 1 of .* is not the entry [0-9a-f]{12} "
                       r"recorded there; it was edited, or entries were removed"):
        require_approved(f"models:/{NAME}/{version}", config)
    # With the head file rewritten to match, the registry's checkpoint still witnesses the edit.
    _rewrite_ledger(ledger_dir, [entry])
    with pytest.raises(ApprovalError, match=r"^head check failed: entry 1 of .* it was edited"):
        require_approved(f"models:/{NAME}/{version}", config)


# --- who may approve: the approver set is pinned in the ledger, not only listed in config -----------------


def _with_approvers(config, *entries: tuple[str, Path]):
    approvers = tuple(
        ApproverEntry(name=name, role="Board member", public_key=key.with_suffix(".pub").read_text(encoding="utf-8").strip())
        for name, key in entries
    )
    return config.model_copy(update={"approval": ApprovalSection(approvers=approvers, trust_demo_key=False)})


def test_a_key_added_to_the_config_after_approval_cannot_approve_and_score_refuses_naming_the_check(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    first, _ = _approved_version(config, chair_key, tmp_path)
    intruder, _ = generate_key_pair("Intruder", tmp_path / "intruder")
    edited = _with_approvers(config, ("A. Chair", chair_key), ("Intruder", intruder))
    second = _register_version()
    report = _audit(edited, second, tmp_path / "v2")

    with pytest.raises(ApprovalError, match=(
        r"^approver-set check failed: approval.approvers in the config \(set [0-9a-f]{12}\) is not the approver set "
        r"the ledger pins \(set [0-9a-f]{12}, ledger entry 1\); added in the config: Intruder \([0-9a-f]{16}\.\.\.\); "
        r"removed: none\."
    )):
        approve_model(NAME, second, report_path=report, key_path=intruder, config=edited)
    # The edited config alone stops scoring, even of the version the board approved.
    with pytest.raises(ApprovalError, match=r"^approver-set check failed: approval.approvers in the config"):
        require_approved(f"models:/{NAME}/{first}", edited)

    # Signing the entry by hand (past `approve`) does not help: the ledger itself says the key was never pinned.
    keys = sorted(_key_ids(chair_key, intruder))
    Ledger(ledger_dir).append(
        {"action": "approve", "model_name": NAME, "model_version": second, "approver": "Intruder",
         "model_sha256": model_artifact_sha256((NAME, second)), "report_sha256": file_sha256(report),
         "approver_keys": keys},
        load_private_key(intruder),
    )
    mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", second)
    for scoring_config in (edited, config):
        with pytest.raises(ApprovalError, match=(
            r"^approver-set check failed: ledger entry 2 \(approve\) is signed by key [0-9a-f]{16}\.\.\., which is "
            r"not in the approver set pinned by ledger entry 1 \(set [0-9a-f]{12}\)"
        )):
            require_approved(f"models:/{NAME}@champion", scoring_config)


def _key_ids(*private_paths: Path) -> list[str]:
    from earlysignal.ledger import key_id

    return [key_id(load_private_key(p).public_key()) for p in private_paths]


def test_a_new_approver_counts_once_a_pinned_approver_signs_the_new_list(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    from earlysignal.approval import sign_approver_set
    from earlysignal.ledger import approver_pin

    _approved_version(config, chair_key, tmp_path)
    deputy, _ = generate_key_pair("B. Deputy", tmp_path / "deputy")
    edited = _with_approvers(config, ("A. Chair", chair_key), ("B. Deputy", deputy))
    with pytest.raises(ApprovalError, match=r"^approver-set check failed: the key .* \(B. Deputy\) is not in the "
                       r"approver set the ledger pins; only an approver already pinned can sign"):
        sign_approver_set(edited, deputy, reason="new deputy")

    entry = sign_approver_set(edited, chair_key, reason="B. Deputy joins, board of 12 Nov")
    assert entry["seq"] == 1 and entry["approver_keys"] == sorted(_key_ids(chair_key, deputy))
    assert approver_pin(Ledger(ledger_dir).entries()).seq == 1

    second = _register_version()
    report = _audit(edited, second, tmp_path / "v2")
    record = approve_model(NAME, second, report_path=report, key_path=deputy, config=edited)
    assert (record.approver, record.ledger_seq) == ("B. Deputy", 2)
    assert require_approved(f"models:/{NAME}/{second}", edited).approver == "B. Deputy"
    # The config from before the change no longer matches the pinned set.
    with pytest.raises(ApprovalError, match=r"added in the config: none; removed: [0-9a-f]{16}\.\.\."):
        require_approved(f"models:/{NAME}/{second}", config)


def test_ledger_messages_number_entries_from_one_like_the_head(
    config, chair_key: Path, ledger_dir: Path, tmp_path: Path
) -> None:
    version, _ = _approved_version(config, chair_key, tmp_path)
    revoke_approval(NAME, version, reason="drift", key_path=chair_key, config=config)
    ledger = Ledger(ledger_dir)
    first, second = ledger.entries()
    assert ledger.head() == (2, entry_hash(second))  # two entries: the revocation is entry 2 (seq 1)
    _rewrite_ledger(ledger_dir, [first, {**second, "prev": "f" * 64}])
    with pytest.raises(ApprovalError) as caught:
        require_approved(f"models:/{NAME}/{version}", config)
    assert str(caught.value) == (
        f"chain check failed: entry 2 of {ledger.path} does not link to the entry before it; "
        "an entry before it was removed, edited or reordered"
    )


def test_keys_prints_the_public_key_line_unbroken_so_it_can_be_pasted_into_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from earlysignal.cli import app

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home-config"))
    monkeypatch.setenv("COLUMNS", "120")
    made = CliRunner().invoke(app, ["keys", "--name", "Ada Board, Director of Children's Services"])
    assert made.exit_code == 0, made.output
    public = tmp_path / "home-config" / "earlysignal" / "keys" / "ada-board-director-of-children-s-services.pub"
    assert f'    public_key: "{public.read_text().strip()}"\n' in made.output


def test_keys_suggests_the_name_and_the_role_apart_as_approval_approvers_wants_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from typer.testing import CliRunner

    from earlysignal.cli import app
    from earlysignal.config import ApproverEntry

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home-config"))
    monkeypatch.setenv("COLUMNS", "200")
    made = CliRunner().invoke(app, ["keys", "--name", "Ada Board: Chair, Director of Children's Services"])
    assert made.exit_code == 0, made.output
    lines = made.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  - name: "))
    suggested = yaml.safe_load("\n".join(lines[start : start + 3]))
    entry = ApproverEntry(**suggested[0])
    assert (entry.name, entry.role) == ("Ada Board: Chair", "Director of Children's Services")
    assert entry.public_key.startswith("ssh-ed25519 ")

    alone = CliRunner().invoke(app, ["keys", "--name", "Riverside output checker"])
    assert alone.exit_code == 0, alone.output
    assert '  - name: "Riverside output checker"\n    role: "..."\n' in alone.output

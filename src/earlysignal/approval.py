"""The approval gate: a named person approves one registered model version, after reading its audit.

The source of truth is the project's own signed ledger (earlysignal.ledger): `audit` archives the
report it wrote for a version and records its SHA-256; `approve` accepts only that report, and
appends an entry signed with the approver's Ed25519 key (who, when, the report's and the model
artefact's SHA-256); `revoke` appends a signed revocation, which is final for that version.
Registry tags and the `champion` alias are set too, for people browsing MLflow, but nothing
trusts them: `require_approved` checks the chain, every signature against `approval.approvers`,
the archived report's hash and the model's files before anything is scored.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earlysignal.errors import ApprovalError
from earlysignal.fingerprint import directory_sha256, file_sha256

if TYPE_CHECKING:
    from earlysignal.config import ProjectConfig
    from earlysignal.ledger import Approver

CHAMPION_ALIAS = "champion"
TAG_PREFIX = "approval."
CHECKPOINT_TAG = "approval.ledger_checkpoint"
STATUS_APPROVED = "approved"
STATUS_REVOKED = "revoked"

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$")


@dataclass(frozen=True)
class ApprovalRecord:
    """What the signed ledger says about one version's approval."""

    model_name: str
    model_version: str
    status: str  # "approved" or "revoked"
    approver: str
    approved_at: str  # ISO 8601, UTC
    report_sha256: str
    model_sha256: str
    note: str | None = None
    report_path: str | None = None  # the archived copy: <approval.store>/archive/<report_sha256>.html
    revoked_by: str | None = None
    revoked_at: str | None = None
    revoke_reason: str | None = None
    # What the approver accepted, from the archived audit.json of that report: "met" / "not met", and
    # how many fairness findings the report flagged.
    criterion: str | None = None
    findings: int | None = None
    role: str = ""
    key_id: str = ""
    ledger_seq: int | None = None
    demo: bool = False

    @property
    def is_approved(self) -> bool:
        """True while the approval stands (not revoked)."""
        return self.status == STATUS_APPROVED

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON and reports."""
        return asdict(self)


def _client() -> Any:
    from mlflow import MlflowClient

    from earlysignal.tracking import configure_tracking

    # The project's one rule for where the registry is: MLFLOW_TRACKING_URI, else ./mlruns.
    configure_tracking()
    return MlflowClient()


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """Split models:/name/3 or models:/name@alias into (name, version, alias)."""
    match = _MODEL_URI.match(model_uri.strip())
    if not match:
        raise ApprovalError(
            f"model URI {model_uri!r} is not of the form models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    return match.group("name"), match.group("version"), match.group("alias")


def resolve_model_version(model_uri: str) -> tuple[str, str]:
    """The (name, version) a models:/ URI points to now; an alias is looked up in the registry."""
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_model_uri(model_uri)
    client = _client()
    try:
        if alias is not None:
            return name, str(client.get_model_version_by_alias(name, alias).version)
        client.get_model_version(name, version)
    except MlflowException as error:
        target = f"alias @{alias}" if alias is not None else f"version {version}"
        raise ApprovalError(
            f"model {name!r} has no {target} in the registry ({error.message.splitlines()[0]}); "
            "check the name and version with the MLflow UI or `mlflow models` and try again"
        ) from None
    return name, str(version)


def _get_version(name: str, version: str | int) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version(name, str(version))
    except MlflowException:
        raise ApprovalError(
            f"model {name!r} version {version} is not in the model registry; "
            "check the name and version (train registers new versions)"
        ) from None


def model_artifact_sha256(model: str | tuple[str, str | int]) -> str:
    """SHA-256 over the files of a registered model version (a models:/ URI or (name, version))."""
    import mlflow

    from earlysignal.tracking import configure_tracking, quiet_downloads

    configure_tracking()
    if isinstance(model, str):
        name, version = resolve_model_version(model)
    else:
        name, version = model[0], str(model[1])
        _get_version(name, version)
    with tempfile.TemporaryDirectory(prefix="earlysignal-approval-") as tmp:
        # Download into a fresh folder so a remote store and a local one hash the same way.
        with quiet_downloads():
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        return directory_sha256(local)


def _now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


STORE_ENV = "EARLYSIGNAL_APPROVAL_STORE"


def store_dir(config: ProjectConfig) -> Path:
    """The approval store folder: $EARLYSIGNAL_APPROVAL_STORE when set, else `approval.store`."""
    return Path(os.environ.get(STORE_ENV) or config.approval.store)


def configured_approvers(config: ProjectConfig) -> list[Approver]:
    """The people whose signatures count: `approval.approvers`, plus the demo key when trusted and present."""
    from earlysignal.ledger import DEMO_APPROVER_NAME, DEMO_ROLE, Approver, demo_public_key_path, parse_public_key

    approvers = [
        Approver(entry.name, entry.role, parse_public_key(entry.public_key, f"approval.approvers[{index}].public_key"))
        for index, entry in enumerate(config.approval.approvers)
    ]
    demo_key = demo_public_key_path(store_dir(config))
    if config.approval.trust_demo_key and demo_key.is_file():
        approvers.append(
            Approver(DEMO_APPROVER_NAME, DEMO_ROLE, parse_public_key(str(demo_key), str(demo_key)), demo=True)
        )
    return approvers


def check_config_against_pin(config: ProjectConfig, entries: list[dict[str, Any]]) -> None:
    """Refuse when the config's approvers (approval.approvers, plus a trusted demo key) are not the set the
    ledger pins: ApprovalError("approver-set check failed: ...") naming the keys added or removed."""
    from earlysignal.ledger import approver_pin, approver_set_sha256, entry_number

    pin = approver_pin(entries)
    if pin is None:
        return
    approvers = configured_approvers(config)
    listed = {a.key_id: a.name for a in approvers}
    if set(listed) == pin.keys:
        return
    added = [f"{listed[k]} ({k[:16]}...)" for k in sorted(set(listed) - pin.keys)]
    removed = [f"{k[:16]}..." for k in sorted(pin.keys - set(listed))]
    raise ApprovalError(
        f"approver-set check failed: approval.approvers in the config (set {approver_set_sha256(listed)[:12]}) is "
        f"not the approver set the ledger pins (set {pin.sha256[:12]}, ledger entry {entry_number(pin.seq)}); "
        f"added in the config: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}. Who may "
        "approve is changed only by an approver already pinned signing the new list "
        "(earlysignal approvers --key PATH --reason ...); otherwise restore the config"
    )


def record_audit_report(
    config: ProjectConfig, name: str, version: str | int, html_path: str | Path, json_path: str | Path
) -> str:
    """Archive an audit report (and its audit.json) and record its SHA-256 as an audit of (name, version)."""
    from earlysignal.ledger import record_audit

    return record_audit(store_dir(config), name, str(version), Path(html_path), Path(json_path), _now_utc())


def protected_report_paths(config: ProjectConfig, folder: str | Path, html: str) -> tuple[Path, Path]:
    """Where `audit` writes (report, audit.json) in folder: audit.html / audit.json, unless the audit.html
    there is a report someone approved; then audit-<sha12>.html / .json, so an approved report is never
    overwritten."""
    from earlysignal.ledger import Ledger

    folder = Path(folder)
    html_path, json_path = folder / "audit.html", folder / "audit.json"
    if html_path.is_file():
        existing = file_sha256(html_path)
        approved = {e.get("report_sha256") for e in Ledger(store_dir(config)).entries() if e.get("action") == "approve"}
        if existing in approved:
            import hashlib

            short = hashlib.sha256(html.encode("utf-8")).hexdigest()[:12]
            return folder / f"audit-{short}.html", folder / f"audit-{short}.json"
    return html_path, json_path


def _registry_checkpoints(name: str) -> list[tuple[int, str]]:
    """The ledger length and head hash last recorded on the registered model, if any (a second witness)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = _client().get_registered_model(name).tags or {}
    except MlflowException:
        return []
    value = tags.get(CHECKPOINT_TAG, "")
    count, _, digest = value.partition(":")
    return [(int(count), digest)] if count.isdigit() and digest else []


def _verified_entries(
    config: ProjectConfig, name: str, against_pin: bool = False, version: str | None = None
) -> tuple[list[dict[str, Any]], dict[int, Approver]]:
    """The ledger's entries after the chain and head checks, and the verified signer of each entry for `name`.

    With `against_pin` (the gate and signing), the config's approvers must also be the set the ledger pins;
    with `version` too (the gate), only when the ledger holds an approval of that version to trust (else the
    gate's own "has not been approved" says more)."""
    from earlysignal.ledger import Ledger, approver_pin, entry_number, verify_signature

    ledger = Ledger(store_dir(config))
    entries = ledger.verify_chain(checkpoints=_registry_checkpoints(name))
    approver_pin(entries)  # every entry signed inside the approver set pinned when it was written
    if against_pin and (version is None or any(
        e.get("action") == "approve" and e.get("model_name") == name and str(e.get("model_version")) == version
        for e in entries
    )):
        check_config_against_pin(config, entries)
    approvers = configured_approvers(config)
    signers = {}
    for entry in entries:
        if entry.get("model_name") == name:
            where = (f"ledger entry {entry_number(entry['seq'])} ({entry.get('action')} {name} version "
                     f"{entry.get('model_version')})")
            signers[entry["seq"]] = verify_signature(entry, approvers, where)
    return entries, signers


def _record_from(entries: list[dict[str, Any]], signers: dict[int, Approver], name: str, version: str,
                 store: Path) -> ApprovalRecord | None:
    from earlysignal.ledger import archive_path

    mine = [e for e in entries if e.get("model_name") == name and str(e.get("model_version")) == version]
    approvals = [e for e in mine if e.get("action") == "approve"]
    if not approvals:
        return None
    # The latest approval counts (a version may be re-approved on a newer audit); any revocation is final.
    approval = approvals[-1]
    revocation = next((e for e in mine if e.get("action") == "revoke"), None)
    signer = signers[approval["seq"]]
    return ApprovalRecord(
        model_name=name,
        model_version=version,
        status=STATUS_REVOKED if revocation else STATUS_APPROVED,
        approver=signer.name,
        approved_at=str(approval.get("at", "")),
        report_sha256=str(approval.get("report_sha256", "")),
        model_sha256=str(approval.get("model_sha256", "")),
        note=approval.get("note"),
        report_path=str(archive_path(store, str(approval.get("report_sha256", "")))),
        revoked_by=signers[revocation["seq"]].name if revocation else None,
        revoked_at=str(revocation.get("at")) if revocation else None,
        revoke_reason=revocation.get("reason") if revocation else None,
        criterion=approval.get("criterion"),
        findings=approval.get("findings"),
        role=signer.role,
        key_id=signer.key_id,
        ledger_seq=int(approval["seq"]),
        demo=signer.demo,
    )


def approval_status(name: str, version: str | int, config: ProjectConfig | None = None) -> ApprovalRecord | None:
    """The version's approval as the verified ledger has it, or None if it was never approved.

    Raises ApprovalError when the ledger fails a check (chain, head, signature).
    """
    from earlysignal.config import load_config

    config = config if config is not None else load_config()
    _get_version(name, version)
    entries, signers = _verified_entries(config, name)
    return _record_from(entries, signers, name, str(version), store_dir(config))


def _signer_for(config: ProjectConfig, private_key: Any, key_path: Path) -> Approver:
    from earlysignal.ledger import key_id

    wanted = key_id(private_key.public_key())
    signer = next((a for a in configured_approvers(config) if a.key_id == wanted), None)
    if signer is None:
        raise ApprovalError(
            f"the key {key_path} (key id {wanted[:16]}...) is not listed in approval.approvers in the config; "
            "only a configured approver can sign. Add its public key line (the .pub file beside it) to "
            "approval.approvers with the person's name and role"
        )
    return signer


def _audit_summary(store: Path, audit_json_sha: str | None, name: str, version: str) -> tuple[str | None, int | None]:
    """Criterion verdict and number of findings from the archived audit.json of the approved report."""
    from earlysignal.ledger import archive_path

    if not audit_json_sha:
        return None, None
    path = archive_path(store, audit_json_sha, ".json")
    try:
        audit = json.loads(path.read_text(encoding="utf-8"))
        model = audit["model"]
        if (str(model["name"]), str(model["version"])) != (name, version):
            return None, None
        met = audit["summary"]["criterion"].get("met")
        verdict = None if met is None else ("met" if met else "not met")
        return verdict, len(audit["fairness"]["findings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def approve_model(
    name: str,
    version: str | int,
    report_path: str | Path,
    key_path: str | Path,
    config: ProjectConfig,
    note: str | None = None,
    approver: str | None = None,
) -> ApprovalRecord:
    """Sign and record an approval of a model version after its audit, and make it the champion.

    The report must be one `earlysignal audit` wrote for exactly this version (its SHA-256 is in
    the audit index); it is archived read-only. `approver`, when given, must be the configured
    name of the key's owner. Raises ApprovalError for a report, key, version or revoked version
    that does not qualify.
    """
    from earlysignal.ledger import Ledger, archive_file, audits_for, load_private_key, version_of_report

    version = str(version)
    store = store_dir(config)
    key_path = Path(key_path)
    private_key = load_private_key(key_path)
    signer = _signer_for(config, private_key, key_path)
    if approver is not None and approver.strip() != signer.name:
        raise ApprovalError(
            f"--approver {approver!r} does not match the owner of key {key_path}: approval.approvers lists it "
            f"as {signer.name!r}"
        )
    report = Path(report_path)
    if not report.is_file():
        raise ApprovalError(
            f"audit report {report} does not exist; run `earlysignal audit --model models:/{name}/{version}` "
            "and approve with the report it writes"
        )
    _get_version(name, version)
    report_sha = file_sha256(report)
    recorded = audits_for(store, name, version)
    match = next((r for r in recorded if r["report_sha256"] == report_sha), None)
    if match is None:
        other = version_of_report(store, name, report_sha)
        if other is not None:
            raise ApprovalError(
                f"audit report {report} is the audit of {name} version {other}, not version {version}; "
                f"approve with the report `earlysignal audit` wrote for version {version}"
            )
        listed = ", ".join(r["report_sha256"][:12] for r in recorded) or "none"
        raise ApprovalError(
            f"audit report {report} (sha256 {report_sha[:12]}) is not a report `earlysignal audit` wrote for "
            f"{name} version {version} (recorded for it: {listed}); an edited, foreign or empty file cannot be "
            f"approved. Run `earlysignal audit --model models:/{name}/{version}` and approve the report it writes"
        )
    entries, signers = _verified_entries(config, name, against_pin=True)
    current = _record_from(entries, signers, name, version, store)
    if current is not None and not current.is_approved:
        raise ApprovalError(
            f"model {name} version {version} was revoked by {current.revoked_by} at {current.revoked_at} "
            f"({current.revoke_reason}); a revocation is final. Register, audit and approve a new version instead"
        )
    archive_file(store, report, ".html")
    criterion, findings = _audit_summary(store, match.get("audit_json_sha256"), name, version)
    fields = {
        "action": "approve",
        "model_name": name,
        "model_version": version,
        "model_sha256": model_artifact_sha256((name, version)),
        "report_sha256": report_sha,
        "audit_json_sha256": match.get("audit_json_sha256"),
        "approver": signer.name,
        "role": signer.role,
        "at": _now_utc(),
        "note": note,
        "criterion": criterion,
        "findings": findings,
        "approver_keys": sorted(a.key_id for a in configured_approvers(config)),
    }
    ledger = Ledger(store)
    entry = ledger.append(fields, private_key)
    _mirror_to_registry(name, version, entry, ledger)
    record = approval_status(name, version, config)
    assert record is not None
    return record


def revoke_approval(
    name: str, version: str | int, reason: str, key_path: str | Path, config: ProjectConfig, by: str | None = None
) -> ApprovalRecord:
    """Sign and record the end of a version's approval (final), and remove `champion` if it points there."""
    from earlysignal.ledger import Ledger, load_private_key

    version = str(version)
    if not reason or not reason.strip():
        raise ApprovalError("a revocation needs a reason (--reason \"...\"), so the board can see why")
    key_path = Path(key_path)
    private_key = load_private_key(key_path)
    signer = _signer_for(config, private_key, key_path)
    if by is not None and by.strip() != signer.name:
        raise ApprovalError(
            f"--by {by!r} does not match the owner of key {key_path}: approval.approvers lists it as {signer.name!r}"
        )
    current = approval_status(name, version, config)
    if current is None:
        raise ApprovalError(f"model {name!r} version {version} has no approval to revoke")
    if not current.is_approved:
        raise ApprovalError(f"model {name!r} version {version} was already revoked at {current.revoked_at}")
    ledger = Ledger(store_dir(config))
    check_config_against_pin(config, ledger.verify_chain())
    entry = ledger.append(
        {"action": "revoke", "model_name": name, "model_version": version, "approver": signer.name,
         "role": signer.role, "at": _now_utc(), "reason": reason.strip(),
         "approver_keys": sorted(a.key_id for a in configured_approvers(config))},
        private_key,
    )
    _mirror_to_registry(name, version, entry, ledger)
    record = approval_status(name, version, config)
    assert record is not None
    return record


def sign_approver_set(config: ProjectConfig, key_path: str | Path, reason: str) -> dict[str, Any]:
    """Sign the config's approver list into the ledger as the new pinned set; returns the entry written.

    The key must belong to an approver of the set pinned so far (or, before any pin, to one the config
    lists) and be listed in the new set too. Raises ApprovalError otherwise, or without a reason.
    """
    from earlysignal.ledger import (
        APPROVERS_ACTION, Ledger, approver_pin, key_id, load_private_key, public_key_text,
    )

    if not reason or not reason.strip():
        raise ApprovalError("a change of who may approve needs a reason (--reason \"...\"), for the board's minutes")
    key_path = Path(key_path)
    private_key = load_private_key(key_path)
    signer = _signer_for(config, private_key, key_path)
    ledger = Ledger(store_dir(config))
    pin = approver_pin(ledger.verify_chain())
    if pin is not None and signer.key_id not in pin.keys:
        raise ApprovalError(
            f"approver-set check failed: the key {key_path} ({signer.name}) is not in the approver set the ledger "
            "pins; only an approver already pinned can sign a change of who may approve"
        )
    approvers = configured_approvers(config)
    return ledger.append(
        {"action": APPROVERS_ACTION, "approver": signer.name, "role": signer.role, "at": _now_utc(),
         "reason": reason.strip(), "approver_keys": sorted(a.key_id for a in approvers),
         "approver_names": {a.key_id: a.name for a in approvers},
         "signer_public_key": public_key_text(private_key.public_key())},
        private_key,
    )


def _mirror_to_registry(name: str, version: str, entry: dict[str, Any], ledger: Any) -> None:
    """Copy the decision to registry tags and the champion alias (for the MLflow UI; nothing trusts them)."""
    from earlysignal.ledger import entry_hash

    client = _client()
    if entry["action"] == "approve":
        for key in ("approver", "role", "at", "report_sha256", "model_sha256", "note", "criterion", "findings"):
            if entry.get(key) is not None:
                client.set_model_version_tag(name, version, TAG_PREFIX + key, str(entry[key]))
        client.set_model_version_tag(name, version, TAG_PREFIX + "status", STATUS_APPROVED)
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    else:
        client.set_model_version_tag(name, version, TAG_PREFIX + "status", STATUS_REVOKED)
        client.set_model_version_tag(name, version, TAG_PREFIX + "revoked_by", entry["approver"])
        client.set_model_version_tag(name, version, TAG_PREFIX + "revoke_reason", entry["reason"])
        if _champion_version(name) == version:
            client.delete_registered_model_alias(name, CHAMPION_ALIAS)
    client.set_model_version_tag(name, version, TAG_PREFIX + "ledger_seq", str(entry["seq"]))
    # A second witness of the ledger's length: cutting entries from its end then fails the head check.
    client.set_registered_model_tag(name, CHECKPOINT_TAG, f"{entry['seq'] + 1}:{entry_hash(entry)}")


def ledger_champion(entries: list[dict[str, Any]], name: str) -> str | None:
    """The version the ledger makes champion: the latest approved version of `name`, unless it was revoked."""
    approvals = [e for e in entries if e.get("model_name") == name and e.get("action") == "approve"]
    if not approvals:
        return None
    latest = str(approvals[-1]["model_version"])
    revoked = any(
        e.get("action") == "revoke" and e.get("model_name") == name and str(e.get("model_version")) == latest
        for e in entries
    )
    return None if revoked else latest


def _champion_version(name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException:
        return None


def require_approved(model_uri: str, config: ProjectConfig) -> ApprovalRecord:
    """The version's approval, after every check; ApprovalError naming the check that failed.

    Checks, in order: the ledger's chain and head, each signature on this model's entries against
    `approval.approvers`, that the version has an approval that was not revoked, that it is the
    ledger's champion, that the archived report and audit.json still hash to the approved SHA-256, and that
    the model's artefact files still hash to the approved SHA-256.
    """
    from earlysignal.ledger import archive_path

    name, version = resolve_model_version(model_uri)
    entries, signers = _verified_entries(config, name, against_pin=True, version=version)
    store = store_dir(config)
    record = _record_from(entries, signers, name, version, store)
    approve_hint = (
        f'earlysignal approve --model {name} --version {version} --key PATH --report PATH'
    )
    if record is None:
        raise ApprovalError(
            f"model {name} version {version} has not been approved for scoring: the approval ledger "
            f"{store / 'ledger.jsonl'} has no signed approval of it (registry tags "
            f"and aliases do not count). Audit it (earlysignal audit --model models:/{name}/{version}), have the "
            f"board read the report, then approve it: {approve_hint}"
        )
    if not record.is_approved:
        raise ApprovalError(
            f"model {name} version {version} is not approved: its approval was revoked by {record.revoked_by} "
            f"at {record.revoked_at} ({record.revoke_reason}). "
            f"Score with an approved champion (models:/{name}@champion) or audit and approve a new version."
        )
    champion = ledger_champion(entries, name)
    if champion != version:
        current = f"version {champion}" if champion else "no version"
        raise ApprovalError(
            f"model {name} version {version} is not the approved champion (the ledger's champion is {current}). "
            f"Score with models:/{name}@champion, or approve version {version}: {approve_hint}"
        )
    archived = archive_path(store, record.report_sha256)
    if not archived.is_file():
        raise ApprovalError(
            f"report check failed: the approved audit report {archived} is missing from the archive; "
            "restore it from a backup (its name is its SHA-256) before scoring"
        )
    actual_report = file_sha256(archived)
    if actual_report != record.report_sha256:
        raise ApprovalError(
            f"report check failed: the archived audit report {archived} hashes to {actual_report[:12]}, not the "
            f"approved {record.report_sha256[:12]}; it was edited after approval. Do not score; restore it from a "
            "backup and find out who changed it"
        )
    # audit.json holds every number the HTML shows and the verdict the entry summarises: check it the same way.
    approved_json = next((e for e in entries if e.get("seq") == record.ledger_seq), {}).get("audit_json_sha256")
    if approved_json:
        archived_json = archive_path(store, str(approved_json), ".json")
        if not archived_json.is_file():
            raise ApprovalError(
                f"report check failed: the approved audit.json {archived_json} is missing from the archive; "
                "restore it from a backup (its name is its SHA-256) before scoring"
            )
        actual_json = file_sha256(archived_json)
        if actual_json != approved_json:
            raise ApprovalError(
                f"report check failed: the archived audit.json {archived_json} hashes to {actual_json[:12]}, not "
                f"the approved {str(approved_json)[:12]}; it was edited after approval. Do not score; restore it "
                "from a backup and find out who changed it"
            )
    actual = model_artifact_sha256((name, version))
    if actual != record.model_sha256:
        raise ApprovalError(
            f"model {name} version {version} has changed since it was approved: its artefact files hash to "
            f"{actual[:12]}, not the approved {record.model_sha256[:12]}. Do not score with it; "
            "find out who changed the files, then re-register, re-audit and approve the model again."
        )
    return record

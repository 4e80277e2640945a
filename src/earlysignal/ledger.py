"""The approval ledger: append-only, hash-chained, every entry signed with an approver's Ed25519 key.

Files, all under `approval.store` (default `reports/approval/`, git-ignored):

- `ledger.jsonl`: one JSON object per line. Each entry holds `seq` (0, 1, 2...), `prev` (the SHA-256 of
  the previous entry's canonical JSON; 64 zeros for the first), what was decided (`action` approve or
  revoke, model name, version, the model artefact's and the archived report's SHA-256, who, when) and
  `signature`: the approver's Ed25519 signature over the entry without its signature. Removing, editing
  or reordering an entry breaks the chain or a signature.
- `ledger.head`: the number of entries and the hash of the last one, rewritten after each append. A
  ledger cut short at its end still chains, so the head (and the checkpoint tag on the registered
  model) is what shows that entries were removed from the end.
- `archive/<sha256>.html` (and `.json`): every audit report `earlysignal audit` wrote, named by the
  SHA-256 of its bytes and read-only, so an approved report can always be re-checked.
- `audits/<model>/<version>.json`: the SHA-256 of each report `audit` wrote for that version; `approve`
  accepts only one of these.
- `demo/`: the key pair `earlysignal demo` makes for its labelled demo approval.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earlysignal.atomic import write_json, write_text
from earlysignal.errors import ApprovalError
from earlysignal.fingerprint import file_sha256

GENESIS = "0" * 64
LEDGER_NAME = "ledger.jsonl"
HEAD_NAME = "ledger.head"
DEMO_KEY_NAME = "demo-approver"
DEMO_APPROVER_NAME = "DEMO APPROVAL (synthetic data; not a governance decision)"
DEMO_ROLE = "demo"
# Signatures cover this prefix too, so a signature made for some other purpose never verifies here.
_SIGNING_DOMAIN = b"earlysignal-approval-ledger-v1\n"
_SLUG = re.compile(r"[^a-z0-9]+")


# --------------------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Approver:
    """A person allowed to approve, with their public key (32 raw bytes) and its id (SHA-256 hex)."""

    name: str
    role: str
    public_key: Any  # Ed25519PublicKey
    demo: bool = False

    @property
    def key_id(self) -> str:
        """SHA-256 (hex) of the raw 32-byte public key: what ledger entries name."""
        return key_id(self.public_key)


def key_id(public_key: Any) -> str:
    """SHA-256 (hex) of an Ed25519 public key's raw 32 bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_text(public_key: Any, comment: str = "") -> str:
    """The OpenSSH one-line form `ssh-ed25519 AAAA... comment`, as used in config."""
    from cryptography.hazmat.primitives import serialization

    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def parse_public_key(value: str, where: str) -> Any:
    """An Ed25519 public key from OpenSSH text (`ssh-ed25519 AAAA...`), PEM text, or a path to either.

    Raises ApprovalError naming `where` (e.g. the config key) when it is neither or not Ed25519.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = value.strip()
    if not text.startswith(("ssh-ed25519 ", "-----BEGIN")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ApprovalError(
                f"{where}: {value!r} is neither an Ed25519 public key (ssh-ed25519 AAAA...) nor an existing file; "
                "make a key pair with `earlysignal keys --name NAME` and paste its public key line"
            )
        text = path.read_text(encoding="utf-8").strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_ssh_public_key(" ".join(text.split()[:2]).encode())
    except (ValueError, TypeError) as error:
        raise ApprovalError(f"{where}: not a readable public key ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ApprovalError(f"{where}: the key is not an Ed25519 key; make one with `earlysignal keys`")
    return key


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """Read an Ed25519 private key (PEM, PKCS8) written by `earlysignal keys`.

    A passphrase-protected key is read with the passphrase in EARLYSIGNAL_KEY_PASSPHRASE.
    Raises ApprovalError when the file is missing, unreadable or not Ed25519.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path).expanduser()
    if not path.is_file():
        raise ApprovalError(f"private key {path} does not exist; make one with `earlysignal keys --name NAME`")
    passphrase = os.environ.get("EARLYSIGNAL_KEY_PASSPHRASE")
    try:
        key = serialization.load_pem_private_key(
            path.read_bytes(), password=passphrase.encode() if passphrase else None
        )
    except (ValueError, TypeError) as error:
        raise ApprovalError(
            f"private key {path} cannot be read ({error}); if it has a passphrase, set EARLYSIGNAL_KEY_PASSPHRASE"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ApprovalError(f"private key {path} is not an Ed25519 key; make one with `earlysignal keys`")
    return key


def default_key_dir() -> Path:
    """Where `earlysignal keys` writes by default: $XDG_CONFIG_HOME/earlysignal/keys (~/.config/...)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "earlysignal" / "keys"


def key_slug(name: str) -> str:
    """A file name stem for a person's key: 'Jane Smith, DCS' -> 'jane-smith-dcs'."""
    slug = _SLUG.sub("-", name.lower()).strip("-")
    if not slug:
        raise ApprovalError(f"key name {name!r} has no letters or digits to name the key files by")
    return slug


def generate_key_pair(name: str, out_dir: str | os.PathLike[str], passphrase: str | None = None) -> tuple[Path, Path]:
    """Write `<slug>.key` (private, PEM PKCS8, mode 0600) and `<slug>.pub` (OpenSSH line) into out_dir.

    Never overwrites: raises ApprovalError if either file exists. Returns (private path, public path).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder = Path(out_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = key_slug(name)
    private_path, public_path = folder / f"{stem}.key", folder / f"{stem}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise ApprovalError(f"{path} already exists; a key is never overwritten (move it away or pick another name)")
    key = Ed25519PrivateKey.generate()
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    # Created 0600 from the start (not chmod-ed afterwards), so the key is never readable by others.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_text(public_key_text(key.public_key(), name) + "\n", encoding="utf-8")
    return private_path, public_path


def ensure_demo_key(store: str | os.PathLike[str]) -> Path:
    """The demo approver's private key under `<store>/demo/`, made on first use; returns its path."""
    folder = Path(store) / "demo"
    private_path = folder / f"{DEMO_KEY_NAME}.key"
    if not private_path.exists():
        # The demo key pair lives beside the ledger (git-ignored), never in conf/.
        generate_key_pair(DEMO_KEY_NAME, folder)
    return private_path


def demo_public_key_path(store: str | os.PathLike[str]) -> Path:
    """`<store>/demo/demo-approver.pub`."""
    return Path(store) / "demo" / f"{DEMO_KEY_NAME}.pub"


# ------------------------------------------------------------------------------------ entries


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces, UTF-8): what is hashed and signed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_number(seq: int) -> int:
    """The number people read for the entry with this `seq`: entries are counted from 1 in every message
    (the stored `seq` counts from 0, so entry 1 has seq 0), as the head's entry count does."""
    return int(seq) + 1


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 (hex) of an entry's canonical JSON, signature included: the next entry's `prev`."""
    return hashlib.sha256(canonical(entry)).hexdigest()


def signing_payload(entry: dict[str, Any]) -> bytes:
    """The bytes an approver signs: the entry without its signature, canonical, domain-prefixed."""
    return _SIGNING_DOMAIN + canonical({k: v for k, v in entry.items() if k != "signature"})


def sign_entry(entry: dict[str, Any], private_key: Any) -> dict[str, Any]:
    """The entry with `key_id` and a base64 `signature` added."""
    unsigned = {k: v for k, v in entry.items() if k != "signature"}
    unsigned["key_id"] = key_id(private_key.public_key())
    signature = private_key.sign(signing_payload(unsigned))
    return {**unsigned, "signature": base64.b64encode(signature).decode("ascii")}


def verify_signature(entry: dict[str, Any], approvers: Sequence[Approver], where: str) -> Approver:
    """The configured approver whose key signed the entry; ApprovalError naming the failed check otherwise."""
    from cryptography.exceptions import InvalidSignature

    signer = next((a for a in approvers if a.key_id == entry.get("key_id")), None)
    if signer is None:
        raise ApprovalError(
            f"signature check failed: {where} is signed by key {str(entry.get('key_id'))[:16]}..., which is not "
            "listed in approval.approvers in the config; only configured approvers' signatures count"
        )
    try:
        signature = base64.b64decode(str(entry.get("signature", "")), validate=True)
        signer.public_key.verify(signature, signing_payload(entry))
    except (InvalidSignature, ValueError):
        raise ApprovalError(
            f"signature check failed: {where} does not carry a valid signature by {signer.name}'s key; "
            "the entry was edited after it was signed (or copied from another entry)"
        ) from None
    return signer


# ---------------------------------------------------------------------------- the approver set
# Who may approve is pinned in the ledger, not only listed in config: whoever can edit the config could
# otherwise list their own key and approve their own model. The first entry that names an approver set
# (`approver_keys`: the key ids the config listed when it was signed) pins it; a later change is an
# `approvers` entry signed by a key of the set pinned before it.

APPROVERS_ACTION = "approvers"


def approver_set_sha256(key_ids: Sequence[str] | set[str] | frozenset[str]) -> str:
    """SHA-256 (hex) of a set of key ids (sorted, one per line): the approver set's fingerprint."""
    return hashlib.sha256("\n".join(sorted(set(key_ids))).encode()).hexdigest()


@dataclass(frozen=True)
class ApproverPin:
    """The approver set the ledger pins: key ids, and the entry (seq) that pinned it."""

    keys: frozenset[str]
    seq: int

    @property
    def sha256(self) -> str:
        """The pinned set's fingerprint (approver_set_sha256)."""
        return approver_set_sha256(self.keys)


def _signed_by_own_key(entry: dict[str, Any], where: str) -> None:
    """An `approvers` entry carries its signer's public key: check it is the key named and that it signed."""
    from cryptography.exceptions import InvalidSignature

    public = parse_public_key(str(entry.get("signer_public_key", "")), where)
    if key_id(public) != entry.get("key_id"):
        raise ApprovalError(f"approver-set check failed: {where} names key {str(entry.get('key_id'))[:16]}... "
                            "but carries another public key")
    try:
        public.verify(base64.b64decode(str(entry.get("signature", "")), validate=True), signing_payload(entry))
    except (InvalidSignature, ValueError):
        raise ApprovalError(
            f"approver-set check failed: {where} does not carry a valid signature by the key it names; "
            "the entry was edited after it was signed"
        ) from None


def approver_pin(entries: Sequence[dict[str, Any]]) -> ApproverPin | None:
    """The approver set the ledger pins after `entries` (None before any entry names one).

    Raises ApprovalError("approver-set check failed: ...") when an entry after the pin is signed by a key
    outside the set pinned at that point, or names another set without being a signed change of it.
    """
    pin: ApproverPin | None = None
    for entry in entries:
        seq = int(entry.get("seq", 0))
        where = f"ledger entry {entry_number(seq)} ({entry.get('action')})"
        keys = entry.get("approver_keys")
        signer = str(entry.get("key_id", ""))
        if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
            raise ApprovalError(f"approver-set check failed: {where} has an approver_keys that is not a list of key ids")
        if entry.get("action") == APPROVERS_ACTION:
            _signed_by_own_key(entry, where)
            if keys is None or signer not in keys:
                raise ApprovalError(f"approver-set check failed: {where} changes the approver set but its signer "
                                    "is not in the new set")
        if pin is None:
            if keys is None:
                continue  # written before approver sets were pinned: checked against the config only
            if signer not in keys:
                raise ApprovalError(f"approver-set check failed: {where} pins an approver set its own signer is not in")
            pin = ApproverPin(frozenset(keys), seq)
            continue
        if signer not in pin.keys:
            raise ApprovalError(
                f"approver-set check failed: {where} is signed by key {signer[:16]}..., which is not in the approver "
                f"set pinned by ledger entry {entry_number(pin.seq)} (set {pin.sha256[:12]}); a key added to "
                "approval.approvers counts only after an approver already pinned signs the change "
                "(earlysignal approvers --key PATH)"
            )
        if entry.get("action") == APPROVERS_ACTION:
            pin = ApproverPin(frozenset(keys), seq)  # type: ignore[arg-type]
        elif keys is not None and frozenset(keys) != pin.keys:
            raise ApprovalError(
                f"approver-set check failed: {where} was signed under approver set {approver_set_sha256(keys)[:12]}, "
                f"not the set {pin.sha256[:12]} pinned by ledger entry {entry_number(pin.seq)}; the config's "
                "approval.approvers was changed without a signed change (earlysignal approvers --key PATH)"
            )
    return pin


# ------------------------------------------------------------------------------------- ledger


def json_lines(path: Path, not_json: Callable[[int], Exception]) -> Iterator[tuple[int, Any]]:
    """(line number from 1, parsed value) for each non-blank line of a JSON-lines file; nothing when it does not
    exist. Raises not_json(line number) for a line that is not JSON (a chained file is never half-read)."""
    if not path.exists():
        return
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise not_json(number) from None
        yield number, value


class Ledger:
    """The append-only approval ledger in one store folder."""

    def __init__(self, store: str | os.PathLike[str]) -> None:
        self.store = Path(store)
        self.path = self.store / LEDGER_NAME
        self.head_path = self.store / HEAD_NAME

    def entries(self) -> list[dict[str, Any]]:
        """Every entry in file order (no checks beyond JSON syntax); [] when there is no ledger."""
        entries = []
        for number, entry in json_lines(
            self.path, lambda number: ApprovalError(f"chain check failed: {self.path} line {number} is not valid JSON")
        ):
            if not isinstance(entry, dict):
                raise ApprovalError(f"chain check failed: {self.path} line {number} is not a JSON object")
            entries.append(entry)
        return entries

    def head(self) -> tuple[int, str] | None:
        """(number of entries, hash of the last) from ledger.head, or None before the first entry."""
        if not self.head_path.exists():
            return None
        try:
            raw = json.loads(self.head_path.read_text(encoding="utf-8"))
            return int(raw["entries"]), str(raw["head"])
        except (ValueError, KeyError, TypeError):
            raise ApprovalError(f"head check failed: {self.head_path} is not a valid ledger head") from None

    def verify_chain(self, checkpoints: Sequence[tuple[int, str]] = ()) -> list[dict[str, Any]]:
        """The entries, after checking seq order, every `prev` link and the head (plus any checkpoints).

        Raises ApprovalError("chain check failed: ...") when an entry was removed, edited or reordered,
        and ("head check failed: ...") when entries were cut from the end or the last one was edited.
        """
        entries = self.entries()
        previous = GENESIS
        for index, entry in enumerate(entries):
            if entry.get("seq") != index:
                raise ApprovalError(
                    f"chain check failed: entry {entry_number(index)} of {self.path} has seq {entry.get('seq')!r}, "
                    f"expected {index}; an entry was removed, inserted or reordered"
                )
            if entry.get("prev") != previous:
                raise ApprovalError(
                    f"chain check failed: entry {entry_number(index)} of {self.path} does not link to the entry before it; "
                    "an entry before it was removed, edited or reordered"
                )
            previous = entry_hash(entry)
        anchors = list(checkpoints)
        head = self.head()
        if head is not None:
            anchors.append(head)
        elif entries:
            raise ApprovalError(f"head check failed: {self.head_path} is missing while the ledger has entries")
        for count, digest in anchors:
            if 0 < count <= len(entries) and entry_hash(entries[count - 1]) != digest:
                # The same length but another last entry: an edit, not a cut (or a cut refilled to the same length).
                raise ApprovalError(
                    f"head check failed: entry {count} of {self.path} is not the entry {digest[:12]} recorded "
                    f"there; it was edited, or entries were removed from the end and others written in their place"
                )
            if count > len(entries):
                raise ApprovalError(
                    f"head check failed: the ledger once had {count} entries ending in {digest[:12]}, but "
                    f"{self.path} now has {len(entries)} that do not end that way; entries were removed from its end"
                )
        return entries

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        from earlysignal.atomic import folder_lock

        return folder_lock(self.store, ".ledger.lock")

    def append(self, fields: dict[str, Any], private_key: Any) -> dict[str, Any]:
        """Sign and append one entry (after re-checking the chain); returns the entry as written."""
        with self._locked():
            entries = self.verify_chain()
            entry = {**fields, "seq": len(entries), "prev": entry_hash(entries[-1]) if entries else GENESIS}
            signed = sign_entry(entry, private_key)
            with open(self.path, "ab") as handle:
                handle.write(canonical(signed) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            write_json({"entries": len(entries) + 1, "head": entry_hash(signed)}, self.head_path)
            return signed


# ------------------------------------------------------------------------------ report archive


def archive_path(store: str | os.PathLike[str], sha256: str, suffix: str = ".html") -> Path:
    """`<store>/archive/<sha256><suffix>`."""
    return Path(store) / "archive" / f"{sha256}{suffix}"


def archive_file(store: str | os.PathLike[str], source: str | os.PathLike[str], suffix: str) -> str:
    """Copy a file into the content-addressed archive, read-only; returns its SHA-256.

    An archived file is never rewritten: if one with the same name exists it must hash to its name.
    """
    digest = file_sha256(source)
    target = archive_path(store, digest, suffix)
    if target.exists():
        if file_sha256(target) != digest:
            raise ApprovalError(
                f"archive check failed: {target} no longer hashes to its name {digest[:12]}; it was edited"
            )
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)  # left read-only by a copy killed before its rename
    shutil.copyfile(source, tmp)
    os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    os.replace(tmp, target)
    return digest


def _audit_index_path(store: str | os.PathLike[str], name: str, version: str) -> Path:
    return Path(store) / "audits" / name / f"{version}.json"


def record_audit(
    store: str | os.PathLike[str], name: str, version: str | int, html_path: Path, json_path: Path, at: str
) -> str:
    """Archive an audit's report and audit.json and list the report's SHA-256 for (name, version); returns it."""
    report_sha = archive_file(store, html_path, ".html")
    json_sha = archive_file(store, json_path, ".json")
    index_path = _audit_index_path(store, name, str(version))
    records = audits_for(store, name, version)
    if not any(r["report_sha256"] == report_sha for r in records):
        records.append({"report_sha256": report_sha, "audit_json_sha256": json_sha, "at": at})
        write_text(json.dumps(records, indent=2) + "\n", index_path)
    return report_sha


def audits_for(store: str | os.PathLike[str], name: str, version: str | int) -> list[dict[str, str]]:
    """The audits `earlysignal audit` recorded for a version, oldest first."""
    path = _audit_index_path(store, name, str(version))
    if not path.exists():
        return []
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ApprovalError(f"{path} is not valid JSON; re-run `earlysignal audit` for {name} version {version}") from None
    return [r for r in records if isinstance(r, dict) and "report_sha256" in r]


def version_of_report(store: str | os.PathLike[str], name: str, report_sha: str) -> str | None:
    """Which version of the model an audit report with this SHA-256 was written for, if any."""
    folder = Path(store) / "audits" / name
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.json")):
        if any(r["report_sha256"] == report_sha for r in audits_for(store, name, path.stem)):
            return path.stem
    return None

"""The release register: every bundle this borough wrote or signed, so that each new release is checked against them.

A reader who holds two of a borough's releases can difference them (a date withheld in one and shown in the
other; docs/adr/0024). `release.earlier` lists earlier bundles by hand, and an empty list used to mean "no
earlier release". The register makes the borough's own bundles count whatever the config lists:

- `<register>/register.jsonl`: one JSON object per line, appended under a lock and rewritten atomically. Each
  entry: `seq` (0, 1, 2...), `prev` (SHA-256 of the previous line's canonical JSON, 64 zeros for the first),
  `event` ("written" by `release`, "signed" by `release-sign`), `at`, `borough`, `kind`, `bundle` (the folder's
  absolute path), `release_sha256` (of its release.json bytes), `generated_at` and the model's name and version.
- `<register>/archive/<sha256>.json`: a read-only copy of each registered release.json, named by its hash.

The register lives at `release.register_dir` (default `reports/release-register/`, beside the approval store and
not among the bundles), or `$EARLYSIGNAL_RELEASE_REGISTER`; it does not depend on `--out`, so a bundle written
to another folder is registered all the same, and the copy means a bundle folder moved, deleted or rewritten
in place (the same model released again into its default folder) is still read. A copy that is missing or no
longer hashes to its name, a broken chain, or a registered folder whose release.json is not one registered
for it, is an error (BundleError naming the file), never a silent skip.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earlysignal.config import ProjectConfig
from earlysignal.federation.bundle import MANIFEST_JSON, RELEASE_JSON, BundleError, _check_files

REGISTER_ENV = "EARLYSIGNAL_RELEASE_REGISTER"
REGISTER_NAME = "register.jsonl"
GENESIS = "0" * 64
EVENT_WRITTEN = "written"
EVENT_SIGNED = "signed"


def register_dir(config: ProjectConfig) -> Path:
    """The release register folder: $EARLYSIGNAL_RELEASE_REGISTER when set, else `release.register_dir`."""
    return Path(os.environ.get(REGISTER_ENV) or config.release.register_dir)


@dataclass(frozen=True)
class EarlierRelease:
    """One earlier release the attack reads with a new one: its release.json document, the SHA-256 of that
    file's bytes, where it came from ('register' or 'release.earlier[i]') and its bundle folder."""

    document: dict[str, Any] = field(repr=False)
    sha256: str
    source: str
    bundle: str

    def summary(self) -> dict[str, str]:
        """What release.json records of it (no path: a folder name can say more than the bundle should)."""
        model = self.document.get("model") or {}
        return {"release_sha256": self.sha256, "generated_at": str(self.document.get("generated_at")),
                "kind": str(self.document.get("kind")), "model": f"{model.get('name')} v{model.get('version')}",
                "from": self.source if self.source.startswith("register") else "release.earlier"}

    def words(self) -> str:
        """One line for the console: when, which model, its hash and where it is."""
        s = self.summary()
        return f"{s['generated_at']} {s['kind']} {s['model']} ({self.sha256[:12]}, {self.source}: {self.bundle})"


@dataclass
class EarlierReleases:
    """The earlier releases read with a new one, and the boroughs whose registered bundles were not read."""

    releases: list[EarlierRelease]
    other_boroughs: list[str]

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [r.document for r in self.releases]


def _canonical(obj: Any) -> bytes:
    from earlysignal.ledger import canonical

    return canonical(obj)


def _line_hash(entry: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(_canonical(entry)).hexdigest()


def _now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _ours(entry: dict[str, Any], borough: str | None, model: str | None) -> bool:
    """An entry of this borough: its name, or (for a home release of `model`) a home release of the same model
    under another name, which is the same borough renamed (a model's home is one borough)."""
    if entry.get("borough") == borough:
        return True
    return model is not None and entry.get("kind") == "home" and (entry.get("model") or {}).get("name") == model


class ReleaseRegister:
    """The append-only register of one borough's release bundles in one folder."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / REGISTER_NAME

    def copy_path(self, sha256: str) -> Path:
        """`<register>/archive/<sha256>.json`."""
        from earlysignal.ledger import archive_path

        return archive_path(self.folder, sha256, ".json")

    def entries(self) -> list[dict[str, Any]]:
        """Every entry in order after checking seq and every `prev` link; [] when nothing is registered.

        Raises BundleError naming the line when one is not JSON or an entry was removed, edited or reordered.
        """
        from earlysignal.ledger import json_lines

        out: list[dict[str, Any]] = []
        previous = GENESIS
        not_json = lambda number: BundleError(  # noqa: E731
            f"release register check failed: {self.path} line {number} is not valid JSON; restore the register "
            "from a backup")
        for number, entry in json_lines(self.path, not_json):
            if not isinstance(entry, dict) or entry.get("seq") != len(out) or entry.get("prev") != previous:
                raise BundleError(
                    f"release register check failed: {self.path} line {number} does not follow the line before it "
                    "(seq or prev); an entry was removed, edited or reordered. Restore the register from a backup: "
                    "without it a new release cannot be checked against the bundles this borough has released")
            out.append(entry)
            previous = _line_hash(entry)
        return out

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        from earlysignal.atomic import folder_lock

        return folder_lock(self.folder, ".register.lock")

    def record(self, bundle: str | os.PathLike[str], content: bytes, event: str) -> dict[str, Any]:
        """Copy a bundle's release.json bytes into the archive and append an entry for it; returns the entry.

        write_bundle calls it before the bundle is written (a crash in between leaves a registered release
        that never left: it costs figures, never protection); sign_bundle before it signs.
        """
        import tempfile

        from earlysignal.atomic import write_text
        from earlysignal.errors import ApprovalError
        from earlysignal.ledger import archive_file

        document = json.loads(content.decode("utf-8"))
        model = document.get("model") or {}
        with self._locked():
            entries = self.entries()
            fd, name = tempfile.mkstemp(prefix=".release.", suffix=".tmp", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                digest = archive_file(self.folder, name, ".json")
            except ApprovalError as error:
                raise BundleError(f"release register check failed: {error}; restore it from a backup") from None
            finally:
                Path(name).unlink(missing_ok=True)
            entry = {
                "seq": len(entries), "prev": _line_hash(entries[-1]) if entries else GENESIS, "event": event,
                "at": _now_utc(), "borough": document.get("borough"), "kind": document.get("kind"),
                "bundle": str(Path(bundle).resolve()), "release_sha256": digest,
                "generated_at": document.get("generated_at"),
                "model": {"name": model.get("name"), "version": model.get("version")},
            }
            old = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
            if old and not old.endswith("\n"):
                old += "\n"
            write_text(old + _canonical(entry).decode("utf-8") + "\n", self.path)
            return entry

    def releases(self, borough: str | None, exclude: str | None = None, model: str | None = None) -> EarlierReleases:
        """This borough's registered releases (one per distinct release.json, oldest first), each read from its
        archived copy, leaving out `exclude` (a release.json's SHA-256); plus the other boroughs registered here.

        Raises BundleError when a copy is missing or does not hash to its name, or when a registered bundle
        folder still on disk holds a release.json that was never registered for it (edited by hand, or written
        by a version of Early Signal without the register).
        """
        from earlysignal.fingerprint import file_sha256

        entries = self.entries()
        ours = [e for e in entries if _ours(e, borough, model)]
        others = sorted({str(e.get("borough")) for e in entries if e.get("borough") != borough})
        out: list[EarlierRelease] = []
        seen = {exclude} if exclude else set()
        for entry in ours:
            digest = str(entry.get("release_sha256"))
            if digest in seen:
                continue
            seen.add(digest)
            copy = self.copy_path(digest)
            where = f"{self.path} entry {int(entry['seq']) + 1} (bundle {entry.get('bundle')})"
            if not copy.is_file():
                raise BundleError(f"release register check failed: the copy {copy} of the release registered at "
                                  f"{where} is missing; restore it from a backup of the register (the bundle folder's "
                                  "release.json will do if it still hashes to that name)")
            if file_sha256(copy) != digest:
                raise BundleError(f"release register check failed: {copy} no longer hashes to its name; it was "
                                  f"edited after {where}. Restore it from a backup of the register")
            document = json.loads(copy.read_text(encoding="utf-8"))
            out.append(EarlierRelease(document, digest, "register", str(entry.get("bundle"))))
        out += self._unlisted_copies(entries, borough, seen, model)
        registered: dict[str, set[str]] = {}
        for entry in entries:
            registered.setdefault(str(entry.get("bundle")), set()).add(str(entry.get("release_sha256")))
        for folder in sorted({str(e.get("bundle")) for e in ours}):
            on_disk = Path(folder) / RELEASE_JSON
            if on_disk.is_file() and file_sha256(on_disk) not in registered[folder]:
                raise BundleError(
                    f"release register check failed: {on_disk} is not the release.json registered for that bundle "
                    f"(in {self.path}); it was edited or rewritten without `earlysignal release`. If it left the "
                    f"borough, sign it off with `earlysignal release-sign {folder}` (which registers it); if it "
                    "never did, move it out of that folder")
        return EarlierReleases(out, others)


    def _unlisted_copies(self, entries: list[dict[str, Any]], borough: str | None,
                         seen: set[str], model: str | None = None) -> list[EarlierRelease]:
        """The borough's archived copies that no line of register.jsonl names, oldest first.

        Lines cut from the end of register.jsonl (or the whole file deleted) leave a chain that still checks,
        but their copies stay in `archive/`: they are read all the same, so a shortened register cannot make
        a release forget what the borough sent. A copy without a line is also what a `release` interrupted
        between archiving and appending leaves; reading it costs figures, never protection.
        """
        from earlysignal.fingerprint import file_sha256

        folder = self.copy_path("0" * 64).parent
        if not folder.is_dir():
            return []
        named = {str(e.get("release_sha256")) for e in entries}
        out: list[EarlierRelease] = []
        for copy in sorted(folder.glob("*.json")):
            digest = copy.stem
            if copy.name.startswith(".") or digest in named or digest in seen:
                continue
            if file_sha256(copy) != digest:
                raise BundleError(f"release register check failed: {copy} no longer hashes to its name; it was "
                                  "edited. Restore it from a backup of the register")
            try:
                document = json.loads(copy.read_text(encoding="utf-8"))
            except ValueError:
                raise BundleError(f"release register check failed: {copy} is not a release.json; restore the "
                                  "register's archive from a backup") from None
            if not _ours({"borough": document.get("borough"), "kind": document.get("kind"),
                          "model": document.get("model") or {}}, borough, model):
                continue
            seen.add(digest)
            out.append(EarlierRelease(document, digest, "register archive",
                                      f"{copy} (no line in {self.path.name}: restore it from a backup)"))
        return sorted(out, key=lambda r: (str(r.document.get("generated_at")), r.sha256))


def listed_releases(config: ProjectConfig, base: str | os.PathLike[str] | None = None) -> list[EarlierRelease]:
    """The releases `release.earlier` lists (bundle folders or release.json paths, relative to `base` when given).

    A bundle folder is checked against its manifest first. BundleError naming the entry when one is missing,
    unreadable, or its files do not hash as its manifest lists.
    """
    from earlysignal.fingerprint import file_sha256

    out = []
    for index, raw in enumerate(config.release.earlier):
        path = Path(raw) if base is None or Path(raw).is_absolute() else Path(base) / raw
        path = path if path.name == RELEASE_JSON else path / RELEASE_JSON
        where = f"release.earlier[{index}]"
        if (path.parent / MANIFEST_JSON).is_file():
            try:
                _check_files(path.parent)
            except BundleError as error:
                raise BundleError(f"{where}: {error}") from None
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            digest = file_sha256(path)
        except (OSError, ValueError) as error:
            raise BundleError(f"{where}: cannot read {path} ({error}); list the bundle folders this borough has "
                              "released before, or remove the entry") from None
        out.append(EarlierRelease(document, digest, where, str(path.parent)))
    return out


def earlier_for(config: ProjectConfig, borough: str | None, exclude: str | None = None,
                model: str | None = None) -> EarlierReleases:
    """Every earlier release a new release of `borough` is read with: the register's (always) and those
    `release.earlier` lists, one per distinct release.json, oldest first; `exclude` leaves out the release
    being signed. With `model` (a home release of the borough's own model), home releases of that model under
    another borough name are read too: the same borough renamed. BundleError when one is missing or altered
    (see ReleaseRegister.releases, listed_releases)."""
    registered = ReleaseRegister(register_dir(config)).releases(borough, exclude, model)
    seen = {r.sha256 for r in registered.releases} | ({exclude} if exclude else set())
    listed = []
    for release in listed_releases(config):
        if release.sha256 not in seen:
            seen.add(release.sha256)
            listed.append(release)
    ordered = sorted([*registered.releases, *listed],
                     key=lambda r: (str(r.document.get("generated_at")), r.sha256))
    return EarlierReleases(ordered, registered.other_boroughs)


def check_home_borough(config: ProjectConfig, release: dict[str, Any]) -> None:
    """Refuse a home release of a model the register already holds home releases of under another borough name.

    The register matches releases by borough name, so a borough renamed between releases ('Thornbury',
    then 'Thornbury Council') would be checked without its own earlier bundles. A model's home is one
    borough: its own model released as home under a second name is that rename. BundleError naming the
    entry and the name to use; transfer releases (a shipped model evaluated elsewhere) are not concerned.
    """
    if release.get("kind") != "home":
        return
    borough = release.get("borough")
    model = (release.get("model") or {}).get("name")
    register = ReleaseRegister(register_dir(config))
    homes = [e for e in register.entries() if e.get("kind") == "home" and (e.get("model") or {}).get("name") == model]
    if any(e.get("borough") == borough for e in homes):
        # Released under both names already (a rename before this check existed): the releases are read
        # together (earlier_for with the model), and refusing either name would leave no way on.
        return
    for entry in homes:
        if entry.get("borough") != borough:
            raise BundleError(
                f"release register check failed: {register.path} entry {int(entry['seq']) + 1} is a home release "
                f"of model {model} under the borough name {entry.get('borough')!r}; released as {borough!r} it "
                "would not be read with that borough's earlier releases (the register matches them by name). "
                f"Release under {entry.get('borough')!r} (release.borough or --borough): a model's home is one "
                "borough")


REGISTER_TAG = "earlysignal.release_register"


def _registry_client() -> Any:
    from mlflow import MlflowClient

    from earlysignal.tracking import configure_tracking

    configure_tracking()
    return MlflowClient()


def check_register_anchor(config: ProjectConfig, model_name: str) -> None:
    """Refuse a home release of `model_name` into a register holding none of its releases when the model
    registry records that its releases were registered (MLflow tag `earlysignal.release_register` on the
    registered model, set by `record_register_anchor`).

    The register's place comes from the config (relative to where `release` runs) or the environment, so a
    second config with another `release.register_dir`, or the register folder deleted, would start the
    borough's history again in silence; the registry is the second witness, as it is for the approval
    ledger's head. A register moved with its copies holds the model's releases and passes. A model not in
    the registry (or no registry) is not checked. BundleError naming both folders and what to do.
    """
    from mlflow.exceptions import MlflowException

    try:
        recorded = (_registry_client().get_registered_model(model_name).tags or {}).get(REGISTER_TAG)
    except MlflowException:
        return
    if not recorded:
        return
    register = ReleaseRegister(register_dir(config))
    names = {(e.get("model") or {}).get("name") for e in register.entries() if e.get("kind") == "home"}
    folder = register.copy_path("0" * 64).parent
    for copy in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            document = json.loads(copy.read_text(encoding="utf-8"))
            if document.get("kind") == "home":
                names.add((document.get("model") or {}).get("name"))
    if model_name in names:
        return
    here = Path(register.folder).resolve()
    where = ("this config's register" if str(here) != recorded else "the register there now")
    raise BundleError(
        f"release register check failed: the model registry records that home releases of {model_name} were "
        f"registered in {recorded}, but {where} ({here}: release.register_dir, or ${REGISTER_ENV}) holds none "
        "of them, so a release now would not be read with them. "
        + (f"Point release.register_dir (or ${REGISTER_ENV}) at {recorded}, or copy that folder here"
           if str(here) != recorded else "Restore the register folder from a backup (it was deleted or emptied)"))


def record_register_anchor(config: ProjectConfig, model_name: str) -> None:
    """Record on the registered model (MLflow tag) the register its latest home release was registered in."""
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        _registry_client().set_registered_model_tag(
            model_name, REGISTER_TAG, str(Path(register_dir(config)).resolve()))


def describe(earlier: Sequence[EarlierRelease]) -> list[dict[str, str]]:
    """The `earlier_releases` section of release.json: what the attack read beside it."""
    return [r.summary() for r in earlier]

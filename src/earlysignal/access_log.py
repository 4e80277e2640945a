"""Who looked at whose records: an append-only, hash-chained access log.

Opening a resident's journey or writing their explanation is processing of personal data, so each
one appends a line (JSON) saying who, when, which resident, at which as_of and what was made. Each
entry holds the SHA-256 of the one before it and its own hash over its content, so editing or
deleting any entry breaks the chain from that point on and `verify_access_log` says where.

What the chain cannot show alone is the loss of the newest entries (truncating the file's tail):
every page that is written states the hash of its own entry, and `verify_access_log` prints the
head hash, so a copy of either kept elsewhere detects that too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earlysignal.errors import EarlySignalError

GENESIS = "0" * 64
FIELDS = ("seq", "time", "viewer", "action", "resident_id", "as_of", "output", "prev")


class AccessLogError(EarlySignalError):
    """The access log cannot be read or written, or its chain is broken."""


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {key: entry.get(key) for key in FIELDS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def current_viewer(viewer: str | None = None) -> str:
    """The viewer's name: as given, else the operating-system user. Raises AccessLogError when neither is known."""
    if viewer and viewer.strip():
        return viewer.strip()
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container user without a passwd entry)
        name = ""
    if not name:
        raise AccessLogError("cannot tell who is viewing: pass --viewer NAME")
    return name


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # two viewers at once must not fork the chain
        except ImportError:  # pragma: no cover - Windows: no advisory locks; single-user use
            pass
        yield handle


@dataclass(frozen=True)
class AccessEntry:
    """One line of the log."""

    seq: int
    time: str
    viewer: str
    action: str
    resident_id: str
    as_of: str
    output: str
    prev: str
    hash: str


def append_access(
    path: str | os.PathLike[str],
    *,
    viewer: str,
    action: str,
    resident_id: str,
    as_of: dt.date,
    output: str | os.PathLike[str] = "",
    now: dt.datetime | None = None,
) -> AccessEntry:
    """Append one entry (chained to the last) and return it. Refuses (AccessLogError) to extend a broken chain."""
    path = Path(path)
    with _locked(path) as handle:
        handle.seek(0)
        entries, problems = _read_chain(handle.read(), path)
        if problems:
            raise AccessLogError(
                f"{path}: the access log has been altered ({problems[0]}); nothing was appended. Keep the file as "
                "evidence, report it to the data protection officer, and start a new log (access_log in config)"
            )
        when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat(timespec="seconds")
        entry: dict[str, Any] = {
            "seq": len(entries) + 1,
            "time": when,
            "viewer": viewer,
            "action": action,
            "resident_id": str(resident_id),
            "as_of": as_of.isoformat(),
            "output": str(output),
            "prev": entries[-1]["hash"] if entries else GENESIS,
        }
        entry["hash"] = _entry_hash(entry)
        handle.seek(0, os.SEEK_END)
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return AccessEntry(**entry)


def _read_chain(text: str, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    prev = GENESIS
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            problems.append(f"line {number} is blank")
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"line {number} is not JSON")
            continue
        if not isinstance(entry, dict) or set(entry) != {*FIELDS, "hash"}:
            problems.append(f"line {number} does not have exactly the fields {[*FIELDS, 'hash']}")
            continue
        expected = entries[-1]["seq"] + 1 if entries else 1
        if entry["seq"] != expected:
            problems.append(f"line {number}: entry {entry['seq']} where entry {expected} was expected (an entry is missing)")
        if entry["prev"] != prev:
            problems.append(f"line {number} (entry {entry['seq']}): does not follow the entry before it (deleted or reordered)")
        if _entry_hash(entry) != entry["hash"]:
            problems.append(f"line {number} (entry {entry['seq']}): its content does not match its hash (edited)")
        prev = entry["hash"]
        entries.append(entry)
    return entries, problems


@dataclass(frozen=True)
class AccessLogCheck:
    """The result of verifying the log."""

    path: Path
    entries: int
    head: str  # hash of the last entry (GENESIS for an empty log)
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """True when every entry is unedited and follows the one before it."""
        return not self.problems


def verify_access_log(path: str | os.PathLike[str]) -> AccessLogCheck:
    """Check the whole chain; problems name the line and what is wrong. A missing file is an empty log."""
    path = Path(path)
    if not path.exists():
        return AccessLogCheck(path, 0, GENESIS, [])
    entries, problems = _read_chain(path.read_text(encoding="utf-8"), path)
    return AccessLogCheck(path, len(entries), entries[-1]["hash"] if entries else GENESIS, problems)


def read_access_log(path: str | os.PathLike[str]) -> list[AccessEntry]:
    """Every entry, oldest first; raises AccessLogError when the chain is broken."""
    check = verify_access_log(path)
    if not check.intact:
        raise AccessLogError(f"{check.path}: the access log has been altered: {'; '.join(check.problems)}")
    if not Path(path).exists():
        return []
    return [AccessEntry(**json.loads(line)) for line in Path(path).read_text(encoding="utf-8").splitlines()]

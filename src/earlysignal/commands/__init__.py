"""The `earlysignal` commands by stage, each module registering its commands on `earlysignal.cli.app`.

Importing this package registers every command; `--help` then lists them in COMMAND_ORDER (the order
users have always seen), whichever module a command lives in. A command missing from COMMAND_ORDER
is listed after these, in the order it was registered.
"""

from __future__ import annotations

from typing import Any

from earlysignal.cli import app
from earlysignal.commands import (  # noqa: F401  (importing registers the commands)
    approval,
    caseworker,
    data,
    demo,
    features,
    federation,
    modeling,
    monitoring,
)

COMMAND_ORDER = (
    "approve", "revoke", "keys", "approvers", "train", "score", "validate", "features", "synth", "audit", "demo",
    "evaluation-purge", "journey", "explain", "access-log", "link", "monitor", "necessity", "ingest", "release",
    "release-sign", "pool", "privacy-scan",
)


def command_name(info: Any) -> str:
    """The name a registered Typer command shows in --help: its given name, else its function's, dashed."""
    return info.name or info.callback.__name__.lower().replace("_", "-")


def _listed_position(item: tuple[int, Any]) -> tuple[int, int]:
    registered, info = item
    name = command_name(info)
    return (COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER), registered)


app.registered_commands[:] = [info for _, info in sorted(enumerate(app.registered_commands), key=_listed_position)]

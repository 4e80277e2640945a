"""The `earlysignal` commands by stage, each module registering its commands on `earlysignal.cli.app`.

Importing this package registers every command; `--help` then lists them by stage, in the order a
council meets them (COMMAND_PANELS: trying it, getting data in, building and auditing a model, governance,
the monthly list, across boroughs), whichever module a command lives in. A command missing from
COMMAND_PANELS is listed after these, under "More commands", in the order it was registered.
"""

from __future__ import annotations

import inspect
import re
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

# --help's panels, in the order a council meets them; each panel lists its commands in pipeline order.
COMMAND_PANELS = {
    "Try it": ("demo",),
    "Data in: synthesise or ingest, link, check": ("synth", "ingest", "link", "validate", "privacy-scan"),
    "Model: features, training, the board's audit": ("features", "train", "audit", "necessity"),
    "Governance: keys and approval": ("keys", "approvers", "approve", "revoke"),
    "Each month: the list, the caseworker's pages, monitoring": (
        "score", "journey", "explain", "access-log", "monitor", "evaluation-purge"),
    "Across boroughs: aggregates only": ("release", "release-sign", "pool"),
}
COMMAND_ORDER = tuple(name for names in COMMAND_PANELS.values() for name in names)
PANEL_OF = {name: panel for panel, names in COMMAND_PANELS.items() for name in names}


def command_name(info: Any) -> str:
    """The name a registered Typer command shows in --help: its given name, else its function's, dashed."""
    return info.name or info.callback.__name__.lower().replace("_", "-")


def help_from_docstring(docstring: str) -> str:
    """The docstring with each paragraph on one line: Typer keeps the source's line breaks, so --help would
    break sentences where the source wraps them. A paragraph that is a list (a line starting with "-", "*"
    or "1.") or starts with Click's no-rewrap marker "\\b" is kept as written."""
    paragraphs = inspect.cleandoc(docstring).split("\n\n")
    return "\n\n".join(paragraph if _keeps_its_lines(paragraph) else " ".join(paragraph.split())
                       for paragraph in paragraphs)


def _keeps_its_lines(paragraph: str) -> bool:
    return paragraph.startswith("\b") or any(
        re.match(r"\s*([-*\u2022]|\d+[.)])\s", line) for line in paragraph.splitlines())


def _listed_position(item: tuple[int, Any]) -> tuple[int, int]:
    registered, info = item
    name = command_name(info)
    return (COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER), registered)


app.registered_commands[:] = [info for _, info in sorted(enumerate(app.registered_commands), key=_listed_position)]
for _info in app.registered_commands:
    _info.rich_help_panel = PANEL_OF.get(command_name(_info), "More commands")
    if _info.help is None and _info.callback is not None and _info.callback.__doc__:
        _info.help = help_from_docstring(_info.callback.__doc__)

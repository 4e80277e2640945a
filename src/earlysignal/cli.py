"""The `earlysignal` command line: thin wrappers that parse options, call the library and show progress.

This file holds the one Typer `app` and the helpers every command shares (user errors as messages, the
--config option, --as-of parsing); the commands live by stage in `earlysignal.commands` (data, features,
modeling, approval, caseworker, monitoring, federation, demo), each registering on this `app`.
User errors (`EarlySignalError`) print as one clear message and exit with code 2.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from earlysignal.console import console
from earlysignal.errors import EarlySignalError

app = typer.Typer(
    name="earlysignal",
    help="Early Signal: point-in-time features, models, reasons and fairness audits from linked council records.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Project config YAML (default: conf/borough.yaml, else the packaged copy)."),
]


def user_errors_as_messages(func: F) -> F:
    """Show an EarlySignalError as a plain red message and exit 2, without a traceback. While the command runs,
    SIGTERM (what `kill`, systemd and schedulers send) unwinds it as Ctrl-C does, so its temporary files and
    folders are removed on the way out; the exit code is then 143 (128 + SIGTERM), as for a default SIGTERM."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _sigterm_unwinds():
            try:
                return func(*args, **kwargs)
            except EarlySignalError as error:
                console.print(f"[bold red]Error:[/bold red] {error}", highlight=False)
                sys.exit(2)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) in the main thread (every `finally` runs) instead of ending the process
    where it stands; the previous handler is put back on exit. Elsewhere than the main thread: nothing changes."""

    def unwind(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, unwind)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:  # pragma: no cover - console-script entry point
    app()


def _as_of_date(text: str) -> Any:
    # The one parser: date.fromisoformat would also take 20210101 and 2021-W01-1, which score refuses.
    from earlysignal.dates import parse_date

    return parse_date(text, "--as-of")


# The commands register on `app` as their modules are imported (after everything above exists).
import earlysignal.commands  # noqa: E402,F401
from earlysignal.commands.approval import _print_cut_list  # noqa: E402,F401  (imported from here by callers)

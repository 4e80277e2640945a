"""The shared rich console and progress bar, so every stage reports the same way."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PIPE_WIDTH = 120


def _console() -> Console:
    """Rich on stderr; when that is not a terminal (a pipe, a log file, CI), PIPE_WIDTH columns rather than
    rich's 80, so tables keep their interval columns. COLUMNS, when set, wins."""
    made = Console(stderr=True)
    if not made.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        made = Console(stderr=True, width=PIPE_WIDTH)
    return made


console = _console()


def progress_bar(transient: bool = False) -> Progress:
    """A rich Progress with a bar, counts and elapsed/remaining time, drawn on stderr."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


CONSOLE_LIST_LIMIT = 5


def and_more(total: int, shown: int, where: str | os.PathLike[str] | None = None) -> str | None:
    """'... and N more (see FILE)' under a console list cut to `shown` of `total` items; None when nothing was cut."""
    if total <= shown:
        return None
    return f"  ... and {total - shown} more" + (f" (see {where})" if where is not None else "")


def peak_memory_words(project: object, bounds: str = "each partition") -> str:
    """The process's peak resident memory so far beside the budget, in words: the budget bounds `bounds` (each
    partition; for train, what each model reads), not the process, so the peak is measured and said rather than
    promised (docs/config.md)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    budget = getattr(getattr(project, "build", None), "memory_budget_gb", None)
    words = f"peak memory {peak / 1024**3:.2f} GB"
    if budget is None:
        return words
    side = "within" if peak <= budget * 1024**3 else "above"
    return (f"{words}, {side} build.memory_budget_gb {budget} (the budget bounds {bounds}, not the process; "
            "docs/config.md)")

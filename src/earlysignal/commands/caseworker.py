"""Caseworker: a resident's journey, their explanation, and the access log of both."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earlysignal.cli import ConfigOption, _as_of_date, app, user_errors_as_messages
from earlysignal.console import console


@app.command()
@user_errors_as_messages
def journey(
    resident: Annotated[str, typer.Option("--resident", help="The resident's pseudonymous ID, as on the case list.")],
    as_of: Annotated[str, typer.Option("--as-of", help="The date the list was scored at (YYYY-MM-DD).")],
    viewer: Annotated[
        str | None, typer.Option("--viewer", help="Who is viewing, for the access log (default: the operating-system user).")
    ] = None,
    scores: Annotated[
        Path | None, typer.Option("--scores", help="The score folder (default: reports/scores/<model.name>-<as_of>/).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Borough data folder (default: the one the list was scored from).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Page to write (default: <scores>/journeys/<resident>.html).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write a resident's journey page: every record known before --as-of about them, their household and
    their home, with the records behind each reason highlighted. The viewing is recorded in the access log."""
    from earlysignal.config import load_config
    from earlysignal.journey import view_journey

    project = load_config(config)
    page = view_journey(project, resident, _as_of_date(as_of), scores_dir=scores, data_dir=data, viewer=viewer, out=out)
    console.print(
        f"Journey of {resident} at {as_of}: {len(page.journey['events'])} records, "
        f"{sum(1 for e in page.journey['events'] if e['reasons'])} behind its reasons.\n"
        f"Page: {page.path}\nAccess logged as entry {page.entry.seq} ({page.entry.viewer}, {page.entry.time}) "
        f"in {project.caseworker.access_log}",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def explain(
    resident: Annotated[str, typer.Option("--resident", help="The resident's pseudonymous ID.")],
    as_of: Annotated[str, typer.Option("--as-of", help="The date the list was scored at (YYYY-MM-DD).")],
    viewer: Annotated[
        str | None, typer.Option("--viewer", help="Who is writing it, for the access log (default: the operating-system user).")
    ] = None,
    scores: Annotated[
        Path | None, typer.Option("--scores", help="The score folder (default: reports/scores/<model.name>-<as_of>/).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Borough data folder (default: the one the list was scored from).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder to write into (default: <scores>/explanations/<resident>/).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write a plain-English explanation for the resident (subject access request or challenge):
    explanation.html (prints to PDF) and explanation.md. Recorded in the access log."""
    from earlysignal.config import load_config
    from earlysignal.explanation import NOT_PROVIDED, write_explanation

    project = load_config(config)
    files = write_explanation(project, resident, _as_of_date(as_of), scores_dir=scores, data_dir=data,
                              viewer=viewer, out=out)
    if files.document["challenge_contact"] == NOT_PROVIDED:
        console.print("[bold red]governance.challenge_contact is NOT PROVIDED: the document cannot tell the resident "
                      "whom to contact. Set it in the config before sending.[/bold red]")
    console.print(f"Explanation: {files.html}\nPlain text:  {files.markdown}", highlight=False)


@app.command("access-log")
@user_errors_as_messages
def access_log(
    log: Annotated[
        Path | None, typer.Option("--log", help="The access log (default: caseworker.access_log from the config).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Verify the access log's hash chain and show its size and head hash; exit 2 if it was altered."""
    from earlysignal.access_log import AccessLogError, verify_access_log
    from earlysignal.config import load_config

    path = log if log is not None else Path(load_config(config).caseworker.access_log)
    check = verify_access_log(path)
    if not check.intact:
        raise AccessLogError(f"{path}: the access log has been altered:\n  " + "\n  ".join(check.problems))
    console.print(f"{path}: {check.entries} entries, chain intact. Head hash {check.head}", highlight=False)

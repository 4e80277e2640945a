"""Monitoring: past lists against the audit, and the retention of evaluation data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earlysignal.cli import ConfigOption, _as_of_date, app, user_errors_as_messages
from earlysignal.console import console


@app.command("evaluation-purge")
@user_errors_as_messages
def evaluation_purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
    config: ConfigOption = None,
) -> None:
    """Delete resident-level evaluation data whose retention (evaluation.retention_days) has passed.

    Training keeps each run's test predictions and explanation sample in the local evaluation
    store, never in MLflow; after the retention period they are purged here (run it on a schedule).
    """
    from earlysignal.config import load_config
    from earlysignal.evaluation_store import purge_expired, store_root
    from earlysignal.tracking import configure_tracking

    project = load_config(config)
    root = store_root(project.evaluation.dir, configure_tracking())
    result = purge_expired(root, dry_run=dry_run)
    verb = "Would purge" if dry_run else "Purged"
    console.print(
        f"{verb} {len(result.purged)} run(s) from {root}"
        + (f": {', '.join(result.purged)}" if result.purged else "")
        + f"; {len(result.kept)} run(s) within retention kept.",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def monitor(
    data: Annotated[Path | None, typer.Option("--data", help="Borough data folder (default: data.dir from the config).")] = None,
    scores: Annotated[
        Path | None,
        typer.Option("--scores", help="Folder of past ranked lists written by `score` (default: monitoring.scores_dir)."),
    ] = None,
    audit_file: Annotated[
        Path | None,
        typer.Option("--audit", help="audit.json holding the promised figures (default: monitoring.audit, else the "
                     "latest list's model's reports/audit/<model>-v<version>/audit.json)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Monitor with what was known before this date, YYYY-MM-DD (default: the data's extract date)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder for monitor.html and monitor.json (default: reports/monitor/<model.name>-<date>/)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Monitor past lists for the board: realised precision/recall against the audit, calibration, data drift
    per source and the switch-off criteria (monitoring.switch_off) as green / amber / red."""
    from earlysignal.config import load_config
    from earlysignal.console import progress_bar
    from earlysignal.console import peak_memory_words
    from earlysignal.monitor import run_monitor

    known_by = None
    if as_of is not None:
        known_by = _as_of_date(as_of)
    project = load_config(config)
    with progress_bar(transient=True) as bar:
        bar.add_task("monitoring", total=None)
        result = run_monitor(project, data_dir=data, scores_dir=scores, audit_path=audit_file, out=out, known_by=known_by)
    colours = {"green": "green", "amber": "yellow", "red": "bold red"}
    for criterion in result.document["criteria"]:
        colour = colours.get(criterion["status"], "white")
        console.print(f"[{colour}]{criterion['status'].upper():>13}[/{colour}]  {criterion['name']}: {criterion['detail']}",
                      highlight=False)
    if result.partitions is not None:
        console.print(f"Data read in {result.partitions} partition(s) (build.memory_budget_gb / build.partitions): "
                      f"the same figures as the whole borough; {peak_memory_words(project)}.", highlight=False)
    overall = result.document["overall"]
    console.print(f"Overall: [{colours.get(overall, 'white')}]{overall.upper()}[/{colours.get(overall, 'white')}] "
                  f"({len(result.document['lists'])} list(s)).\nReport: {result.html_path}\nNumbers: {result.json_path}",
                  highlight=False)

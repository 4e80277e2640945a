"""The demo: the whole story from raw extracts on a synthetic borough."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from earlysignal.cli import ConfigOption, app, user_errors_as_messages
from earlysignal.console import console


@app.command()
@user_errors_as_messages
def demo(
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Regenerate the synthetic borough even when one made with the same arguments exists."),
    ] = False,
    config: ConfigOption = None,
    linked: Annotated[
        bool,
        typer.Option("--linked", help="Start from the synthetic borough's true linkage instead of its raw extracts "
                     "(skips ingest and link)."),
    ] = False,
    necessity: Annotated[
        bool,
        typer.Option("--necessity", help="Also run the necessity analysis (retrains once per source: several times "
                     "the training time) and re-audit so the report has the necessity table."),
    ] = False,
) -> None:
    """Run the whole story from raw extracts: synth, ingest, link, validate, features, train, audit, demo approval,
    score, then a flagged child's journey and explanation letter, and monitoring (--necessity: the DPIA table too)."""
    from earlysignal.config import load_config
    from earlysignal.demo import DEMO_STEPS_AFTER_LIST, DEMO_STEPS_FROM_RAW, DEMO_STEPS_LINKED, run_demo
    from earlysignal.tracking import ui_command

    project = load_config(config)
    steps = (DEMO_STEPS_LINKED if linked else DEMO_STEPS_FROM_RAW) + DEMO_STEPS_AFTER_LIST + (
        ("necessity",) if necessity else ())

    def announce(name: str) -> None:
        console.rule(f"[bold]{steps.index(name) + 1}/{len(steps)} {name}")

    result = run_demo(project, fresh=fresh, step=announce, from_raw=not linked, after_list=True, necessity=necessity)
    console.rule("[bold]done")
    verdict = {True: "[green]met[/green]", False: "[bold red]not met[/bold red]", None: "not evaluable"}
    console.print(
        f"Finished in {result.total_seconds:.0f} s "
        f"({', '.join(f'{name} {seconds:.0f} s' for name, seconds in result.step_seconds.items())}).\n"
        f"Pre-registered success criterion: {verdict[result.criterion_met]}.\n"
        f"Audit report for the board:   {result.report_path}\n"
        f"Ranked list for caseworkers:  {result.ranked_csv}\n"
        f"Residents not scored, and why: {result.unscored_csv}\n"
        f"Case list (open in a browser): {result.ranked_csv.parent / 'case_list.html'}\n"
        f"A flagged resident's journey:  {_first_journey_command(result.ranked_csv, config)}\n"
        f"Open MLflow:                  {ui_command()}",
        highlight=False,
    )
    if result.after_list is not None:
        _print_after_list(result.after_list)


def _print_after_list(after: Any) -> None:
    """Where the demo's steps after the list wrote their pages (demo.AfterList)."""
    lines: list[str] = []
    if after.journey is not None:
        lines += [f"Journey of {after.resident_id} (top flagged): {after.journey}",
                  f"Explanation letter for them:       {after.explanation}"]
    lines.append(f"Monitoring report ({after.monitor_overall}): {after.monitor_html}")
    if after.necessity_html is not None:
        lines += [f"Necessity of each source (DPIA):   {after.necessity_html}",
                  f"Audit report with that table:      {after.audit_with_necessity}"]
    else:
        lines.append("Necessity of each source (DPIA):   not run (slow); `make demo-necessity` or "
                     "`earlysignal demo --necessity`")
    console.print("\n".join(lines), highlight=False)


def _first_journey_command(ranked_csv: Path, config_path: Path | None = None) -> str:
    """The journey command for the top of a ranked list (the demo's closing hint)."""
    import pandas as pd

    from earlysignal.caselist import journey_command

    ranked = pd.read_csv(ranked_csv, nrows=1)
    if ranked.empty:
        return "(nobody was scored)"
    return journey_command(ranked["resident_id"][0], str(ranked["as_of"][0])[:10], ranked_csv.parent, config_path)

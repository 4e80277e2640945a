"""The `earlysignal` command line: thin wrappers that parse options, call the library and show progress.

Each command lives in the library module that does the work; this file only wires them up.
User errors (`EarlySignalError`) print as one clear message and exit with code 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
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
    """Show an EarlySignalError as a plain red message and exit 2, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EarlySignalError as error:
            console.print(f"[bold red]Error:[/bold red] {error}", highlight=False)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def main() -> None:  # pragma: no cover - console-script entry point
    app()


@app.command()
@user_errors_as_messages
def approve(
    version: Annotated[str, typer.Option("--version", help="The registered model version being approved, e.g. 3.")],
    approver: Annotated[
        str, typer.Option("--approver", help="Name of the accountable person approving (stored in the registry).")
    ],
    report: Annotated[
        Path, typer.Option("--report", help="The audit report (audit.html) the approver read; its SHA-256 is recorded.")
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="Registered model name (default: model.name from the config).")
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="Optional note, e.g. the board meeting and any conditions.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Approve a model version after its audit: record who, when and the hashes, and make it the champion."""
    from earlysignal.approval import approve_model
    from earlysignal.config import load_config
    from earlysignal.tracking import configure_tracking

    name = model or load_config(config).model.name
    configure_tracking()
    record = approve_model(name, version, approver=approver, report_path=report, note=note)
    if record.criterion == "not met":
        console.print("[bold red]Note: the pre-registered success criterion was NOT MET in this audit.[/bold red]")
    if record.findings:
        console.print(f"[bold red]Note: the audit flagged {record.findings} fairness finding(s).[/bold red]")
    console.print(
        f"[green]Approved[/green] {name} version {record.model_version} by {record.approver} "
        f"at {record.approved_at}; alias 'champion' now points to it.\n"
        f"  report sha256 {record.report_sha256}\n  model  sha256 {record.model_sha256}",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def revoke(
    version: Annotated[str, typer.Option("--version", help="The registered model version whose approval ends.")],
    by: Annotated[str, typer.Option("--by", help="Name of the person revoking the approval.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the approval is withdrawn (shown to the board).")],
    model: Annotated[
        str | None, typer.Option("--model", help="Registered model name (default: model.name from the config).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Withdraw a model version's approval; scoring with it stops until a version is approved again."""
    from earlysignal.approval import revoke_approval
    from earlysignal.config import load_config
    from earlysignal.tracking import configure_tracking

    name = model or load_config(config).model.name
    configure_tracking()
    revoke_approval(name, version, by=by, reason=reason)
    console.print(f"[yellow]Revoked[/yellow] approval of {name} version {version} ({reason}).", highlight=False)


@app.command()
@user_errors_as_messages
def train(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Borough data folder (default: data.dir from the config); the feature matrix is built or reused from it."),
    ] = None,
    matrix: Annotated[
        Path | None,
        typer.Option("--matrix", help="An existing feature matrix (Parquet with its JSON sidecar) to train on instead of building one."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Train on temporal splits, compare with baselines, log to MLflow and register the model as 'candidate'."""
    from earlysignal.config import load_config
    from earlysignal.console import progress_bar
    from earlysignal.modeling.train import train_model

    project = load_config(config)
    with progress_bar(transient=True) as bar:
        task = bar.add_task("training", total=None)
        result = train_model(project, data_dir=data, matrix=matrix,
                             progress=lambda step: bar.update(task, description=f"training: {step}"))
    console.print(
        f"Registered [bold]{result.model_uri}[/bold] (alias 'candidate'), MLflow run {result.run_id}.\n"
        f"Next: earlysignal audit --model {result.model_uri}",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def score(
    as_of: Annotated[str, typer.Option("--as-of", help="The cut-off date to score at (YYYY-MM-DD): only records known before it are used.")],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model URI (default: models:/<model.name>@champion, the approved model)."),
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Borough data folder (default: data.dir from the config).")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: reports/scores/<model.name>-<as_of>/)."),
    ] = None,
    allow_unapproved: Annotated[
        bool,
        typer.Option("--allow-unapproved", help="Score with a model that has no champion approval (testing only; said loudly)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Score the cohort at --as-of: ranked list with reasons, unscored list with reasons, drift summary."""
    import datetime as dt

    from earlysignal.config import load_config
    from earlysignal.console import progress_bar
    from earlysignal.errors import EarlySignalError
    from earlysignal.scoring import score_cohort

    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        raise EarlySignalError(f"--as-of {as_of!r} is not a date of the form YYYY-MM-DD") from None
    project = load_config(config)
    with progress_bar(transient=True) as bar:
        task = bar.add_task("scoring", total=None)
        result = score_cohort(project, day, model_uri=model, data_dir=data, out=out,
                              allow_unapproved=allow_unapproved,
                              progress=lambda step: bar.update(task, description=f"scoring: {step}"))
    counts = result.summary["counts"]
    console.print(
        f"Scored {counts['scored']} residents at {day} with {result.summary['model_uri']}: "
        f"{counts['flagged']} flagged for review, {counts['unscored']} living in the borough not scored "
        f"(reasons in {result.unscored_csv}).\nRanked list: {result.ranked_csv}\nSummary: {result.summary_json}",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def validate(
    data_dir: Annotated[
        Path | None,
        typer.Argument(help="Borough data folder holding residents, residency, events, outcomes (Parquet or CSV) and manifest.json (default: data.dir from the config)."),
    ] = None,
    quarantine: Annotated[
        bool,
        typer.Option("--quarantine/--no-quarantine", help="Write bad rows to DATA_DIR/quarantine/<table>.parquet with a reason each (default) or only count them."),
    ] = True,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit with code 1 when any row is quarantined (for pipelines that must stop on bad rows)."),
    ] = False,
    all_checks: Annotated[
        bool,
        typer.Option("--all-checks", help="List every check with its count, including those no row failed (default: failing checks only)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Check a borough folder against the data contract: counts read / accepted / quarantined per table and check.

    Exit code 0 when the data is usable (bad rows are set aside in DATA_DIR/quarantine/), 1 with --strict when any
    row was quarantined, 2 when a file cannot be used at all, a required table has no accepted row, or a table
    quarantines more than contract.max_quarantine_share of its rows. The rules are in docs/data-contract.md.
    """
    from earlysignal.config import load_config
    from earlysignal.console import progress_bar
    from earlysignal.contract import TABLE_NAMES, report_table, require_usable, validate_directory

    project = load_config(config)
    folder = data_dir if data_dir is not None else project.data.dir
    with progress_bar(transient=True) as bar:
        task = bar.add_task("validating", total=len(TABLE_NAMES))
        started: list[str] = []

        def on_table(name: str) -> None:
            if started:
                bar.advance(task)
            started.append(name)
            bar.update(task, description=f"validating {name}")

        linked = validate_directory(folder, config=project, write_quarantine=quarantine, on_table=on_table)
        bar.advance(task)
    report = linked.report
    console.print(report_table(report, all_checks=all_checks))
    for warning in report.warnings:
        console.print(f"[yellow]Warning:[/yellow] {warning}", highlight=False)
    for name, path in report.quarantine_files.items():
        console.print(f"Quarantined {name} rows: {path}", highlight=False)
    console.print(
        f"{report.total_quarantined:,} rows quarantined; "
        f"{sum(c.accepted for c in report.tables.values()):,} accepted.",
        highlight=False,
    )
    require_usable(report, project.contract)  # nothing usable, or too much quarantined: exit 2 with the reasons
    if strict and report.total_quarantined:
        raise typer.Exit(code=1)


@app.command()
@user_errors_as_messages
def features(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data", help="Borough data folder to read (default: data.dir from the config)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the Parquet matrix; the JSON sidecar goes to OUT.json (default: DATA/features/<label.name>.parquet)."),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="Where the generated SQL runs: duckdb or spark (default: build.engine from the config)."),
    ] = None,
    show_sql: Annotated[
        bool,
        typer.Option("--show-sql", help="Print every SQL statement the engine ran (nothing when the matrix is reused)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Build the point-in-time feature matrix (cohort x as_of rows, label, features, attr__ columns), or reuse it when spec and data are unchanged."""
    from earlysignal.config import load_config
    from earlysignal.engines import get_engine
    from earlysignal.features import build_or_reuse_feature_matrix, default_matrix_path, sidecar_path

    project = load_config(config)
    target = out if out is not None else default_matrix_path(project, data_dir)
    with get_engine(engine or project.build.engine) as runner:
        matrix, status = build_or_reuse_feature_matrix(project, data_dir=data_dir, out=target, engine=runner, progress=True)
        if show_sql:
            for statement in runner.executed_sql:
                console.print(statement + ";\n", markup=False, highlight=False)
    meta = matrix.metadata
    console.print(
        f"{status}: {len(matrix.frame):,} rows x {len(matrix.feature_columns)} feature columns "
        f"over {len(meta['as_of_dates'])} as_of dates -> {target} (+ {sidecar_path(target).name})",
        highlight=False,
    )
    if status != "reused":
        console.print(f"Timings (s): {meta['timings']}", highlight=False)


@app.command()
@user_errors_as_messages
def synth(
    residents: Annotated[
        int | None,
        typer.Option("--residents", help="Approximate number of people living in the borough at any time (default: synth.residents)."),
    ] = None,
    years: Annotated[
        int | None,
        typer.Option("--years", help="Years of history before the extract date synth.end_date (default: synth.years)."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Random seed; the same seed and options give byte-identical files (default: synth.seed)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write the borough into (default: data.dir from the config)."),
    ] = None,
    world: Annotated[
        str | None,
        typer.Option(
            "--world",
            help="'standard': outcomes driven by the latent household states; 'null': outcomes independent of "
            "everything, so any model that beats chance is leaking (default: synth.world).",
        ),
    ] = None,
    recording_bias: Annotated[
        list[str] | None,
        typer.Option(
            "--recording-bias",
            help="Over-record one group's incidents, as ATTRIBUTE=GROUP:FACTOR\\[@SOURCE,SOURCE...]: a group of a "
            "synthetic person attribute and the sources that over-record it (docs/synthetic-borough.md lists them and "
            "the default sources). Repeatable; replaces synth.recording_bias when given.",
        ),
    ] = None,
    config: ConfigOption = None,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Also write raw/: each service's own extract (names, addresses, codes, free text), "
                     "with the truth behind every raw record in ground_truth/raw_records.parquet."),
    ] = False,
) -> None:
    """Generate a synthetic borough: contract tables, manifest.json and ground_truth/ (latent states, hazards)."""
    from pydantic import ValidationError

    from earlysignal.config import SynthSection, load_config
    from earlysignal.console import progress_bar
    from earlysignal.errors import ConfigError
    from earlysignal.synth import STAGES, generate_borough, parse_recording_bias

    project = load_config(config)
    settings = project.synth.model_dump()
    overrides = {"residents": residents, "years": years, "seed": seed, "world": world}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if recording_bias:
        settings["recording_bias"] = tuple(parse_recording_bias(text) for text in recording_bias)
    try:
        synth_settings = SynthSection.model_validate(settings)
    except ValidationError as error:
        problems = "; ".join(
            f"--{'-'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in error.errors()
        )
        raise ConfigError(f"synth options are not valid: {problems}") from None
    target = out if out is not None else project.data.dir
    with progress_bar() as bar:
        task = bar.add_task("synthetic borough", total=len(STAGES))
        bar.update(task, description=f"synth: {STAGES[0]}")

        def on_stage(stage: str) -> None:
            bar.advance(task)
            following = STAGES.index(stage) + 1
            if following < len(STAGES):
                bar.update(task, description=f"synth: {STAGES[following]}")

        summary = generate_borough(target, synth_settings, on_stage=on_stage)
        if raw:
            from earlysignal.synth.raw_extracts import write_raw_extracts

            raw_task = bar.add_task("synth: raw extracts", total=1)
            raw_counts = write_raw_extracts(summary.out_dir, synth_settings.seed)
            bar.advance(raw_task)
    counts = ", ".join(f"{name} {n:,}" for name, n in summary.row_counts.items())
    console.print(
        f"Wrote {synth_settings.world} borough to {summary.out_dir}: {counts}; "
        f"window {summary.window_start} to {summary.extract_date} (exclusive).",
        highlight=False,
    )
    if raw:
        console.print(f"Raw extracts in {summary.out_dir / 'raw'}: {sum(raw_counts.values()):,} rows in "
                      f"{len(raw_counts)} files.", highlight=False)


@app.command()
@user_errors_as_messages
def audit(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Registered model to audit: models:/NAME/VERSION or models:/NAME@ALIAS "
            "(default: models:/<model.name>@candidate).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for audit.html and audit.json (default: reports/audit/<model>-v<version>/)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Audit a trained model for the governance board: fairness by group, small numbers, drivers, model card.

    Writes one self-contained HTML report (printable to PDF) and audit.json with every number,
    and logs both to the model's MLflow run under audit/.
    """
    from earlysignal.audit import run_audit
    from earlysignal.config import load_config
    from earlysignal.console import progress_bar

    project = load_config(config)
    model_uri = model or f"models:/{project.model.name}@candidate"
    with progress_bar(transient=True) as progress:
        task = progress.add_task(f"auditing {model_uri}", total=None)
        result = run_audit(model_uri, config=project if config is not None else None, out_dir=out)
        progress.update(task, total=1, completed=1)
    summary = result.audit["summary"]
    criterion = summary["criterion"]
    met = criterion.get("met")
    colour = "green" if met else "bold red"
    verdict = "MET" if met else ("NOT EVALUABLE" if met is None else "NOT MET")
    console.print(f"Audited {result.model_name} version {result.model_version} (run {result.run_id}).", highlight=False)
    console.print(f"[{colour}]Pre-registered success criterion {verdict}[/{colour}]", highlight=False)
    findings = result.findings
    if findings:
        console.print(f"[bold red]{len(findings)} fairness finding(s) need the board's attention:[/bold red]")
        for finding in findings[:5]:
            console.print(f"  - {finding['text']}", highlight=False)
    else:
        console.print("[green]No fairness finding flagged.[/green]")
    approval = result.audit.get("approval")
    if not approval or approval.get("status") != "approved":
        console.print("[bold red]NOT APPROVED[/bold red] for scoring.")
    console.print(f"Report: {result.html_path}\nNumbers: {result.json_path}", highlight=False)


@app.command()
@user_errors_as_messages
def demo(
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Regenerate the synthetic borough even when one made with the same arguments exists."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Run the whole story on the synthetic borough: synth, validate, features, train, audit, demo approval, score."""
    from earlysignal.config import load_config
    from earlysignal.demo import run_demo
    from earlysignal.tracking import ui_command

    project = load_config(config)
    steps = ("synth", "validate", "features", "train", "audit", "approve", "score")

    def announce(name: str) -> None:
        console.rule(f"[bold]{steps.index(name) + 1}/{len(steps)} {name}")

    result = run_demo(project, fresh=fresh, step=announce)
    console.rule("[bold]done")
    verdict = {True: "[green]met[/green]", False: "[bold red]not met[/bold red]", None: "not evaluable"}
    console.print(
        f"Finished in {result.total_seconds:.0f} s "
        f"({', '.join(f'{name} {seconds:.0f} s' for name, seconds in result.step_seconds.items())}).\n"
        f"Pre-registered success criterion: {verdict[result.criterion_met]}.\n"
        f"Audit report for the board:   {result.report_path}\n"
        f"Ranked list for caseworkers:  {result.ranked_csv}\n"
        f"Residents not scored, and why: {result.unscored_csv}\n"
        f"Open MLflow:                  {ui_command()}",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def ingest(
    raw: Annotated[Path, typer.Option("--raw", help="Folder of raw departmental extracts (e.g. DATA/raw from `synth --raw`).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write person/address records, gazetteer, events, outcomes, coverage.")],
    extract_date: Annotated[
        str | None,
        typer.Option("--extract-date", help="Date the extracts were taken, YYYY-MM-DD (default: extract_date in RAW/manifest.json)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Ingest raw extracts with one mapping per source (ingest.mappings): code lists, rules, coverage, quarantine."""
    import datetime as dt

    from earlysignal.config import load_config, packaged_config_path
    from earlysignal.console import progress_bar
    from earlysignal.dictionary import dictionary_for
    from earlysignal.errors import ConfigError
    from earlysignal.ingest import ingest as run_ingest
    from earlysignal.ingest import resolve_mapping_paths

    project = load_config(config)
    try:
        date = dt.date.fromisoformat(extract_date) if extract_date else None
    except ValueError:
        raise ConfigError(f"--extract-date must be YYYY-MM-DD (got {extract_date!r})") from None
    paths = resolve_mapping_paths(list(project.ingest.mappings), packaged_config_path().parent)
    with progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def on_progress(source: str, message: str, rows: int) -> None:
            if source not in tasks:
                tasks[source] = bar.add_task(f"ingest {source}", total=None)
            bar.update(tasks[source], description=f"ingest {source}: {message} ({rows:,} rows read)")
            if message == "done":
                bar.update(tasks[source], total=1, completed=1)

        dictionary = dictionary_for(project)
        outcome_types = project.contract.outcome_types or tuple(dictionary.outcomes)
        summary = run_ingest(raw, out, paths, dictionary.event_types_by_source(), outcome_types, date, on_progress)
    from rich.table import Table

    table = Table(title=f"Ingested {raw} -> {out} (extract date {summary.extract_date})")
    for column in ("source", "read", "mapped", "excluded", "quarantined", "read = mapped + excluded + quarantined"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source, r in sorted(summary.reports.items()):
        table.add_row(source, f"{r.read:,}", f"{r.mapped:,}", f"{r.excluded_total:,}", f"{r.quarantined_total:,}",
                      "ok" if r.read == r.mapped + r.excluded_total + r.quarantined_total else "MISMATCH")
    console.print(table)
    counts = ", ".join(f"{name} {n:,}" for name, n in summary.row_counts.items())
    console.print(f"Wrote {counts}; coverage in {out / 'coverage.md'}.", highlight=False)
    if sum(r.mapped for r in summary.reports.values()) == 0:
        raise ConfigError("nothing was usable: every row was excluded or quarantined; see coverage.md")

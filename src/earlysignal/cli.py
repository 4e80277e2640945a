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
    report: Annotated[
        Path,
        typer.Option("--report", help="The audit report (audit.html) `earlysignal audit` wrote for this version; it is archived read-only."),
    ],
    key: Annotated[
        Path,
        typer.Option("--key", help="Your Ed25519 private key (from `earlysignal keys`); its public key must be in approval.approvers."),
    ],
    approver: Annotated[
        str | None,
        typer.Option("--approver", help="Your name as approval.approvers lists it (optional cross-check of the key's owner)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Registered model name (default: model.name from the config).")
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="Optional note, e.g. the board meeting and any conditions.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Approve a model version after its audit: sign an entry in the approval ledger and make it the champion."""
    from earlysignal.approval import approve_model, store_dir
    from earlysignal.config import load_config
    from earlysignal.ledger import Ledger, entry_hash, entry_number
    from earlysignal.tracking import configure_tracking

    project = load_config(config)
    name = model or project.model.name
    configure_tracking()
    record = approve_model(name, version, report_path=report, key_path=key, config=project, note=note,
                           approver=approver)
    if record.criterion == "not met":
        console.print("[bold red]Note: the pre-registered success criterion was NOT MET in this audit.[/bold red]")
    if record.findings:
        console.print(f"[bold red]Note: the audit flagged {record.findings} fairness finding(s).[/bold red]")
    ledger = Ledger(store_dir(project))
    entries = ledger.entries()
    console.print(
        f"[green]Approved[/green] {name} version {record.model_version} by {record.approver}"
        f"{f' ({record.role})' if record.role else ''} at {record.approved_at}; signed ledger entry "
        f"{entry_number(record.ledger_seq or 0)} of {len(entries)} in {ledger.path}; alias 'champion' now points to it.\n"
        f"  report sha256 {record.report_sha256} (archived: {record.report_path})\n"
        f"  model  sha256 {record.model_sha256}\n"
        f"  ledger head   {len(entries)}:{entry_hash(entries[-1])} (write this in the board's minutes)",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def revoke(
    version: Annotated[str, typer.Option("--version", help="The registered model version whose approval ends (final).")],
    reason: Annotated[str, typer.Option("--reason", help="Why the approval is withdrawn (shown to the board).")],
    key: Annotated[
        Path,
        typer.Option("--key", help="Your Ed25519 private key (from `earlysignal keys`); its public key must be in approval.approvers."),
    ],
    by: Annotated[
        str | None, typer.Option("--by", help="Your name as approval.approvers lists it (optional cross-check).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Registered model name (default: model.name from the config).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Withdraw a model version's approval for good (a signed ledger entry); scoring with it stops."""
    from earlysignal.approval import revoke_approval
    from earlysignal.config import load_config
    from earlysignal.tracking import configure_tracking

    project = load_config(config)
    name = model or project.model.name
    configure_tracking()
    record = revoke_approval(name, version, reason=reason, key_path=key, config=project, by=by)
    from earlysignal.approval import store_dir
    from earlysignal.ledger import Ledger, entry_hash

    entries = Ledger(store_dir(project)).entries()
    console.print(
        f"[yellow]Revoked[/yellow] approval of {name} version {version} by {record.revoked_by} ({reason}); "
        "this is final for that version.\n"
        f"  signed ledger entry {len(entries)} of {len(entries)}; ledger head {len(entries)}:{entry_hash(entries[-1])} "
        "(write this in the board's minutes)",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def keys(
    name: Annotated[str, typer.Option("--name", help="The approver's name; the files are named after it.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the key pair (default: ~/.config/earlysignal/keys, outside any repository)."),
    ] = None,
    passphrase: Annotated[
        bool,
        typer.Option("--passphrase", help="Encrypt the private key with a passphrase (asked for now; give it later in EARLYSIGNAL_KEY_PASSPHRASE)."),
    ] = False,
) -> None:
    """Make an Ed25519 key pair for signing approvals; print the public key line for approval.approvers."""
    from earlysignal.ledger import default_key_dir, generate_key_pair

    folder = out if out is not None else default_key_dir()
    secret = typer.prompt("Passphrase", hide_input=True, confirmation_prompt=True) if passphrase else None
    private_path, public_path = generate_key_pair(name, folder, passphrase=secret)
    inside = [p for p in [private_path.resolve(), *private_path.resolve().parents] if (p / ".git").exists()]
    if inside:
        console.print(
            f"[bold yellow]Warning:[/bold yellow] {private_path} is inside the repository {inside[0]}; "
            "move it somewhere only you can read and never commit it.",
            highlight=False,
        )
    console.print(
        f"Private key: {private_path} (mode 0600; keep it secret, sign with --key {private_path})\n"
        f"Public key:  {public_path}\n"
        "Ask the config's owner to add you to approval.approvers:\n"
        f"  - name: {name}\n    role: \"...\"\n    public_key: \"{public_path.read_text(encoding='utf-8').strip()}\"",
        highlight=False,
        soft_wrap=True,  # the key line is pasted into YAML: a wrapped line is a broken key
    )
    console.print(
        "Then an approver already pinned in the ledger signs the new list: earlysignal approvers --key PATH "
        "--reason \"...\" (until then `score` refuses: the approver-set check).",
        highlight=False,
    )
    console.print(
        "An output checker who signs release bundles off is listed under release.checkers instead, with the "
        "same three lines; that list needs no signed change (docs/federation.md).",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def approvers(
    key: Annotated[
        Path,
        typer.Option("--key", help="Your Ed25519 private key; you must be an approver the ledger already pins."),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why the list changes (e.g. \"new Chair, board of 12 Nov\").")],
    config: ConfigOption = None,
) -> None:
    """Pin the config's approval.approvers in the ledger (a signed entry): who may approve changes only so."""
    from earlysignal.approval import sign_approver_set, store_dir
    from earlysignal.config import load_config
    from earlysignal.ledger import Ledger, approver_set_sha256, entry_hash, entry_number

    project = load_config(config)
    entry = sign_approver_set(project, key, reason)
    entries = Ledger(store_dir(project)).entries()
    names = ", ".join(sorted(entry["approver_names"].values()))
    console.print(
        f"[green]Pinned[/green] the approver set {approver_set_sha256(entry['approver_keys'])[:12]} ({names}), "
        f"signed by {entry['approver']} as ledger entry {entry_number(entry['seq'])} of {len(entries)}.\n"
        f"  ledger head {len(entries)}:{entry_hash(entries[-1])} (write this in the board's minutes)",
        highlight=False,
    )


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
    as_of: Annotated[str, typer.Option("--as-of", help="The cut-off date to score at (YYYY-MM-DD, between the data's first records and its extract date): only records known before it are used.")],
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
    from earlysignal.config import load_config
    from earlysignal.console import progress_bar
    from earlysignal.dates import parse_date
    from earlysignal.scoring import score_cohort

    day = parse_date(as_of, "--as-of")
    project = load_config(config)
    with progress_bar(transient=True) as bar:
        task = bar.add_task("scoring", total=None)
        result = score_cohort(project, day, model_uri=model, data_dir=data, out=out,
                              allow_unapproved=allow_unapproved, config_path=config,
                              progress=lambda step: bar.update(task, description=f"scoring: {step}"))
    counts = result.summary["counts"]
    console.print(
        f"Scored {counts['scored']} residents at {day} with {result.summary['model_uri']}: "
        f"{counts['flagged']} flagged for review, {counts['unscored']} more in the population not scored "
        f"(reasons in {result.unscored_csv}).\nRanked list: {result.ranked_csv}\nSummary: {result.summary_json}"
        f"\nCase list: {result.summary['outputs'].get('case_list_html')}",
        highlight=False,
    )


@app.command()
@user_errors_as_messages
def validate(
    data_dir: Annotated[
        Path | None,
        typer.Argument(help="Borough data folder holding residents, residency, events, outcomes (Parquet or CSV) and manifest.json (default: data.dir from the config)."),
    ] = None,
    data_option: Annotated[
        Path | None,
        typer.Option("--data", help="The same borough data folder, as the other commands take it (instead of DATA_DIR)."),
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
    if data_dir is not None and data_option is not None and data_dir != data_option:
        raise typer.BadParameter(f"DATA_DIR {data_dir} and --data {data_option} differ; give one of them")
    folder = data_dir or data_option or project.data.dir
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
    from earlysignal.features import build_or_reuse_feature_matrix, default_matrix_path, matrix_status_words, sidecar_path

    project = load_config(config)
    target = out if out is not None else default_matrix_path(project, data_dir)
    with get_engine(engine or project.build.engine) as runner:
        matrix, status = build_or_reuse_feature_matrix(project, data_dir=data_dir, out=target, engine=runner, progress=True)
        if show_sql:
            for statement in runner.executed_sql:
                console.print(statement + ";\n", markup=False, highlight=False)
    meta = matrix.metadata
    console.print(
        f"{matrix_status_words(status)}: {len(matrix.frame):,} rows x {len(matrix.feature_columns)} feature columns "
        f"over {len(meta['as_of_dates'])} as_of dates -> {target} (+ {sidecar_path(target).name})",
        highlight=False,
    )
    _print_partitions(meta, project)
    label = meta.get("label", {})
    if label.get("included", True):
        console.print(
            f"Label {label.get('name')} ({label.get('horizon', '')}): {label.get('censored_rows', 0):,} row(s) censored "
            "(follow-up ended inside the window without the outcome: label null, see label.censoring)",
            highlight=False,
        )
    short = meta.get("windows_before_data_start") or {}
    if short:
        console.print(
            f"[yellow]{len(short)} feature(s) reach back before their source's data start at some as_of dates "
            f"({sum(short.values()):,} cells set to null); see docs/features.md[/yellow]",
            highlight=False,
        )
    if status != "reused":
        console.print(f"Timings (s): {meta['timings']}", highlight=False)


def _print_partitions(meta: dict, project: object) -> None:
    """One line on how a partitioned matrix was split: count, what chose it, part files and their rows."""
    parts = meta.get("partitions")
    if not parts:
        return
    build = getattr(project, "build", None)
    if build is not None and build.partitions is not None:
        chosen = f"build.partitions: {build.partitions}"
    elif build is not None and build.memory_budget_gb is not None:
        chosen = f"from build.memory_budget_gb: {build.memory_budget_gb}, by the estimate in docs/config.md"
    else:
        chosen = "as recorded in the sidecar"
    rows = parts.get("rows_per_part") or [0]
    where = "each in a Spark task" if meta.get("spark_tasks") else f"on {meta.get('engine', {}).get('name', 'duckdb')}"
    console.print(
        f"In {parts['count']} partitions ({chosen}), built {where}: {parts['parts']} part file(s) of "
        f"{min(rows):,} to {max(rows):,} rows; households and addresses kept whole",
        highlight=False,
    )


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
    recording_change: Annotated[
        list[str] | None,
        typer.Option(
            "--recording-change",
            help="Plant a recording change, as SOURCE:FACTOR@YYYY-MM-DD (factor 0.2: from that date the source records "
            "20% of what it did; docs/synthetic-borough.md). Repeatable; replaces synth.recording_change when given.",
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
    from earlysignal.synth import STAGES, generate_borough, parse_recording_bias, parse_recording_change

    project = load_config(config)
    settings = project.synth.model_dump()
    overrides = {"residents": residents, "years": years, "seed": seed, "world": world}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if recording_bias:
        settings["recording_bias"] = tuple(parse_recording_bias(text) for text in recording_bias)
    if recording_change:
        settings["recording_change"] = tuple(parse_recording_change(text) for text in recording_change)
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
    scores: Annotated[
        Path | None,
        typer.Option("--scores", help="Audit scores from elsewhere instead of a model: a CSV/Parquet file with "
                     "resident_id, as_of, score, label and flagged (or pass --capacity)."),
    ] = None,
    source_name: Annotated[
        str | None,
        typer.Option("--source-name", help="Whose scores --scores holds, as the report should name them "
                     "(e.g. \"Vendor X tool\")."),
    ] = None,
    capacity: Annotated[
        int | None,
        typer.Option("--capacity", help="With --scores and no flagged column: flag the top K of each as_of by score."),
    ] = None,
    scores_data: Annotated[
        Path | None,
        typer.Option("--scores-data", help="With --scores: the linked data whose residents' protected "
                     "characteristics are joined (default: data.dir of the config)."),
    ] = None,
) -> None:
    """Audit a trained model for the governance board: fairness by group, small numbers, drivers, model card.

    Writes one self-contained HTML report (printable to PDF) and audit.json with every number,
    and logs both to the model's MLflow run under audit/. With --scores, audits scores from
    elsewhere (a vendor's tool, a manual list) the same way, on the same residents.
    """
    from earlysignal.audit import run_audit
    from earlysignal.config import load_config
    from earlysignal.console import progress_bar

    project = load_config(config)
    if scores is not None:
        _audit_external_scores(project, scores, source_name, capacity, scores_data, out)
        return
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
    if not summary.get("evaluated", True):
        verdict = "NOT EVALUATED (no test split: training.n_test_splits 0 or every split skipped)"
    console.print(f"Audited {result.model_name} version {result.model_version} (run {result.run_id}).", highlight=False)
    console.print(f"[{colour}]Pre-registered success criterion {verdict}[/{colour}]", highlight=False)
    findings = result.findings
    if findings:
        console.print(f"[bold red]{len(findings)} fairness finding(s) need the board's attention:[/bold red]")
        _print_cut_list([f"  - {finding['text']}" for finding in findings], result.html_path)
    else:
        console.print("[green]No fairness finding flagged.[/green]")
    approval = result.audit.get("approval")
    if not approval or approval.get("status") != "approved":
        console.print("[bold red]NOT APPROVED[/bold red] for scoring.")
    if result.html_path.name != "audit.html":
        console.print(
            f"[yellow]{result.html_path.with_name('audit.html')} is an approved report and was kept as it was read; "
            f"this audit was written beside it.[/yellow]",
            highlight=False,
        )
    console.print(f"Report: {result.html_path}\nNumbers: {result.json_path}", highlight=False)


def _print_cut_list(lines: list[str], where: Path) -> None:
    """The first few lines of a console list, then '... and N more (see FILE)' when it was cut."""
    from earlysignal.console import CONSOLE_LIST_LIMIT, and_more

    for line in lines[:CONSOLE_LIST_LIMIT]:
        console.print(line, highlight=False)
    more = and_more(len(lines), CONSOLE_LIST_LIMIT, where)
    if more:
        console.print(more, highlight=False)


def _audit_external_scores(
    project: Any, scores: Path, source_name: str | None, capacity: int | None, data: Path | None, out: Path | None
) -> None:
    """`audit --scores`: the fairness audit of scores from elsewhere."""
    from earlysignal.audit.external import audit_scores_file
    from earlysignal.config import CapacitySection

    if not source_name:
        raise EarlySignalError("--scores needs --source-name: say whose scores these are (e.g. \"Vendor X tool\")")
    result = audit_scores_file(
        scores, project, source_name=source_name, data_dir=data, out_dir=out,
        capacity=CapacitySection(k=capacity) if capacity is not None else None,
    )
    rows = result.audit["rows"]
    console.print(
        f"Audited scores from {source_name} ({scores.name}): {rows['audited']} rows (rounded); dropped "
        f"{rows['unlabelled_dropped']} without a label and {rows['unknown_residents_dropped']} of residents "
        "not in the data.",
        highlight=False,
    )
    findings = result.audit["fairness"]["findings"]
    if findings:
        console.print(f"[bold red]{len(findings)} fairness finding(s):[/bold red]")
        _print_cut_list([f"  - {finding['text']}" for finding in findings], result.html_path)
    else:
        console.print("[green]No fairness finding flagged.[/green]")
    console.print(f"Report: {result.html_path}\nNumbers: {result.json_path}", highlight=False)


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


def _first_journey_command(ranked_csv: Path, config_path: Path | None = None) -> str:
    """The journey command for the top of a ranked list (the demo's closing hint)."""
    import pandas as pd

    from earlysignal.caselist import journey_command

    ranked = pd.read_csv(ranked_csv, nrows=1)
    if ranked.empty:
        return "(nobody was scored)"
    return journey_command(ranked["resident_id"][0], str(ranked["as_of"][0])[:10], ranked_csv.parent, config_path)


def _as_of_date(text: str) -> Any:
    # The one parser: date.fromisoformat would also take 20210101 and 2021-W01-1, which score refuses.
    from earlysignal.dates import parse_date

    return parse_date(text, "--as-of")


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


@app.command()
@user_errors_as_messages
def link(
    ingested: Annotated[
        Path, typer.Option("--ingested", help="Folder written by `earlysignal ingest` (person_records.parquet, gazetteer.parquet, events.parquet ...).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the linked histories (residents, residency, events, outcomes, manifest.json), person_links.parquet and link_quality.json.")],
    previous: Annotated[
        Path | None,
        typer.Option("--previous", help="Last month's link output folder: its resident IDs are kept, and link_changes.parquet says which merged or split."),
    ] = None,
    ground_truth: Annotated[
        Path | None,
        typer.Option("--ground-truth", help="Synthetic worlds: the true person per record (e.g. <synth dir>/ground_truth/raw_records.parquet); default linkage.ground_truth."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Link people and households across sources with Splink: stable keyed resident IDs, linked histories, link quality.

    Needs the linkage secret (env var EARLYSIGNAL_LINK_SECRET or linkage.secret_file; docs/ingest-and-link.md).
    Names, addresses, NHS numbers and UPNs are never written. Check the result with `earlysignal validate OUT`.
    """
    from earlysignal.config import load_config
    from earlysignal.linkage.run import run_link

    project = load_config(config)
    with console.status("linking people with Splink"):
        summary = run_link(ingested, out, project, previous=previous, ground_truth=ground_truth)
    quality = summary.quality
    console.print(
        f"Linked {summary.records:,} person records into {summary.residents:,} residents "
        f"(run {summary.link_run_id}; {quality['pairs_compared']:,} pairs compared, threshold {quality['threshold']}).",
        highlight=False,
    )
    if "ground_truth" in quality:
        truth = quality["ground_truth"]
        console.print(
            f"Against ground truth: precision {truth['precision']}, recall {truth['recall']}, F1 {truth['f1']}.",
            highlight=False,
        )
        if "persons_split" in truth:
            console.print(
                f"{truth['persons_split']:,} of {truth['persons']:,} true persons are split over several clusters; "
                f"{truth['clusters_mixed']:,} clusters hold records of several people.",
                highlight=False,
            )
    if quality.get("clerical_review"):
        review = quality["clerical_review"]
        console.print(
            f"Against {review['pairs_reviewed']:,} clerically reviewed pairs: precision {review['precision']}, "
            f"recall {review['recall']}, F1 {review['f1']}.",
            highlight=False,
        )
    if "ground_truth" not in quality and not quality.get("clerical_review"):
        # Real data has no ground truth: without a reviewed sample nobody has measured how well it linked.
        console.print(
            "[yellow]Linkage precision and recall not measured: no ground truth (--ground-truth, synthetic worlds) "
            "and no clerically reviewed pairs (linkage.clerical_review).[/yellow]",
            highlight=False,
        )
    if "changes_since_previous" in quality:
        console.print(f"Changes since the previous run: {quality['changes_since_previous']}", highlight=False)
        gone = quality["changes_since_previous"].get("gone", 0)
        if gone:
            # An ID no record carries any more is lost for good: usually an extract missing earlier rows.
            console.print(
                f"[yellow]{gone:,} previous resident ID(s) have no record in these extracts and are gone "
                "(link_changes.parquet, change 'gone'): each month's extracts must hold every earlier record "
                "under the same record ID (docs/ingest-and-link.md, 'Stable IDs across monthly runs').[/yellow]",
                highlight=False,
            )
    console.print(f"Output: {summary.out_dir} (link quality: {summary.out_dir / 'link_quality.json'})", highlight=False)


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
    overall = result.document["overall"]
    console.print(f"Overall: [{colours.get(overall, 'white')}]{overall.upper()}[/{colours.get(overall, 'white')}] "
                  f"({len(result.document['lists'])} list(s)).\nReport: {result.html_path}\nNumbers: {result.json_path}",
                  highlight=False)


@app.command()
@user_errors_as_messages
def necessity(
    model: Annotated[
        str | None,
        typer.Option("--model", help="Registered model whose audit folder (reports/audit/<model>-v<version>/) gets the "
                     "result, so that `earlysignal audit` of that version includes it, e.g. models:/NAME@candidate."),
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Borough data folder (default: data.dir from the config).")] = None,
    matrix: Annotated[Path | None, typer.Option("--matrix", help="A feature matrix written by `features` (default: build or reuse one from --data).")] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Leave out only these sources / proxy groups (repeatable; default: every one)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder for necessity.json and necessity.html (default: the --model's audit folder, else reports/necessity/<model.name>/).")] = None,
    config: ConfigOption = None,
) -> None:
    """Necessity of each source for the DPIA: retrain on the same temporal splits without each source and each
    proxy group (necessity.proxy_groups); loss in precision at capacity and AUC with paired bootstrap intervals."""
    from earlysignal.config import load_config
    from earlysignal.console import progress_bar
    from earlysignal.modeling.necessity import run_necessity

    project = load_config(config)
    if out is None and model is not None:
        from earlysignal.audit import default_output_dir
        from earlysignal.modeling.registry import resolve_model_version
        from earlysignal.tracking import configure_tracking

        configure_tracking()
        version = resolve_model_version(model)
        out = default_output_dir(version.name, str(version.version))
    with progress_bar(transient=True) as bar:
        task = bar.add_task("necessity", total=None)
        names = [name.strip() for item in only for name in item.split(",") if name.strip()] if only else None
        result = run_necessity(project, data_dir=data, matrix=matrix, out_dir=out, only=names,
                               progress=lambda step: bar.update(task, description=f"necessity: {step}"))
    document = result.document
    for row in document["variants"]:
        loss = {m: row["contribution"][m]["value"] for m in ("precision_at_capacity", "roc_auc")}
        shown = {m: "–" if v is None else f"{v:+.3f}" for m, v in loss.items()}
        verdict = "[green]necessary[/green]" if row["necessary"] else "[bold red]not shown to be necessary[/bold red]"
        if row.get("verdict") == "costs nothing":
            verdict += " [bold red](leaving it out costs nothing)[/bold red]"
        elif row.get("verdict") == "undetermined":
            verdict += " (too few escalations to tell whether it costs nothing)"
        console.print(
            f"{row['name']:>20}: loss in precision at capacity {shown['precision_at_capacity']}, "
            f"AUC {shown['roc_auc']} -> {verdict}",
            highlight=False,
        )
    console.print(f"Run time {document['seconds_total']:.0f} s.\nTable: {result.html_path}\nNumbers: {result.json_path}",
                  highlight=False)


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

    from earlysignal.config import load_config, packaged_config_path
    from earlysignal.console import progress_bar
    from earlysignal.dictionary import dictionary_for
    from earlysignal.errors import ConfigError
    from earlysignal.ingest import ingest as run_ingest
    from earlysignal.ingest import resolve_mapping_paths

    project = load_config(config)
    from earlysignal.dates import check_extract_date, parse_date

    date = check_extract_date(parse_date(extract_date, "--extract-date"), "--extract-date") if extract_date else None
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


@app.command()
@user_errors_as_messages
def release(
    model: Annotated[
        str | None,
        typer.Option("--model", help="Registered model to release figures for: models:/NAME/VERSION or "
                     "models:/NAME@ALIAS (default: models:/<model.name>@champion)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Bundle folder (default: reports/release/<borough>-<model>-v<version>/)."),
    ] = None,
    borough: Annotated[
        str | None, typer.Option("--borough", help="This borough's name in pooled reports (default: release.borough).")
    ] = None,
    shipped: Annotated[
        bool,
        typer.Option("--shipped", help="The model was trained in another borough: check its approval and evaluate "
                     "it here, on this borough's data (a transfer evaluation)."),
    ] = False,
    data: Annotated[
        Path | None, typer.Option("--data", help="With --shipped: this borough's linked data (default: data.dir).")
    ] = None,
    home_model: Annotated[
        str | None,
        typer.Option("--home-model", help="With --shipped: this borough's own model, whose test rows the shipped "
                     "model is scored on (so the two compare on the same residents)."),
    ] = None,
    as_of: Annotated[
        list[str] | None,
        typer.Option("--as-of", help="With --shipped and no --home-model: test as-of dates (YYYY-MM-DD; repeat). "
                     "Default: this config's temporal test dates."),
    ] = None,
    trained_in: Annotated[
        str | None, typer.Option("--trained-in", help="With --shipped: the borough that trained the model.")
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Sign the bundle off now with this output checker's private key "
                     "(listed in release.checkers); without it, sign later with `earlysignal release-sign`."),
    ] = None,
    checker: Annotated[
        str | None, typer.Option("--checker", help="With --key: the checker's name, checked against release.checkers.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write a release bundle: this borough's evaluation of a model as checked aggregates only.

    Metrics at capacity with intervals, calibration, fairness by group, data coverage, link quality,
    model and code versions and hashes; counts under audit.min_cell withheld, the rest rounded to
    audit.round_to, every rate from rounded counts. Nothing resident-level is written. A named output
    checker signs the bundle off (--key now, or `earlysignal release-sign`); `pool` accepts only signed,
    unaltered bundles.
    """
    from earlysignal.config import load_config
    from earlysignal.console import progress_bar
    from earlysignal.federation.release import run_release

    project = load_config(config)
    model_uri = model or f"models:/{project.model.name}@champion"
    dates = [_as_of_date(text) for text in as_of] if as_of else None
    with progress_bar(transient=True) as progress:
        task = progress.add_task(f"releasing {model_uri}", total=None)
        folder, document = run_release(
            project, model_uri, out_dir=out, borough=borough, shipped=shipped, data_dir=data, as_of_dates=dates,
            home_model_uri=home_model, trained_in=trained_in, key_path=key, checker=checker,
        )
        progress.update(task, total=1, completed=1)
    summary = document["performance"]["summary"]
    words = ", ".join(
        f"{name.replace('_', ' ')} {entry['value']:.2f}" for name, entry in summary.items() if entry.get("value") is not None
    )
    console.print(f"Release bundle for {document['borough']} ({document['kind']}): {folder}", highlight=False)
    console.print(f"  {words}", highlight=False)
    _print_release_approval(document)
    if key is None:
        console.print(f"[yellow]Not signed off yet: the output checker reads {folder / 'release.json'} and runs "
                      f"`earlysignal release-sign {folder} --key PATH`.[/yellow]", highlight=False)
    else:
        console.print("[green]Signed off.[/green]")


def _print_release_approval(document: dict) -> None:
    """Whether the released model was approved, as the bundle records it; a warning when it was not."""
    from earlysignal.federation.pool import approval_warning

    problem = approval_warning(document)
    if problem is None:
        approval = document["approval"]
        console.print(f"  model approved by {approval['approver']} ({approval['role']}) at {approval['approved_at']}",
                      highlight=False)
    else:
        console.print(f"[yellow]  NOT APPROVED: {problem}; the bundle records this and the pooled report marks it. "
                      "To release an approved model, approve it (`earlysignal approve`) and release again.[/yellow]",
                      highlight=False)


@app.command("release-sign")
@user_errors_as_messages
def release_sign(
    bundle: Annotated[Path, typer.Argument(help="The bundle folder `earlysignal release` wrote.")],
    key: Annotated[Path, typer.Option("--key", help="The output checker's private key (made by `earlysignal keys`).")],
    checker: Annotated[
        str | None, typer.Option("--checker", help="The checker's name, checked against release.checkers.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Sign a release bundle off as its output checker, after reading it (checks it holds no small count)."""
    from earlysignal.config import load_config
    from earlysignal.federation.bundle import sign_bundle

    signed = sign_bundle(bundle, key, load_config(config), checker=checker)
    console.print(f"Signed off {bundle} as {signed['checker']} at {signed['at']} "
                  f"(manifest sha256 {signed['manifest_sha256'][:12]}).", highlight=False)


@app.command()
@user_errors_as_messages
def pool(
    bundles: Annotated[list[Path], typer.Argument(help="Release bundle folders, one per borough's release.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for pool.html and pool.json.")
    ] = Path("reports/pool"),
    config: ConfigOption = None,
) -> None:
    """Combine several boroughs' signed release bundles into one pan-London evaluation report.

    Refuses an unsigned or altered bundle, or one signed by a checker not in release.checkers. Pools
    precision and recall at capacity and AUC by random effects (DerSimonian-Laird) with I² and tau²,
    sorts fairness findings into those that hold across boroughs and those in one only, and sets each
    shipped model beside the receiving borough's own.
    """
    from earlysignal.config import load_config
    from earlysignal.federation.pool import run_pool

    html_path, json_path, document = run_pool(bundles, load_config(config), out)
    for block in document["sets"]:
        console.print(f"[bold]{block['title']}[/bold] ({', '.join(block['boroughs'])})", highlight=False)
        for metric in block["metrics"].values():
            pooled = metric["pooled"]
            if pooled:
                console.print(f"  {metric['words']}: pooled {pooled['value']:.3f} ({pooled['ci_low']:.3f}-"
                              f"{pooled['ci_high']:.3f}), I² {100 * pooled['i2']:.0f}%", highlight=False)
            else:
                console.print(f"  {metric['words']}: {metric['note']}", highlight=False)
        across = [f for f in block["fairness"] if f["verdict"] == "across boroughs"]
        if across:
            console.print(f"  [bold red]{len(across)} fairness finding(s) hold across boroughs[/bold red]")
    for line in document.get("summary", []):
        console.print(f"- {line}", highlight=False)
    for warning in document.get("warnings", []):
        console.print(f"[yellow]Warning: {warning}.[/yellow]", highlight=False)
    console.print(f"Report: {html_path}\nNumbers: {json_path}", highlight=False)


@app.command("privacy-scan")
@user_errors_as_messages
def privacy_scan(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Folders or files written after `link` (linked data and features, reports, the MLflow store, logs); folders are read recursively."),
    ],
    ingested: Annotated[
        Path, typer.Option("--ingested", help="Folder written by `earlysignal ingest`: the identifiers to look for come from it.")
    ],
    born_before: Annotated[
        str | None,
        typer.Option("--born-before", help="Look for dates of birth of people born before YYYY-MM-DD (default: the earliest data_start in the ingest manifest, so event dates cannot pass for one)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Look for the raw extracts' names, dates of birth, NHS numbers, UPNs, addresses, postcodes, UPRNs and
    systems' own person IDs in everything written after `link`; exit 1 when any is found.

    Prints each file and kind of identifier found with a count, never the identifiers themselves.
    """
    from earlysignal.config import DEFAULT_CONFIG_PATH
    from earlysignal.dates import parse_date
    from earlysignal.privacy_scan import scan_outputs

    cutoff = parse_date(born_before, "--born-before") if born_before else None
    config_path = Path(config) if config else DEFAULT_CONFIG_PATH
    # The project's own words (config, dictionary, mappings) are not names, even when they are also surnames.
    vocabulary = sorted(config_path.parent.rglob("*.yaml")) if config_path.exists() else []
    with console.status("scanning for identifiers"):
        result = scan_outputs(ingested, list(paths), cutoff, vocabulary)
    for finding in result.findings:
        console.print(f"[bold red]{finding.path}[/bold red]: {len(finding.values):,} {finding.kind} value(s)", highlight=False)
    verdict = "[bold red]identifiers found[/bold red]" if result.findings else "[green]no identifier found[/green]"
    console.print(f"Scanned {len(result.files):,} file(s) against {ingested} (dates of birth before "
                  f"{result.born_before.isoformat()}): {verdict}.", highlight=False)
    if result.findings:
        sys.exit(1)

"""Data: make, ingest, link and check a borough's tables, and scan outputs for identifiers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from earlysignal.cli import ConfigOption, app, user_errors_as_messages
from earlysignal.console import console


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
        typer.Option("--ground-truth", help="Synthetic worlds: the true person per record (e.g. <synth dir>/ground_truth/raw_records.parquet); default linkage.ground_truth, looked for in --ingested, data.dir, then beside --ingested."),
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
            f"Against ground truth: precision {truth['precision']}, recall {truth['recall']}, F1 {truth['f1']} "
            f"({quality.get('ground_truth_used', 'ground truth')}).",
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
        used = quality.get("ground_truth_used", "")
        why = (used if used and not used.startswith("no ground truth (")
               else "no ground truth (--ground-truth, synthetic worlds)")
        console.print(
            f"[yellow]Linkage precision and recall not measured: {why} "
            "and no clerically reviewed pairs (linkage.clerical_review).[/yellow]",
            highlight=False,
        )
    in_time = quality.get("linked_in_time")
    if in_time and in_time["records_linked_after_known"]:
        # ADR 0023: what these records bring counts only from the day they joined their resident.
        console.print(
            f"{in_time['records_linked_after_known']:,} records joined their resident after they were known "
            f"({in_time['residents_with_such_records']:,} residents); {in_time['events_known_later_by_linkage']:,} "
            f"events and {in_time['outcomes_known_later_by_linkage']:,} outcomes count from that day "
            "(person_links.linked_at).",
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

"""Features: build (or reuse) the point-in-time feature matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earlysignal.cli import ConfigOption, app, user_errors_as_messages
from earlysignal.console import console


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

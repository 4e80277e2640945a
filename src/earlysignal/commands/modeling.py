"""Modeling: train, score, and the necessity of each source for the DPIA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earlysignal.cli import ConfigOption, app, user_errors_as_messages
from earlysignal.console import console


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
    if project.build.memory_budget_gb is not None:
        from earlysignal.console import peak_memory_words

        # Each model read only its own rows from the matrix's files, checked against the budget before it read
        # them (docs/config.md, build); the peak is measured and said, not promised.
        console.print("Training read each model's rows from the matrix's files: "
                      f"{peak_memory_words(project, 'what each model reads and fits')}.", highlight=False)
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
                              progress=lambda step: bar.update(task, description=f"scoring: {step}"),
                              # Scoring per partition (build section): one bar step per partition.
                              on_partition=lambda done, total: bar.update(task, completed=done, total=total))
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

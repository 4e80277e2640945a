"""Across boroughs: release bundles, their sign-off, and pooling them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earlysignal.cli import ConfigOption, _as_of_date, app, user_errors_as_messages
from earlysignal.console import console


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
    unaltered bundles. Every bundle is registered (release.register_dir) and each new one is checked against
    all of the borough's earlier ones, wherever --out points.
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
    console.print(f"Release bundle for {document['borough']} ({document['kind']}): {folder}", highlight=False)
    console.print(f"  {release_summary_words(document['performance'])}", highlight=False)
    _print_earlier(document["borough"], document.get("earlier_releases") or [], project)
    _print_release_approval(document)
    if key is None:
        console.print(f"[yellow]Not signed off yet: the output checker reads {folder / 'release.json'} and runs "
                      f"`earlysignal release-sign {folder} --key PATH`.[/yellow]", highlight=False)
    else:
        console.print("[green]Signed off.[/green]")


def release_summary_words(performance: dict) -> str:
    """One line on the released figures over all test dates: each shown figure with its interval and, when
    the AUC is a mean over some dates only or a figure is withheld, which (so it is not read as the
    training run's figure over every date)."""
    n_dates = len(performance.get("per_as_of") or [])
    words, withheld, complements = [], [], []
    for name, entry in performance["summary"].items():
        label = name.replace("_", " ")
        if entry.get("value") is None:
            # A figure withheld so that another's small count cannot be worked back is not itself small:
            # the checker reads the two kinds apart (release.json gives each reason in `withheld`).
            (complements if "complementary" in str(entry.get("withheld") or "") else withheld).append(label)
            continue
        text = f"{label} {entry['value']:.2f}"
        if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
            text += f" ({entry['ci_low']:.2f}-{entry['ci_high']:.2f})"
        over = entry.get("over_as_of")
        if over is not None and len(over) < n_dates:
            text += f" (mean over {len(over)} of {n_dates} test dates; the others' AUC is withheld: small numbers)"
        words.append(text)
    if withheld:
        words.append(f"withheld (small numbers): {', '.join(withheld)}")
    if complements:
        words.append(f"withheld so that a small count cannot be worked back (complementary suppression): "
                     f"{', '.join(complements)}")
    return "; ".join(words) if words else "every figure withheld (small numbers)"


def earlier_words(borough: str, earlier: list[dict]) -> list[str]:
    """Lines saying which earlier releases of the borough the differencing attack read with this one."""
    if not earlier:
        return [f"No earlier release of {borough} in the release register or release.earlier: checked on its own."]
    lines = [f"Checked with {len(earlier)} earlier release(s) of {borough} read together (a reader may hold them all):"]
    lines += [f"  - {e['generated_at']} {e['kind']} {e['model']} (release.json sha256 {e['release_sha256'][:12]}, "
              f"from the {e['from']})" for e in earlier]
    return lines


def _print_earlier(borough: str, earlier: list[dict], project) -> None:
    from earlysignal.federation.register import ReleaseRegister, register_dir

    for line in earlier_words(borough, earlier):
        console.print(f"  {line}", highlight=False)
    folder = register_dir(project)
    others = sorted({str(e.get("borough")) for e in ReleaseRegister(folder).entries()} - {borough})
    if others:
        # A borough renamed between releases would not be read with its old bundles: say so where it shows.
        console.print(f"[yellow]  The register {folder} also holds releases named {', '.join(others)}; they were "
                      f"not read with this one. If any is {borough} under another name, release under that name."
                      "[/yellow]", highlight=False)


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
    """Sign a release bundle off as its output checker, after reading it (checks it holds no small count and that
    no withheld count can be worked back with the borough's earlier releases), and register it."""
    from earlysignal.config import load_config
    from earlysignal.federation.bundle import sign_bundle

    from earlysignal.federation.register import earlier_for
    from earlysignal.fingerprint import file_sha256
    import json

    project = load_config(config)
    signed = sign_bundle(bundle, key, project, checker=checker)
    console.print(f"Signed off {bundle} as {signed['checker']} at {signed['at']} "
                  f"(manifest sha256 {signed['manifest_sha256'][:12]}).", highlight=False)
    own = file_sha256(Path(bundle) / "release.json")
    document = json.loads((Path(bundle) / "release.json").read_text(encoding="utf-8"))
    model = (document.get("model") or {}).get("name") if document.get("kind") == "home" else None
    earlier = earlier_for(project, signed["borough"], exclude=own, model=model).releases
    for line in earlier_words(str(signed["borough"]), [e.summary() for e in earlier]):
        console.print(f"  {line}", highlight=False)


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

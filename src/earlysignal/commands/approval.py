"""Approval: the governance audit, approval keys, approvers, approving and revoking a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from earlysignal.cli import ConfigOption, app, user_errors_as_messages
from earlysignal.console import console
from earlysignal.errors import EarlySignalError


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


def approver_name_and_role(text: str) -> tuple[str, str]:
    """`keys --name` text as approval.approvers wants it: "Jane Smith, DCS" -> ("Jane Smith", "DCS"); the
    role is everything after the first comma ("" when there is none)."""
    person, _, role = text.partition(",")
    return person.strip(), role.strip()


def _yaml_text(value: str) -> str:
    """A YAML double-quoted scalar: a JSON string is one (a name may hold a colon or a quote)."""
    import json

    return json.dumps(value, ensure_ascii=False)


@app.command()
@user_errors_as_messages
def keys(
    name: Annotated[str, typer.Option("--name", help="The approver's name and role as \"Name, Role\" (e.g. \"Jane Smith, DCS\"); the files are named after it.")],
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
    person, role = approver_name_and_role(name)
    console.print(
        f"Private key: {private_path} (mode 0600; keep it secret, sign with --key {private_path})\n"
        f"Public key:  {public_path}\n"
        "Ask the config's owner to add you to approval.approvers:\n"
        f"  - name: {_yaml_text(person)}\n    role: {_yaml_text(role or '...')}\n"
        f"    public_key: \"{public_path.read_text(encoding='utf-8').strip()}\"",
        highlight=False,
        soft_wrap=True,  # the key line is pasted into YAML: a wrapped line is a broken key
    )
    if not role:
        console.print('Replace role "..." with your role (e.g. "Director of Children\'s Services"): '
                      '--name "Name, Role" fills it in.', highlight=False)
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

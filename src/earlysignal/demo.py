"""The whole story on the embedded synthetic borough, in one call.

From raw extracts (the default): synth (with each service's raw extract) -> ingest -> link -> validate
-> features -> train -> audit -> approve (a labelled demo approval) -> score. With `from_raw=False`
the already-linked synthetic tables are used and ingest and link are skipped.
Each step is the same library function the individual commands use; nothing here is demo-only
except the choice of inputs and the approval's wording.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from earlysignal.config import ProjectConfig, SynthSection
from earlysignal.console import console
from earlysignal.ledger import DEMO_APPROVER_NAME as DEMO_APPROVER

DEMO_NOTE = (
    "Approved automatically by `earlysignal demo` so that the scoring step can run. "
    "A real model version is approved by a named person after the governance board has read its audit report."
)


@dataclass
class DemoResult:
    """Where the demo's outputs are, and how long each step took."""

    data_dir: Path
    matrix_path: Path
    model_uri: str
    report_path: Path
    ranked_csv: Path
    unscored_csv: Path
    criterion_met: bool | None
    step_seconds: dict[str, float] = field(default_factory=dict)
    link_quality: dict[str, object] | None = None
    after_list: AfterList | None = None  # the steps after the list (journey, explanation, monitor, necessity)

    @property
    def total_seconds(self) -> float:
        return sum(self.step_seconds.values())


def _existing_borough_matches(data_dir: Path, synth: SynthSection) -> bool:
    """True when data_dir already holds a borough made with the same generator arguments."""
    from earlysignal.synth.borough import generator_arguments

    manifest_path = data_dir / "manifest.json"
    if not manifest_path.is_file():
        return False
    try:
        recorded = json.loads(manifest_path.read_text(encoding="utf-8")).get("generator", {})
    except (OSError, ValueError):
        return False
    return all(recorded.get(key) == value for key, value in generator_arguments(synth).items())


DEMO_STEPS_FROM_RAW = ("synth", "ingest", "link", "validate", "features", "train", "audit", "approve", "score")
DEMO_STEPS_LINKED = ("synth", "validate", "features", "train", "audit", "approve", "score")
# After the list: a flagged child's journey and explanation letter, then monitoring; necessity on request
# (it retrains the model once per source, so it takes several times as long as training).
DEMO_STEPS_AFTER_LIST = ("journey", "monitor")
DEMO_VIEWER = "earlysignal demo"


@dataclass
class AfterList:
    """Where the demo's steps after the list wrote their pages."""

    case_list: Path
    resident_id: str | None  # the top flagged resident whose journey and explanation were written
    journey: Path | None
    explanation: Path | None
    monitor_html: Path
    monitor_overall: str
    necessity_html: Path | None = None
    audit_with_necessity: Path | None = None


def demo_after_list(config: ProjectConfig, scores_dir: Path, data_dir: Path, timed: Callable[[str], contextlib.AbstractContextManager[None]] | None = None) -> AfterList:
    """Write the top flagged resident's journey and explanation (access-logged as viewed by
    DEMO_VIEWER) and run `monitor` over the score folders beside scores_dir. Raises what they raise."""
    import datetime as dt

    from earlysignal.caselist import CASE_LIST_FILE, marked, read_case_list_outputs
    from earlysignal.explanation import write_explanation
    from earlysignal.journey import view_journey
    from earlysignal.monitor import run_monitor

    timed = timed or (lambda name: contextlib.nullcontext())
    ranked, _, _, summary = read_case_list_outputs(scores_dir)
    as_of = dt.date.fromisoformat(str(summary["as_of"]))
    flagged = ranked.loc[ranked["flagged"].astype(bool)].sort_values("rank")
    resident = str(flagged["resident_id"].iloc[0]) if len(flagged) else None
    journey = explanation = None
    with timed("journey"):
        if resident is not None:
            journey = view_journey(config, resident, as_of, scores_dir=scores_dir, data_dir=data_dir,
                                   viewer=DEMO_VIEWER).path
            explanation = write_explanation(config, resident, as_of, scores_dir=scores_dir, data_dir=data_dir,
                                            viewer=DEMO_VIEWER).html
    with timed("monitor"):
        monitored = run_monitor(config, data_dir=data_dir, scores_dir=scores_dir.parent)
    case_list = scores_dir / marked(CASE_LIST_FILE, bool(summary.get("approval_checked")))
    return AfterList(case_list, resident, journey, explanation, monitored.html_path,
                     str(monitored.document["overall"]))


def demo_necessity(config: ProjectConfig, data_dir: Path, model_uri: str) -> tuple[Path, Path]:
    """Run the necessity analysis for the demo's model into its audit folder, then re-audit the version
    so the report has the necessity table (an approved report is never overwritten: the re-audit is
    written beside it). Returns (necessity.html, the audit report with the table)."""
    from earlysignal.audit import default_output_dir, run_audit
    from earlysignal.modeling.necessity import run_necessity
    from earlysignal.modeling.registry import resolve_model_version
    from earlysignal.tracking import configure_tracking

    configure_tracking()
    version = resolve_model_version(model_uri)
    folder = default_output_dir(version.name, str(version.version))
    result = run_necessity(config, data_dir=data_dir, out_dir=folder)
    audited = run_audit(model_uri, config=config)
    return result.html_path, Path(audited.html_path)


def _demo_link_config(config: ProjectConfig, data_dir: Path) -> ProjectConfig:
    """The config with a linkage secret: the configured one, else a demo secret kept beside the synthetic data.

    The synthetic borough holds no real person, so a secret generated once and kept (mode 0600) in
    the demo's own data folder is enough, and keeps the demo's resident IDs the same from run to run.
    A real council's secret lives outside the data folder (docs/ingest-and-link.md, "The secret").
    """
    import os
    import secrets

    section = config.linkage
    if os.environ.get(section.secret_env, "").strip() or section.secret_file is not None:
        return config
    secret_path = (data_dir / "demo-link-secret").resolve()
    if not secret_path.is_file():
        from earlysignal.atomic import write_text

        write_text(secrets.token_hex(32) + "\n", secret_path)
        secret_path.chmod(0o600)
    return config.model_copy(update={"linkage": section.model_copy(update={"secret_file": secret_path})})


def _ingest_and_link(config: ProjectConfig, data_dir: Path, timed: Callable[[str], contextlib.AbstractContextManager[None]]) -> tuple[Path, dict[str, object]]:
    """Ingest data_dir/raw into data_dir/ingested and link it into data_dir/linked; returns (linked dir, link quality)."""
    from earlysignal.config import packaged_config_path
    from earlysignal.dictionary import dictionary_for
    from earlysignal.ingest import ingest, resolve_mapping_paths
    from earlysignal.linkage.run import run_link

    ingested, linked = data_dir / "ingested", data_dir / "linked"
    with timed("ingest"):
        dictionary = dictionary_for(config)
        outcome_types = config.contract.outcome_types or tuple(dictionary.outcomes)
        paths = resolve_mapping_paths(list(config.ingest.mappings), packaged_config_path().parent)
        summary = ingest(data_dir / "raw", ingested, paths, dictionary.event_types_by_source(), outcome_types)
        reports = summary.reports.values()
        console.print(
            f"Ingested {len(summary.reports)} sources: {sum(r.read for r in reports):,} raw rows read = "
            f"{sum(r.mapped for r in reports):,} mapped + {sum(r.excluded_total for r in reports):,} excluded + "
            f"{sum(r.quarantined_total for r in reports):,} quarantined (coverage: {ingested / 'coverage.md'}).",
            highlight=False,
        )
    with timed("link"):
        # Absolute: run_link reads a relative ground-truth path as relative to the ingested folder.
        truth = (data_dir / "ground_truth" / "raw_records.parquet").resolve()
        linked_summary = run_link(ingested, linked, _demo_link_config(config, data_dir),
                                  ground_truth=truth if truth.is_file() else None)
        quality = linked_summary.quality
        line = (f"Linked {linked_summary.records:,} person records into {linked_summary.residents:,} residents "
                f"({quality['pairs_compared']:,} pairs compared, threshold {quality['threshold']})")
        if "ground_truth" in quality:
            t = quality["ground_truth"]
            line += f"; against the true people: precision {t['precision']}, recall {t['recall']}, F1 {t['f1']}"
        console.print(line + ".", highlight=False)
    return linked, quality


def demo_approve(config: ProjectConfig, name: str, version: str | int, report_path: str | Path) -> Path:
    """Sign the demo's labelled approval of (name, version) with the demo key; returns the key's path.

    The key pair is made on first use in `<approval.store>/demo/` (git-ignored); the config's
    `approval.trust_demo_key` is what makes it count. Raises ApprovalError when that is false.
    """
    from earlysignal.approval import approve_model, store_dir
    from earlysignal.errors import ApprovalError
    from earlysignal.ledger import ensure_demo_key

    if not config.approval.trust_demo_key:
        raise ApprovalError(
            "the demo approves with its own key, but approval.trust_demo_key is false in this config; "
            "set it to true for the synthetic borough (never for a real one)"
        )
    demo_key = ensure_demo_key(store_dir(config))
    approve_model(name, version, report_path=report_path, key_path=demo_key, config=config, note=DEMO_NOTE)
    return demo_key


def run_demo(
    config: ProjectConfig,
    *,
    fresh: bool = False,
    step: Callable[[str], None] | None = None,
    from_raw: bool = True,
    after_list: bool = False,
    necessity: bool = False,
) -> DemoResult:
    """Run every stage on the config's synthetic borough and return where the outputs are.

    from_raw: start from the services' raw extracts (synth --raw -> ingest -> link), as a council
    would; False uses the synthetic borough's true linkage directly. Steps are DEMO_STEPS_FROM_RAW
    or DEMO_STEPS_LINKED, in order; with after_list, then DEMO_STEPS_AFTER_LIST (a flagged child's journey
    and explanation, monitoring), and with necessity also "necessity". Raises what the stages raise
    (ConfigError, ContractError, SecretError...).
    """
    from earlysignal.audit import run_audit
    from earlysignal.console import progress_bar
    from earlysignal.contract import load_linked_data, report_table
    from earlysignal.features import build_or_reuse_feature_matrix, default_matrix_path, matrix_status_words
    from earlysignal.modeling.train import train_model
    from earlysignal.scoring import score_cohort
    from earlysignal.synth import generate_borough

    announce = step or (lambda name: None)
    timings: dict[str, float] = {}
    data_dir = Path(config.data.dir)

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        announce(name)
        started = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - started, 1)

    with timed("synth"):
        reuse = not fresh and _existing_borough_matches(data_dir, config.synth)
        if reuse and from_raw and not (data_dir / "raw" / "manifest.json").is_file():
            reuse = False
        if reuse:
            console.print(f"Reusing the synthetic borough in {data_dir} (same generator arguments).", highlight=False)
        else:
            summary = generate_borough(data_dir, config.synth)
            console.print(
                f"Synthesised {summary.row_counts.get('residents', 0):,} residents and "
                f"{summary.row_counts.get('events', 0):,} events into {data_dir}.",
                highlight=False,
            )
            if from_raw:
                from earlysignal.synth.raw_extracts import write_raw_extracts

                raw_counts = write_raw_extracts(summary.out_dir, config.synth.seed)
                console.print(f"Wrote each service's raw extract: {sum(raw_counts.values()):,} rows in "
                              f"{len(raw_counts)} files in {data_dir / 'raw'}.", highlight=False)

    link_quality: dict[str, object] | None = None
    if from_raw:
        # Everything after link reads only the linked-by-us histories, never the synthetic truth.
        data_dir, link_quality = _ingest_and_link(config, data_dir, timed)

    with timed("validate"):
        linked = load_linked_data(data_dir, config)
        console.print(report_table(linked.report))

    with timed("features"):
        matrix_path = default_matrix_path(config, data_dir)
        matrix, status = build_or_reuse_feature_matrix(config, data_dir=data_dir, out=matrix_path)
        console.print(
            f"{matrix_status_words(status)}: {len(matrix.frame):,} rows x {len(matrix.feature_columns)} features"
            f" -> {matrix_path}",
            highlight=False,
        )

    with timed("train"):
        with progress_bar(transient=True) as bar:
            task = bar.add_task("training", total=None)
            trained = train_model(config, data_dir=data_dir, matrix=matrix,
                                  progress=lambda stage: bar.update(task, description=f"training: {stage}"))

    version_uri = f"models:/{trained.model_name}/{trained.model_version}"
    with timed("audit"):
        audited = run_audit(version_uri, config=config)

    with timed("approve"):
        demo_key = demo_approve(config, trained.model_name, trained.model_version, audited.html_path)
        console.print(
            f"[bold yellow]Demo approval[/bold yellow] of {trained.model_name} version {trained.model_version}, "
            f"signed with the demo key {demo_key}: recorded only so the scoring step can run; a real approval is "
            "a board's decision, signed with a named approver's key.",
            highlight=False,
        )

    # The demo scores the cohort as it stands on the extract date: features see only earlier records.
    with timed("score"):
        scored = score_cohort(config, as_of=linked.extract_date, data_dir=data_dir)

    after: AfterList | None = None
    if after_list or necessity:
        after = demo_after_list(config, Path(scored.ranked_csv).parent, data_dir, timed)
    if necessity and after is not None:
        with timed("necessity"):
            after.necessity_html, after.audit_with_necessity = demo_necessity(config, data_dir, version_uri)

    return DemoResult(
        after_list=after,
        data_dir=data_dir,
        matrix_path=matrix_path,
        model_uri=version_uri,
        report_path=Path(audited.html_path),
        ranked_csv=Path(scored.ranked_csv),
        unscored_csv=Path(scored.unscored_csv),
        criterion_met=trained.criterion_met,
        step_seconds=timings,
        link_quality=link_quality,
    )

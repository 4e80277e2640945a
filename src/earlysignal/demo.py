"""The whole story on the embedded synthetic borough, in one call.

synth -> validate -> features -> train -> audit -> approve (a labelled demo approval) -> score.
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
) -> DemoResult:
    """Run every stage on the config's synthetic borough and return where the outputs are."""
    from earlysignal.console import progress_bar
    from earlysignal.audit import run_audit
    from earlysignal.contract import load_linked_data, report_table
    from earlysignal.features import build_or_reuse_feature_matrix, default_matrix_path
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
        if not fresh and _existing_borough_matches(data_dir, config.synth):
            console.print(f"Reusing the synthetic borough in {data_dir} (same generator arguments).", highlight=False)
        else:
            summary = generate_borough(data_dir, config.synth)
            console.print(
                f"Synthesised {summary.row_counts.get('residents', 0):,} residents and "
                f"{summary.row_counts.get('events', 0):,} events into {data_dir}.",
                highlight=False,
            )

    with timed("validate"):
        linked = load_linked_data(data_dir, config)
        console.print(report_table(linked.report))

    with timed("features"):
        matrix_path = default_matrix_path(config, data_dir)
        matrix, status = build_or_reuse_feature_matrix(config, data_dir=data_dir, out=matrix_path)
        console.print(
            f"Feature matrix {status}: {len(matrix.frame):,} rows x {len(matrix.feature_columns)} features.",
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

    return DemoResult(
        data_dir=data_dir,
        matrix_path=matrix_path,
        model_uri=version_uri,
        report_path=Path(audited.html_path),
        ranked_csv=Path(scored.ranked_csv),
        unscored_csv=Path(scored.unscored_csv),
        criterion_met=trained.criterion_met,
        step_seconds=timings,
    )

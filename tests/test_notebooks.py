"""The notebooks run top to bottom on a tiny synthetic borough and a model trained on it, and are
committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from audit_world import AuditWorld, audit_world
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> AuditWorld:
    return audit_world(tmp_path_factory.getbasetemp(), biased=True)


def _execute(name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> tuple[str, int]:
    text, images = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
            images += "image/png" in output.get("data", {})
    return "\n".join(text), images


def test_notebooks_are_committed_without_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def test_explore_notebook_draws_a_journey_and_the_planted_signals(
    world: AuditWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    notebook = _execute(
        "01-explore-linked-histories.ipynb", {"EARLYSIGNAL_DATA_DIR": str(world.data_dir)}, monkeypatch, tmp_path
    )
    text, images = _outputs(notebook)
    assert images >= 3  # rates by service, the journey, the planted signals
    assert "door replacements at her homes" in text
    assert "domestic_abuse" in text


def test_explore_notebook_synthesises_a_tiny_borough_when_given_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("EARLYSIGNAL_DATA_DIR", raising=False)
    notebook = _execute("01-explore-linked-histories.ipynb", {}, monkeypatch, tmp_path)
    text, images = _outputs(notebook)
    assert "earlysignal-nb01-" in text and images >= 3


def test_review_notebook_walks_through_metrics_reasons_and_the_audit(
    world: AuditWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {"EARLYSIGNAL_MODEL_URI": world.model_uri, "MLFLOW_TRACKING_URI": world.tracking_uri}
    notebook = _execute("02-model-review.ipynb", env, monkeypatch, tmp_path)
    text, images = _outputs(notebook)
    assert images >= 2
    assert f"reviewing {world.model_uri}" in text
    assert "pre-registered success criterion" in text
    assert "Black residents are flagged" in text  # the planted bias, as the audit words it
    assert "reason_1" in text

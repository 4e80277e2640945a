"""The pooled report in a real browser (headless Chromium): no console errors, every section, not blank,
and it prints to PDF. Built from the three-borough world of tests/federation_world.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from federation_world import FederationWorld, federation_world
from test_report_browser import _chromium, _console_messages, _run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POOL_HEADINGS = [
    "What a board should take from this",
    "What was pooled",
    "Performance across boroughs",
    "Fairness across boroughs",
    "Transfer: a model evaluated outside the borough that trained it",
    "Method and small numbers",
    "Limitations",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _chromium()
    from earlysignal.federation.pool import run_pool

    world: FederationWorld = federation_world(tmp_path_factory.getbasetemp())
    html_path, _, _ = run_pool(list(world.bundles.values()), world.configs["Northgate"],
                               tmp_path_factory.mktemp("pool-browser"))
    return html_path


def test_pool_report_loads_with_no_console_errors_and_every_section(report: Path, tmp_path: Path) -> None:
    result = _run(report, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console_messages(result.stderr) == []
    assert re.findall(r"<h2>(.*?)</h2>", result.stdout) == POOL_HEADINGS
    pooled = json.loads((report.parent / "pool.json").read_text(encoding="utf-8"))
    # Every borough's bundle is listed with the checker who signed it off.
    for bundle in pooled["bundles"]:
        assert f"{bundle['borough']} output checker (Output checker)" in result.stdout
    # The forest plot of the shipped model's AUC across the three boroughs is drawn.
    assert 'alt="Forest plot of AUC by borough"' in result.stdout


def test_pool_report_is_not_blank_and_prints_to_pdf(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "pool.png"
    result = _run(report, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.exists(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    non_white = sum(count for count, rgb in colours if min(rgb) < 235)
    assert len(colours) > 200 and non_white / (image.width * image.height) > 0.05
    pdf = tmp_path / "pool.pdf"
    result = _run(report, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert pdf.exists(), result.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes())) >= 2

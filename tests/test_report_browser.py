"""The audit report in a real browser (headless Chromium): no console errors, not blank, every
section present, and it prints to a multi-page PDF."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from audit_world import AuditWorld, audit_world

from earlysignal.report.render import SECTION_HEADINGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
)
# Chromium echoes the page's console (console.error, uncaught exceptions, failed resource loads)
# on stderr as "...:INFO:CONSOLE:<line>] "message", source: ...". Browser-internal noise (dbus,
# GPU) has other tags and is ignored.
CONSOLE_LINE = re.compile(r":CONSOLE(?::\d+)?\]")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("headless Chromium is required in CI: install the Debian package 'chromium' (/usr/bin/chromium)")
    pytest.skip("Chromium is not installed (apt-get install -y chromium); the browser test runs in CI")


def _run(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a fresh profile per run
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE_LINE.search(line)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _chromium()
    world: AuditWorld = audit_world(tmp_path_factory.getbasetemp(), biased=True)
    return world.report


def test_the_console_check_catches_a_page_that_logs_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>console.error('boom'); missing();</script></body></html>")
    result = _run(bad, tmp_path, "--dump-dom")
    assert any("boom" in line for line in _console_messages(result.stderr))


def test_report_loads_with_no_console_errors_and_every_section_heading(report: Path, tmp_path: Path) -> None:
    result = _run(report, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console_messages(result.stderr) == []
    headings = re.findall(r"<h2>(.*?)</h2>", result.stdout)
    assert headings == list(SECTION_HEADINGS)


def test_report_is_not_blank_on_screen(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    result = _run(report, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.exists(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    pixels = image.width * image.height
    non_white = sum(count for count, rgb in colours if min(rgb) < 235)
    assert len(colours) > 200
    assert non_white / pixels > 0.05


def test_report_prints_to_a_multi_page_pdf(report: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    result = _run(report, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert pdf.exists(), result.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert pages >= len(SECTION_HEADINGS)  # a page break before every section


LINK_QUALITY = {
    "threshold": 0.8, "prior_match_probability": 0.00012, "records": 37404, "residents": 5301, "pairs_compared": 15927,
    "per_source": {"ae": {"records": 6036, "linked_share": 0.8671, "linked_to_other_source_share": 0.3393},
                   "council_tax": {"records": 6351, "linked_share": 0.761, "linked_to_other_source_share": 0.6604,
                                   "dropped_records": 2158, "dropped_share": 0.3398},
                   "school": {"records": 18787, "linked_share": 0.9995, "linked_to_other_source_share": 0.839}},
    "cluster_sizes": {"1": 2399, "2": 805, "3": 535, "4": 371, "12": 43, "80": 1},
    "match_weights": [{"comparison": "first_name_last_name", "level": "Exact match on full_name",
                       "m_probability": 0.8, "u_probability": 0.0002}],
    "ground_truth": {"precision": 0.9902, "recall": 0.9551, "f1": 0.9723,
                     "per_source": {"council_tax": {"precision": 0.9755, "recall": 0.7988}}},
    "unlinked_by_group": {
        "sex": [{"group": "F", "records": 18000, "suppressed": False, "unlinked": 1200, "unlinked_rate": 0.0667}],
        "ethnicity": [{"group": "GRO", "records": 35, "suppressed": True, "unlinked": None, "unlinked_rate": None}],
        "age_band": [{"group": "25-44", "records": 4475, "suppressed": False, "unlinked": 445, "unlinked_rate": 0.099}],
        "tenure": [{"group": "private_rented", "records": 9000, "suppressed": False, "unlinked": 900, "unlinked_rate": 0.1}],
    },
}


def test_the_data_section_shows_link_quality_in_the_browser(report: Path, tmp_path: Path) -> None:
    import json

    from earlysignal.audit.linkage import linkage_section
    from earlysignal.report.render import render_audit_html

    audit = json.loads((report.parent / "audit.json").read_text(encoding="utf-8"))
    audit["data"]["linkage"] = linkage_section({"link_run_id": "L20261130T1200", "code_lists_sha256": "ab" * 32,
                                                "code_lists": {}, "quality": LINK_QUALITY})
    page = tmp_path / "audit-linked.html"
    page.write_text(render_audit_html(audit), encoding="utf-8")
    result = _run(page, tmp_path, "--dump-dom")
    assert result.returncode == 0 and _console_messages(result.stderr) == []
    dom = result.stdout
    linkage = dom[dom.index('<div id="linkage">'):dom.index("</div>", dom.index('<div id="linkage">'))]
    assert dom.index("<h2>Data</h2>") < dom.index('<div id="linkage">') < dom.index("<h2>Performance over time</h2>")
    assert "<strong>0.8</strong>" in linkage and "L20261130T1200" in linkage and "ab" * 32 in linkage
    assert "precision <strong>0.990</strong>, recall <strong>0.955</strong>, F1 <strong>0.972</strong>" in linkage
    assert re.search(r"<td>ae</td><td class=\"n\">6036</td><td class=\"n\">86.7%</td><td class=\"n\">33.9%</td>", linkage)
    # Council tax: 34.0% of its records left out (resident without birth date or sex), precision and recall of its pairs.
    assert re.search(r"<td>council_tax</td><td class=\"n\">6351</td><td class=\"n\">76.1%</td><td class=\"n\">66.0%</td>"
                     r"<td class=\"n\">34.0%</td><td class=\"n\">0.976</td><td class=\"n\">0.799</td>", linkage)
    # 2,399 of 4,154 residents have a single record; 12 and 80 records fall in the 11-20 and 51+ bands.
    assert re.search(r"<td>1</td><td class=\"n\">2399</td><td class=\"n\">57.8%</td>", linkage)
    assert "<td>11-20</td>" in linkage and "<td>51+</td>" in linkage
    assert re.search(r"<td>tenure</td><td>private_rented</td><td class=\"n\">9000</td><td class=\"n\">900</td>"
                     r"<td class=\"n\">10.0%</td>", linkage)
    assert re.search(r"<td>ethnicity</td><td>GRO</td><td colspan=\"3\" class=\"suppressed\">suppressed</td>", linkage)
    assert "<td class=\"n\">11.97</td>" in linkage  # log2(0.8 / 0.0002)

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

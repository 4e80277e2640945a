"""The case list, a journey and an explanation in a real browser (headless Chromium): they load with no
console errors, and the highlighted records in the rendered journey are exactly those behind each reason."""

from __future__ import annotations

import re

import pytest
from caseworker_folder import caseworker_folder
from journey_world import AS_OF, RESIDENT
from test_report_browser import _chromium, _console_messages, _run

from earlysignal.caselist import journey_command
from earlysignal.explanation import write_explanation
from earlysignal.journey import view_journey
from earlysignal.report.journey import JUDGEMENT_NOTE, render_case_list
from earlysignal.wording import Wording

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    _chromium()
    root = tmp_path_factory.mktemp("caseworker-browser")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        folder = caseworker_folder(root, challenge_contact="Data Protection Officer, dpo@example.gov.uk")
        page = view_journey(folder.config, RESIDENT, AS_OF, scores_dir=folder.scores_dir, viewer="A. Worker")
        explanation = write_explanation(folder.config, RESIDENT, AS_OF, scores_dir=folder.scores_dir, viewer="DPO")
    rows = [{"resident_id": RESIDENT, "rank": 1, "score": 0.33, "percentile": 100.0, "flagged": True,
             "band": "flagged for review", "reasons": ["2 door replacements at home in the last 12 months"],
             "journey": f"journeys/{RESIDENT}.html",
             "command": journey_command(RESIDENT, AS_OF.isoformat(), folder.scores_dir, None)}]
    summary = {"as_of": AS_OF.isoformat(), "model_name": "m", "model_version": "1", "model_uri": "models:/m/1",
               "spec_hash": "abc", "approval_checked": True, "counts": {"scored": 1, "flagged": 1, "unscored": 0}}
    case_list = folder.scores_dir / "case_list.html"
    case_list.write_text(render_case_list(rows, summary, total=1, wording=Wording()), encoding="utf-8")
    return {"journey": page, "case_list": case_list, "explanation": explanation.html}


def test_journey_renders_without_console_errors_and_highlights_exactly_the_reasons_events(pages, tmp_path):
    page = pages["journey"]
    result = _run(page.path, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console_messages(result.stderr) == []
    dom = result.stdout
    marks = dict(re.findall(r'<g class="event-mark behind-reason" data-event-id="([^"]+)" data-reasons="([^"]*)"', dom))
    expected = {}
    for reason in page.journey["reasons"]:
        for event_id in reason["event_ids"]:
            expected.setdefault(event_id, []).append(str(reason["rank"]))
    assert marks == {k: " ".join(v) for k, v in expected.items()}
    assert marks == {"E04": "1", "E01": "1", "E14": "2", "E07": "2", "E15": "2"}
    assert JUDGEMENT_NOTE in dom
    assert dom.count('class="event-mark') == len(page.journey["events"])


def test_journey_is_not_blank_on_screen(pages, tmp_path):
    from PIL import Image

    shot = tmp_path / "journey.png"
    result = _run(pages["journey"].path, tmp_path, "--window-size=1280,1200", f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.exists(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    non_white = sum(count for count, rgb in colours if min(rgb) < 235)
    assert non_white / (image.width * image.height) > 0.05


@pytest.mark.parametrize("name", ["case_list", "explanation"])
def test_case_list_and_explanation_render_without_console_errors(pages, name, tmp_path):
    result = _run(pages[name], tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console_messages(result.stderr) == []
    assert "never replaces, professional judgement" in " ".join(result.stdout.split())


def test_explanation_prints_to_pdf(pages, tmp_path):
    pdf = tmp_path / "explanation.pdf"
    result = _run(pages["explanation"], tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert pdf.exists(), result.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF")

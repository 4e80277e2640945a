"""`score` writes the case list, and each reason on it leads to the records behind it (real pipeline)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pandas as pd
import pytest

from earlysignal.caselist import CASE_LIST_FILE, MODEL_FEATURES_FILE, REASONS_FILE, marked
from earlysignal.explain import YES_NO
from earlysignal.journey import view_journey
from earlysignal.scoring import score_cohort

pytestmark = pytest.mark.slow
AS_OF = dt.date(2025, 10, 1)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from modeling_pipeline import trained_borough

    borough = trained_borough("standard")
    out = tmp_path_factory.mktemp("caselist")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", borough.tracking_uri)
        result = score_cohort(borough.config, AS_OF, model_uri=borough.result.model_uri, out=out / "scores",
                              allow_unapproved=True, log_to_mlflow=False)
    return borough, result


def _template_pattern(template: str) -> re.Pattern[str]:
    if template.endswith(YES_NO):
        # A yes/no feature reads as its label (a reason is only ever the "yes"): "home is privately rented".
        return re.compile("^" + re.escape(template[: -len(YES_NO)]) + "$")
    return re.compile("^" + re.escape(template).replace(re.escape("{value}"), r"(-?[\d,]+(?:\.\d{1,2})?|unknown)") + "$")


def test_score_writes_the_case_list_beside_the_ranked_list(scored):
    _, result = scored
    # Scored with --allow-unapproved, so every file name says UNAPPROVED.
    for name, key in ((CASE_LIST_FILE, "case_list_html"), (REASONS_FILE, "reasons_parquet"),
                      (MODEL_FEATURES_FILE, "model_features_json")):
        assert (result.out_dir / marked(name, False)).exists()
        assert result.summary["outputs"][key] == str(result.out_dir / marked(name, False))
    html = (result.out_dir / "case_list-UNAPPROVED.html").read_text(encoding="utf-8")
    flagged = result.ranked[result.ranked["flagged"]]
    for rid in flagged["resident_id"]:
        assert f'href="journeys/{rid}-UNAPPROVED.html"' in html
    assert "never replaces, professional judgement" in html
    assert html.count("<tr class=\"flagged\"") == len(flagged)


def test_every_reason_on_the_list_is_traced_to_the_feature_it_describes(scored):
    _, result = scored
    reasons = pd.read_parquet(result.summary["outputs"]["reasons_parquet"])
    definitions = json.loads(open(result.summary["outputs"]["model_features_json"], encoding="utf-8").read())["features"]
    ranked = result.ranked.set_index("resident_id")
    listed = sum(int((result.ranked[f"reason_{i}"].fillna("") != "").sum()) for i in (1, 2, 3))
    assert len(reasons) == listed > 0
    for row in reasons.itertuples(index=False):
        assert ranked.loc[row.resident_id, f"reason_{row.reason}"] == row.text
        assert ranked.loc[row.resident_id, f"contribution_{row.reason}"] == pytest.approx(row.contribution)
        templates = [definitions[row.feature]["description"], definitions[row.feature].get("description_one", "")]
        assert any(t and _template_pattern(t).match(row.text) for t in templates), (row.feature, row.text)


def test_a_flagged_residents_count_reasons_highlight_as_many_records_as_they_count(scored, tmp_path):
    borough, result = scored
    page = None
    checked = 0
    for rid in result.ranked.loc[result.ranked["flagged"], "resident_id"].head(5):
        page = view_journey(borough.config, rid, AS_OF, scores_dir=result.out_dir, viewer="test",
                            access_log=tmp_path / "log.jsonl", out=tmp_path / f"{rid}.html")
        for reason in page.journey["reasons"]:
            if reason["feature"] and "__count__" in reason["feature"]:
                number = int(re.match(r"^([\d,]+) ", reason["text"]).group(1).replace(",", ""))
                assert len(reason["event_ids"]) == number, reason
                checked += 1
    assert checked > 0


@pytest.mark.browser
def test_the_case_list_score_wrote_renders_in_a_browser_without_console_errors(scored, tmp_path):
    from test_report_browser import _chromium, _console_messages, _run

    _chromium()
    _, result = scored
    page = result.out_dir / "case_list-UNAPPROVED.html"
    rendered = _run(page, tmp_path, "--dump-dom")
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert _console_messages(rendered.stderr) == []
    assert rendered.stdout.count('<tr class="flagged"') == int(result.ranked["flagged"].sum())

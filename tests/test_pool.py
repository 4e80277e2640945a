"""Pooling released aggregates: random-effects meta-analysis, fairness findings across boroughs, transfer loss."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from earlysignal.federation.bundle import BundleError
from earlysignal.federation.pool import (
    ACROSS,
    MIXED,
    ONE_ONLY,
    evaluation_sets,
    fairness_consistency,
    meta_analysis,
    random_effects,
    standard_error,
    transfer_table,
)


def _release(borough: str, auc: tuple[float, float, float], *, kind: str = "home", trained_in: str | None = None,
             sha: str = "a", precision: tuple | None = None, groups: dict | None = None) -> dict:
    entry = lambda t: {"value": t[0], "ci_low": t[1], "ci_high": t[2]} if t else {  # noqa: E731
        "value": None, "ci_low": None, "ci_high": None}
    block_groups = [{"group": "White", "is_reference": True, "ratios": {}}]
    for group, ratios in (groups or {}).items():
        block_groups.append({"group": group, "is_reference": False, "ratios": ratios})
    return {
        "borough": borough, "kind": kind, "trained_in": trained_in or borough,
        "model": {"model_sha256": sha * 64, "name": f"m-{sha}", "version": "1"},
        "label": {"outcome_types": ["csc_referral"], "horizon": "12 months", "words": "a referral within 12 months"},
        "performance": {"summary": {"roc_auc": entry(auc), "precision_at_capacity": entry(precision),
                                    "recall_at_capacity": entry(None)}},
        "fairness": {"ratio_metrics": [{"metric": "selection_rate", "label": "flagged"}],
                     "characteristics": [{"key": "ethnicity", "reference": "White", "groups": block_groups}]},
    }


def test_random_effects_is_dersimonian_laird_on_the_released_intervals() -> None:
    releases = [_release("A", (0.80, 0.78, 0.82)), _release("B", (0.70, 0.66, 0.74)),
                _release("C", (0.76, 0.73, 0.79))]
    pooled = meta_analysis(releases)["roc_auc"]["pooled"]
    # By hand: se from the 95% interval, inverse-variance weights, Q, tau² (DL), re-weighted mean.
    y = np.array([0.80, 0.70, 0.76])
    se = np.array([0.04, 0.08, 0.06]) / (2 * 1.959963984540054)
    w = 1 / se**2
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    tau2 = max(0.0, (q - 2) / (w.sum() - (w**2).sum() / w.sum()))
    w_re = 1 / (se**2 + tau2)
    mean = (w_re * y).sum() / w_re.sum()
    half = 1.959963984540054 / math.sqrt(w_re.sum())
    assert pooled["q"] == pytest.approx(q)
    assert pooled["tau2"] == pytest.approx(tau2)
    assert pooled["i2"] == pytest.approx(max(0.0, (q - 2) / q))
    assert pooled["value"] == pytest.approx(mean)
    assert (pooled["ci_low"], pooled["ci_high"]) == pytest.approx((mean - half, mean + half))
    assert pooled["fixed_effect"] == pytest.approx(fixed)
    assert pooled["df"] == 2 and pooled["i2"] > 0.5  # these three disagree beyond chance


def test_boroughs_that_agree_have_no_heterogeneity_and_pool_as_fixed_effect() -> None:
    # Q = 0 < df: the DerSimonian-Laird tau² is truncated at 0, so the pool is the inverse-variance mean
    # (and statsmodels' square root of the negative estimate is not shown to the user as a warning).
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pooled = random_effects(["A", "B"], [0.75, 0.75], [0.02, 0.03])
        # Two boroughs' recall from the trial that printed statsmodels' "invalid value encountered in sqrt".
        close = random_effects(["A", "B"], [0.2105, 0.2143], [0.0408, 0.0485])
    assert close["tau2"] == 0.0 and close["i2"] == 0.0
    assert pooled["tau2"] == 0.0 and pooled["i2"] == 0.0 and pooled["value"] == pytest.approx(0.75)
    half = 1.959963984540054 / math.sqrt(1 / 0.02**2 + 1 / 0.03**2)
    assert (pooled["ci_low"], pooled["ci_high"]) == pytest.approx((0.75 - half, 0.75 + half))
    assert pooled["weights"] == pytest.approx({"A": 0.03**2 / (0.02**2 + 0.03**2), "B": 0.02**2 / (0.02**2 + 0.03**2)})


def test_a_figure_withheld_for_small_numbers_is_shown_but_not_pooled() -> None:
    releases = [_release("A", (0.8, 0.78, 0.82), precision=(0.3, 0.25, 0.35)), _release("B", (0.7, 0.66, 0.74)),
                _release("C", (0.75, 0.7, 0.8), precision=(0.2, 0.15, 0.25))]
    precision = meta_analysis(releases)["precision_at_capacity"]
    assert [r["pooled"] for r in precision["boroughs"]] == [True, False, True]
    assert precision["pooled"]["df"] == 1
    only_one = meta_analysis(releases[:2])["precision_at_capacity"]
    assert only_one["pooled"] is None and only_one["note"].startswith("not pooled")


def test_a_borough_whose_auc_is_withheld_is_named_and_left_out_of_the_auc_pool() -> None:
    withheld = _release("B", None)
    withheld["performance"]["summary"]["roc_auc"]["withheld"] = "no test date's AUC is shown (small numbers)"
    partial = _release("C", (0.75, 0.7, 0.8))
    partial["performance"]["summary"]["roc_auc"]["withheld_as_of"] = ["2025-01-01"]
    releases = [_release("A", (0.8, 0.78, 0.82)), withheld, partial]
    auc = meta_analysis(releases)["roc_auc"]
    assert [r["pooled"] for r in auc["boroughs"]] == [True, False, True]
    assert auc["left_out"] == ["B"] and auc["pooled"]["df"] == 1 and set(auc["pooled"]["weights"]) == {"A", "C"}
    assert auc["boroughs"][1]["left_out"] == "withheld in the bundle: no test date's AUC is shown (small numbers)"
    assert "left out of the pool: B" in auc["note"]
    assert auc["boroughs"][2]["withheld_as_of"] == ["2025-01-01"] and auc["boroughs"][2]["left_out"] is None
    two_withheld = meta_analysis([withheld, _release("D", None)])["roc_auc"]
    assert two_withheld["pooled"] is None and two_withheld["left_out"] == ["B", "D"]
    assert two_withheld["note"].startswith("not pooled") and "left out of the pool: B, D" in two_withheld["note"]


def test_an_interval_that_rounds_to_zero_width_keeps_half_a_rounding_unit_of_uncertainty() -> None:
    assert standard_error({"value": 0.8, "ci_low": 0.8, "ci_high": 0.8}) == pytest.approx(0.005 / 1.959963984540054)
    assert standard_error({"value": None, "ci_low": 0.7, "ci_high": 0.8}) is None


def _ratio(finding: bool, ratio: float | None, assessable: bool = True) -> dict:
    return {"selection_rate": {"ratio": ratio, "finding": finding, "assessable": assessable}}


def test_fairness_findings_are_sorted_into_across_boroughs_one_only_and_mixed() -> None:
    releases = [
        _release("A", (0.8, 0.7, 0.9), groups={"Black": _ratio(True, 1.9), "Asian": _ratio(True, 0.5),
                                               "Mixed": _ratio(True, 1.6)}),
        _release("B", (0.8, 0.7, 0.9), groups={"Black": _ratio(True, 1.6), "Asian": _ratio(False, 1.0),
                                               "Mixed": _ratio(True, 0.6)}),
        _release("C", (0.8, 0.7, 0.9), groups={"Black": _ratio(False, None, assessable=False),
                                               "Asian": _ratio(False, None, assessable=False),
                                               "Mixed": _ratio(False, None, assessable=False)}),
    ]
    verdicts = {f["group"]: f for f in fairness_consistency(releases)}
    assert verdicts["Black"]["verdict"] == ACROSS  # flagged in A and B the same way; C could not assess it
    assert verdicts["Black"]["flagged_in"] == [{"borough": "A", "ratio": 1.9}, {"borough": "B", "ratio": 1.6}]
    assert verdicts["Black"]["not_assessable_in"] == ["C"]
    assert verdicts["Asian"]["verdict"] == ONE_ONLY and verdicts["Asian"]["assessed_not_flagged_in"] == ["B"]
    assert verdicts["Mixed"]["verdict"] == MIXED  # flagged both ways
    assert [f["verdict"] for f in fairness_consistency(releases)] == [ACROSS, MIXED, ONE_ONLY]


def test_a_finding_flagged_in_two_boroughs_but_cleared_in_a_third_is_not_across_boroughs() -> None:
    releases = [_release(b, (0.8, 0.7, 0.9), groups={"Black": _ratio(flag, 1.8 if flag else 1.05)})
                for b, flag in (("A", True), ("B", True), ("C", False))]
    (finding,) = fairness_consistency(releases)
    assert finding["verdict"] == MIXED and finding["assessed_not_flagged_in"] == ["C"]


def test_transfer_sets_the_shipped_model_beside_the_receiving_boroughs_own_and_its_home_figure() -> None:
    releases = [
        _release("A", (0.80, 0.78, 0.82), sha="a"),
        _release("B", (0.78, 0.74, 0.82), sha="b"),
        _release("B", (0.70, 0.66, 0.74), kind="transfer", trained_in="A", sha="a"),
    ]
    (row,) = transfer_table(releases)
    auc = next(m for m in row["metrics"] if m["metric"] == "roc_auc")
    assert auc["loss_vs_own_model"]["value"] == pytest.approx(0.08)
    assert auc["loss_vs_home"]["value"] == pytest.approx(0.10)
    half = 1.959963984540054 * math.hypot(0.08 / 3.919927969080108, 0.08 / 3.919927969080108)  # both 0.08 wide
    assert auc["loss_vs_own_model"]["ci_low"] == pytest.approx(0.08 - half, abs=1e-4)
    titles = [s["title"] for s in evaluation_sets(releases)]
    assert titles == ["Each borough's own model",
                      "Model m-a version 1 (trained in A) in every borough that evaluated it"]


def test_bundles_predicting_different_outcomes_are_not_pooled(tmp_path) -> None:
    from earlysignal.federation.pool import _check_comparable

    a = _release("A", (0.8, 0.7, 0.9))
    b = copy.deepcopy(a)
    b["borough"] = "B"
    b["label"] = {"outcome_types": ["cp_plan"], "horizon": "6 months", "words": "a plan within 6 months"}
    with pytest.raises(BundleError, match="predict different outcomes"):
        _check_comparable([a, b], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(BundleError, match="same borough's release of the same model"):
        _check_comparable([a, copy.deepcopy(a)], [tmp_path / "a", tmp_path / "a2"])


def test_two_of_one_boroughs_own_models_are_not_pooled_as_two_boroughs(tmp_path) -> None:
    from earlysignal.federation.pool import _check_comparable

    first = _release("A", (0.8, 0.7, 0.9), sha="a")
    second = _release("A", (0.7, 0.6, 0.8), sha="b")
    second["model"]["version"] = "2"
    other = _release("B", (0.75, 0.65, 0.85), sha="c")
    with pytest.raises(BundleError) as error:
        _check_comparable([first, other, second], [tmp_path / "a1", tmp_path / "b", tmp_path / "a2"])
    message = str(error.value)
    assert f"{tmp_path / 'a1'} (m-a v1) and {tmp_path / 'a2'} (m-b v2) are both A's own model" in message
    assert "keep the bundle of the version its board approved" in message
    assert "both were approved" not in message
    # A borough releasing every month has every version approved: the message names the latest bundle.
    for release, at in ((first, "2026-11-01T09:00:00Z"), (second, "2026-12-01T09:00:00Z")):
        release["approval"] = {"status": "approved", "demo": False}
        release["generated_at"] = at
    with pytest.raises(BundleError, match=r"both were approved: a borough releasing month after month keeps its "
                                          r"latest, here .*a2, generated at 2026-12-01T09:00:00Z"):
        _check_comparable([first, other, second], [tmp_path / "a1", tmp_path / "b", tmp_path / "a2"])
    # A model shipped into A beside A's own model is a transfer, not a second own model.
    shipped = _release("A", (0.7, 0.6, 0.8), kind="transfer", trained_in="B", sha="c")
    _check_comparable([first, other, shipped], [tmp_path / "a1", tmp_path / "b", tmp_path / "a-from-b"])


APPROVED = {"status": "approved", "approver": "A Director", "role": "DCS", "approved_at": "2026-12-01T00:00:00Z",
            "ledger_seq": 0, "demo": False}
CODE = {"earlysignal": "0.1.0", "git_commit": "c" * 40, "source_sha256": "d" * 64}


def test_a_bundle_of_a_model_not_approved_when_released_is_named_with_what_to_do(tmp_path) -> None:
    from earlysignal.federation.pool import pool_warnings

    approved = {**_release("A", (0.8, 0.7, 0.9)), "approval": APPROVED, "code": CODE}
    candidate = {**_release("B", (0.7, 0.6, 0.8), sha="b"), "approval": None, "code": CODE}
    revoked = {**_release("C", (0.7, 0.6, 0.8), sha="c"), "approval": {**APPROVED, "status": "revoked"}, "code": CODE}
    paths = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    warnings = pool_warnings([approved, candidate, revoked], paths)
    assert warnings == [
        f"{tmp_path / 'b'}: m-b v1 had no signed approval in B's ledger when it was released; its figures are a "
        "candidate's, not an approved model's. To pool an approved model, approve it (`earlysignal approve`) and "
        "release again",
        f"{tmp_path / 'c'}: the approval of m-c v1 was revoked when C released it; its figures are a candidate's, not "
        "an approved model's. To pool an approved model, approve it (`earlysignal approve`) and release again",
    ]
    assert pool_warnings([approved, {**approved, "borough": "B"}], paths[:2]) == []


def test_bundles_made_by_different_or_unidentified_code_are_named_with_their_versions(tmp_path) -> None:
    from earlysignal.federation.pool import pool_warnings

    a = {**_release("A", (0.8, 0.7, 0.9)), "approval": APPROVED, "code": CODE}
    b = {**_release("B", (0.7, 0.6, 0.8), sha="b"), "approval": APPROVED,
         "code": {**CODE, "earlysignal": "0.2.0", "source_sha256": "e" * 64}}
    paths = [tmp_path / "a", tmp_path / "b"]
    [warning] = pool_warnings([a, b], paths)
    assert warning.startswith("the bundles were made by different code (")
    assert f"{tmp_path / 'a'}: Early Signal 0.1.0, commit cccccccccccc, source dddddddddddd" in warning
    assert f"{tmp_path / 'b'}: Early Signal 0.2.0, commit cccccccccccc, source eeeeeeeeeeee" in warning
    assert warning.endswith("Install the same pinned release in every borough and release again")
    # An edited checkout at the same commit is different code: the source hash tells them apart.
    edited = {**b, "code": {**CODE, "source_sha256": "f" * 64}}
    assert len(pool_warnings([a, edited], paths)) == 1
    # The same package files at a later commit (only tests or docs changed) are the same code.
    later = {**b, "code": {**CODE, "git_commit": "9" * 40}}
    assert pool_warnings([a, later], paths) == []
    unknown = {"earlysignal": "0.1.0", "git_commit": "unknown"}
    [warning] = pool_warnings([{**a, "code": unknown}, {**b, "code": unknown}], paths)
    assert warning.startswith("the bundles do not say which code made them")


def test_a_bundle_records_the_code_it_was_made_by_not_the_repository_it_was_run_in(tmp_path, monkeypatch) -> None:
    import subprocess

    from earlysignal.federation.bundle import code_versions

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "borough.yaml").write_text("x: 1\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"],
                   check=True)
    elsewhere = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                               check=True).stdout.strip()
    monkeypatch.chdir(tmp_path)
    code = code_versions()
    assert code["git_commit"] != elsewhere
    assert len(code["source_sha256"]) == 64 and code_versions()["source_sha256"] == code["source_sha256"]


def test_a_borough_that_withheld_the_group_or_uses_it_as_reference_is_listed_not_left_out(tmp_path) -> None:
    from earlysignal.federation.pool import pool_warnings

    a = _release("A", (0.8, 0.7, 0.9), groups={"Black": _ratio(True, 2.1)})
    b = _release("B", (0.8, 0.7, 0.9), groups={"Black": {}})  # the group's cells withheld: no ratio at all
    c = _release("C", (0.8, 0.7, 0.9))
    c["fairness"]["characteristics"][0].update(
        reference="Black", groups=[{"group": "Black", "is_reference": True, "ratios": {}},
                                   {"group": "White", "is_reference": False, "ratios": _ratio(False, 0.9)}])
    (finding,) = fairness_consistency([a, b, c])
    assert (finding["group"], finding["verdict"]) == ("Black", ONE_ONLY)
    assert finding["not_assessable_in"] == ["B"] and finding["reference_in"] == ["C"]
    for release in (a, b, c):
        release.update(approval=APPROVED, code=CODE)
    assert pool_warnings([a, b, c], [tmp_path / "a", tmp_path / "b", tmp_path / "c"]) == [
        "the fairness reference group for ethnicity differs between boroughs (A: White, B: White, C: Black), so their "
        "ratios compare different groups and a finding cannot hold across them. Set audit.reference_groups to the same "
        "group for ethnicity in every borough's config and release again"
    ]


def test_a_differing_intersection_reference_names_the_key_that_sets_it(tmp_path) -> None:
    """An output checker reading the warning for sex + ethnicity learns which config key fixes it."""
    from earlysignal.federation.pool import pool_warnings

    releases = []
    for borough, reference in (("A", "Male + White"), ("B", "Female + White")):
        release = _release(borough, (0.8, 0.7, 0.9))
        release["fairness"]["characteristics"].append(
            {"key": "sex + ethnicity", "reference": reference,
             "groups": [{"group": reference, "is_reference": True, "ratios": {}}]})
        release.update(approval=APPROVED, code=CODE)
        releases.append(release)
    (warning,) = pool_warnings(releases, [tmp_path / "a", tmp_path / "b"])
    assert warning.startswith("the fairness reference group for sex + ethnicity differs between boroughs "
                              "(A: Male + White, B: Female + White)")
    assert '"sex + ethnicity": "Male + White"' in warning and "which the intersection then joins" in warning


def test_the_board_summary_says_what_holds_across_boroughs_and_what_a_shipped_model_loses() -> None:
    from earlysignal.federation.pool import board_summary

    a = _release("A", (0.80, 0.76, 0.84), sha="a", groups={"Black": _ratio(True, 2.0)})
    b = _release("B", (0.79, 0.75, 0.83), sha="b", groups={"Black": _ratio(True, 1.8), "Asian": _ratio(True, 1.5)})
    shipped = _release("B", (0.70, 0.66, 0.74), kind="transfer", trained_in="A", sha="a")
    releases = [a, b, shipped]
    document = {"sets": [{"title": s["title"], "metrics": meta_analysis(s["releases"]),
                          "fairness": fairness_consistency(s["releases"])} for s in evaluation_sets(releases)],
                "transfer": transfer_table(releases)}
    summary = board_summary(document)
    assert summary[0].startswith("Each borough's own model: pooled AUC 0.795 (")
    assert summary[0].endswith("; boroughs agree within chance (I² 0%).")
    assert summary[1].startswith("Holds across boroughs: Black (ethnicity, against White), flagged ratio A 2.00, B 1.80.")
    assert summary[2].startswith("1 fairness finding(s) in one borough only or mixed")
    # The shipped model in B against B's own (0.79) and at home in A (0.80): both intervals exclude 0.
    assert summary[-1] == ("A's model in B: AUC 0.70 (0.66 to 0.74); clearly worse than B's own model (difference "
                           "0.09 (0.03 to 0.15)); clearly worse than at home in A (difference 0.10 (0.04 to 0.16)).")


def test_the_pooled_report_says_which_borough_is_left_out_of_the_auc_pool_and_why() -> None:
    import re

    from earlysignal.federation.pool import board_summary
    from earlysignal.report.pool_render import render_pool_html

    withheld = _release("B", None)
    withheld["performance"]["summary"]["roc_auc"]["withheld"] = "no test date's AUC is shown (small numbers)"
    partial = _release("C", (0.75, 0.7, 0.8))
    partial["performance"]["summary"]["roc_auc"]["withheld_as_of"] = ["2025-01-01"]
    releases = [_release("A", (0.8, 0.78, 0.82)), withheld, partial]
    document = {"label": releases[0]["label"], "generated_at": "2026-01-01T00:00:00Z", "bundles": [],
                "method": dict.fromkeys(("pooling", "standard_errors", "heterogeneity", "fairness"), "-"),
                "same_code": True, "warnings": [], "transfer": [],
                "sets": [{"title": "Each borough's own model", "boroughs": ["A", "B", "C"],
                          "metrics": meta_analysis(releases), "fairness": []}]}
    document["summary"] = board_summary(document)
    assert "Not in that pooled AUC: B (AUC withheld for small numbers or released without an interval)." in document["summary"]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render_pool_html(document)))
    assert "(not pooled: withheld in the bundle: no test date&#39;s AUC is shown (small numbers))" in text
    assert "left out of the pool: B" in text
    assert "withheld at 2025-01-01, small numbers" in text

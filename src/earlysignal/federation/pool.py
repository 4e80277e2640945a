"""Pool release bundles from several boroughs into one pan-London evaluation (pool.json + pool.html).

Only signed, unaltered bundles from trusted output checkers are read (bundle.verify_bundle). Per
borough, precision and recall at capacity and AUC come with their released 95% intervals; pooled
figures are DerSimonian-Laird random-effects meta-analyses (statsmodels `combine_effects`) of the
released estimates, with each borough's standard error taken from its interval, and heterogeneity
(Cochran's Q, I², tau²). Fairness findings are classified as holding across boroughs, found in one
borough only, or mixed. Transfer bundles (a model evaluated outside the borough that trained it) are
set beside the receiving borough's own model and the model's home figures.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earlysignal.config import ProjectConfig
from earlysignal.federation.bundle import (
    HEADLINE_METRICS,
    KIND_HOME,
    KIND_TRANSFER,
    BundleError,
    bundle_paths,
    digest_of,
    verify_bundle,
)

POOL_SCHEMA = 1
Z_95 = 1.959963984540054
# Released intervals carry 2 decimals: a borough whose interval rounds to zero width still has this
# much uncertainty (half the rounding unit on each side), so it cannot take all the weight.
MIN_STANDARD_ERROR = 0.005 / Z_95
METRIC_WORDS = {"precision_at_capacity": "precision at capacity", "recall_at_capacity": "recall at capacity",
                "roc_auc": "AUC"}
ACROSS, ONE_ONLY, MIXED = "across boroughs", "one borough only", "mixed"


def standard_error(entry: dict[str, Any]) -> float | None:
    """A released estimate's standard error from its 95% interval (normal approximation); None without one."""
    low, high = entry.get("ci_low"), entry.get("ci_high")
    if entry.get("value") is None or low is None or high is None:
        return None
    return max((float(high) - float(low)) / (2 * Z_95), MIN_STANDARD_ERROR)


def random_effects(names: Sequence[str], effects: Sequence[float], errors: Sequence[float]) -> dict[str, Any]:
    """DerSimonian-Laird random-effects pooling of per-borough estimates with standard errors.

    Returns value and 95% interval (normal), tau2, I² (share of variation beyond chance, 0-1), Q, its
    degrees of freedom and p-value, the fixed-effect value, and each borough's relative weight.
    Raises ValueError with fewer than two estimates.
    """
    from statsmodels.stats.meta_analysis import combine_effects

    if len(effects) < 2:
        raise ValueError("pooling needs at least two estimates")
    with np.errstate(invalid="ignore"):  # a negative tau² makes statsmodels take sqrt(<0); handled below
        result = combine_effects(np.asarray(effects, dtype=float), np.asarray(errors, dtype=float) ** 2,
                                 method_re="dl", row_names=list(names), use_t=False)
        frame = result.summary_frame()  # also takes that sqrt (its HKSJ columns, unused here)
    p_value = result.test_homogeneity().pvalue
    # DerSimonian-Laird truncates tau² at 0 when Q < df; statsmodels 0.15 returns the negative moment
    # estimate (and NaN intervals). With tau² = 0 the random-effects pool is the fixed-effect one.
    between = float(result.tau2) > 0
    row = frame.loc["random effect" if between else "fixed effect"]
    weights = np.asarray(result.weights_rel_re if between else result.weights_rel_fe)
    return {
        "value": float(row["eff"]),
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_upp"]),
        "fixed_effect": float(frame.loc["fixed effect", "eff"]),
        "tau2": float(result.tau2) if between else 0.0,
        "i2": max(0.0, float(result.i2)),
        "q": float(result.q),
        "df": int(len(effects) - 1),
        "q_p_value": float(p_value),
        "weights": {name: float(w) for name, w in zip(names, weights, strict=True)},
    }


def _label(release: dict[str, Any]) -> str:
    if release["kind"] == KIND_TRANSFER:
        return f"{release['borough']} (model from {release['trained_in']})"
    return release["borough"]


def _model_key(release: dict[str, Any]) -> tuple[str, str, str]:
    model = release.get("model") or {}
    return (str(model.get("model_sha256") or ""), str(model.get("name")), str(model.get("version")))


def meta_analysis(releases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: each bundle's estimate and interval, and the random-effects pool when two or more have one."""
    out = {}
    for metric in HEADLINE_METRICS:
        rows, names, effects, errors = [], [], [], []
        for release in releases:
            entry = release["performance"]["summary"][metric]
            error = standard_error(entry)
            row = {"borough": _label(release), "value": entry.get("value"), "ci_low": entry.get("ci_low"),
                   "ci_high": entry.get("ci_high"), "pooled": error is not None,
                   "left_out": None if error is not None else left_out_reason(entry)}
            if entry.get("withheld_as_of"):
                # A figure over some of the borough's test dates only: the reader must know which.
                row["withheld_as_of"] = list(entry["withheld_as_of"])
            rows.append(row)
            if error is not None:
                names.append(_label(release))
                effects.append(float(entry["value"]))
                errors.append(error)
        pooled = random_effects(names, effects, errors) if len(effects) >= 2 else None
        if pooled is not None:
            for row in rows:
                row["weight"] = pooled["weights"].get(row["borough"])
        left_out = [row["borough"] for row in rows if row["left_out"]]
        note = None if pooled is not None else "not pooled: fewer than two boroughs released this figure with an interval"
        if left_out:
            note = "; ".join(filter(None, [note, f"left out of the pool: {', '.join(left_out)} (figure withheld "
                                                 "in the bundle, small numbers, or released without an interval)"]))
        out[metric] = {
            "metric": metric,
            "words": METRIC_WORDS[metric],
            "boroughs": rows,
            "pooled": pooled,
            "left_out": left_out,
            "note": note,
        }
    return out


def left_out_reason(entry: dict[str, Any]) -> str:
    """Why a borough's released figure cannot enter the pool: withheld (the bundle's reason when it gives
    one) or released without an interval."""
    if entry.get("value") is None:
        return f"withheld in the bundle: {entry.get('withheld') or 'a count behind it is small'}"
    return "released without an interval (a count behind the interval is small), so it has no standard error"


def fairness_consistency(releases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (characteristic, group, metric) flagged in at least one bundle, classified across bundles.

    'across boroughs': flagged in two or more boroughs, in the same direction, and in every borough
    where it could be assessed; 'one borough only': flagged in exactly one; 'mixed': otherwise
    (flagged in some boroughs but assessed and not flagged, or flagged the other way, in others).
    """
    status: dict[tuple[str, str, str], dict[str, Any]] = {}
    references: dict[str, dict[str, str | None]] = {}  # characteristic -> borough -> its reference group
    for release in releases:
        name = _label(release)
        for block in release["fairness"].get("characteristics", []):
            references.setdefault(block["key"], {})[name] = block.get("reference")
            for group in block.get("groups", []):
                for metric, entry in (group.get("ratios") or {}).items():
                    key = (block["key"], group["group"], metric)
                    record = status.setdefault(key, {"flagged": {}, "not_flagged": [], "not_assessable": [],
                                                      "reference": block.get("reference")})
                    if entry.get("finding"):
                        record["flagged"][name] = entry.get("ratio")
                    elif entry.get("assessable"):
                        record["not_flagged"].append(name)
                    else:
                        record["not_assessable"].append(name)
    findings = []
    labels = {m["metric"]: m["label"] for r in releases for m in r["fairness"].get("ratio_metrics", [])}
    names = [_label(r) for r in releases]
    for (characteristic, group, metric), record in sorted(status.items()):
        flagged = record["flagged"]
        if not flagged:
            continue
        seen = set(flagged) | set(record["not_flagged"]) | set(record["not_assessable"])
        here = references.get(characteristic, {})
        # A borough with no ratio for the group: the group is its reference, or was withheld (small numbers).
        reference_in = [n for n in names if n not in seen and here.get(n) == group]
        record["not_assessable"] += [n for n in names if n not in seen and here.get(n) != group]
        directions = {None if r is None else (r > 1) for r in flagged.values()}
        if len(flagged) == 1:
            verdict = ONE_ONLY
        elif not record["not_flagged"] and len(directions) == 1:
            verdict = ACROSS
        else:
            verdict = MIXED
        findings.append({
            "characteristic": characteristic, "group": group, "reference": record["reference"],
            "metric": metric, "metric_label": labels.get(metric, metric), "verdict": verdict,
            "flagged_in": [{"borough": b, "ratio": r} for b, r in sorted(flagged.items())],
            "assessed_not_flagged_in": sorted(record["not_flagged"]),
            "not_assessable_in": sorted(record["not_assessable"]),
            "reference_in": sorted(reference_in),
        })
    order = {ACROSS: 0, MIXED: 1, ONE_ONLY: 2}
    findings.sort(key=lambda f: (order[f["verdict"]], f["characteristic"], f["group"], f["metric"]))
    return findings


def _difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """a - b with an approximate 95% interval treating the two estimates as independent."""
    if a.get("value") is None or b.get("value") is None:
        return None
    out: dict[str, Any] = {"value": round(float(a["value"]) - float(b["value"]), 4), "ci_low": None, "ci_high": None}
    se_a, se_b = standard_error(a), standard_error(b)
    if se_a is not None and se_b is not None:
        half = Z_95 * math.hypot(se_a, se_b)
        out.update(ci_low=round(out["value"] - half, 4), ci_high=round(out["value"] + half, 4))
    return out


def transfer_table(releases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per transfer bundle: the shipped model's figures in the receiving borough, beside the receiving
    borough's own model and the shipped model at home, with the loss (own or home minus shipped)."""
    homes = {r["borough"]: r for r in releases if r["kind"] == KIND_HOME}
    rows = []
    for release in releases:
        if release["kind"] != KIND_TRANSFER:
            continue
        own = homes.get(release["borough"])
        origin = next((r for r in releases if r["kind"] == KIND_HOME and r["borough"] == release["trained_in"]
                       and _model_key(r) == _model_key(release)), None)
        metrics = []
        for metric in HEADLINE_METRICS:
            shipped = release["performance"]["summary"][metric]
            own_entry = own["performance"]["summary"][metric] if own else None
            origin_entry = origin["performance"]["summary"][metric] if origin else None
            metrics.append({
                "metric": metric, "words": METRIC_WORDS[metric], "shipped": shipped,
                "own_model": own_entry, "at_home": origin_entry,
                "loss_vs_own_model": _difference(own_entry, shipped) if own_entry else None,
                "loss_vs_home": _difference(origin_entry, shipped) if origin_entry else None,
            })
        rows.append({"borough": release["borough"], "trained_in": release["trained_in"],
                     "model": release["model"], "own_model": own["model"] if own else None,
                     "metrics": metrics})
    return rows


def evaluation_sets(releases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The groups of bundles pooled together: each borough's own model (home bundles), and each model
    released by two or more boroughs (its home bundle and its transfers)."""
    sets = []
    homes = [r for r in releases if r["kind"] == KIND_HOME]
    if len(homes) >= 2:
        sets.append({"title": "Each borough's own model", "releases": homes})
    by_model: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for release in releases:
        by_model.setdefault(_model_key(release), []).append(release)
    for key, members in by_model.items():
        if len(members) >= 2 and any(r["kind"] == KIND_TRANSFER for r in members):
            trained_in = members[0]["trained_in"]
            sets.append({"title": f"Model {key[1]} version {key[2]} (trained in {trained_in}) in every borough "
                                  "that evaluated it", "releases": members})
    if not sets:
        # Nothing shares a model and fewer than two boroughs released their own: show them side by side.
        sets.append({"title": "Every release", "releases": list(releases)})
    return sets


def _check_comparable(releases: Sequence[dict[str, Any]], paths: Sequence[Path]) -> None:
    labels = {(tuple(r["label"]["outcome_types"]), r["label"]["horizon"]) for r in releases}
    if len(labels) > 1:
        detail = "; ".join(f"{p}: {r['label']['words']}" for p, r in zip(paths, releases, strict=True))
        raise BundleError(f"the bundles predict different outcomes, so they cannot be pooled: {detail}")
    seen: dict[tuple[str, str, str], Path] = {}
    own: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, release in zip(paths, releases, strict=True):
        key = (release["borough"], release["kind"], str(_model_key(release)))
        if key in seen:
            raise BundleError(f"bundles {seen[key]} and {path} are the same borough's release of the same model; "
                              "pool each evaluation once")
        seen[key] = path
        if release["kind"] == KIND_HOME:
            if release["borough"] in own:
                # Two of one borough's own models would count its residents twice in the pool.
                first_path, first = own[release["borough"]]
                raise BundleError(
                    f"bundles {first_path} ({_model_words(first)}) and {path} ({_model_words(release)}) are both "
                    f"{release['borough']}'s own model; the pool counts each borough once: keep the bundle of the "
                    "version its board approved and leave the other out"
                    + _latest_words(first_path, first, path, release)
                )
            own[release["borough"]] = (path, release)


def _latest_words(first_path: Path, first: dict[str, Any], path: Path, release: dict[str, Any]) -> str:
    """When both models were approved (a borough releasing every month), which bundle is the latest."""
    approved = [(str(r.get("generated_at")), str(p)) for p, r in ((first_path, first), (path, release))
                if (r.get("approval") or {}).get("status") == "approved" and not (r.get("approval") or {}).get("demo")]
    if len(approved) < 2:
        return ""
    return (f" (both were approved: a borough releasing month after month keeps its latest, here {max(approved)[1]}, "
            "generated at " + max(approved)[0] + ")")


def _model_words(release: dict[str, Any]) -> str:
    model = release.get("model") or {}
    return f"{model.get('name')} v{model.get('version')}"


def approval_warning(release: dict[str, Any]) -> str | None:
    """Why a bundle's model was not an approved one when it was released (None when it was): no approval,
    a revoked one, or only the synthetic demo key's."""
    approval = release.get("approval")
    where = release["borough"]
    if not approval:
        return f"{_model_words(release)} had no signed approval in {where}'s ledger when it was released"
    if approval.get("status") != "approved":
        return f"the approval of {_model_words(release)} was {approval.get('status')} when {where} released it"
    if approval.get("demo"):
        return f"{_model_words(release)} was approved with the synthetic demo key only"
    return None


def code_identity(release: dict[str, Any]) -> tuple[str, str, str]:
    """(Early Signal version, git commit, source SHA-256) of the code that made a bundle; 'unknown' parts
    when not recorded (bundles written before the source hash was)."""
    code = release.get("code") or {}
    return (str(code.get("earlysignal") or "unknown"), str(code.get("git_commit") or "unknown"),
            str(code.get("source_sha256") or "unknown"))


def same_code(releases: Sequence[dict[str, Any]]) -> bool:
    """Whether every bundle was made by the same, identified code: the same source hash when all record one
    (commits may differ by changes outside the package, e.g. tests), else the same version and known commit."""
    identities = [code_identity(r) for r in releases]
    if all(i[2] != "unknown" for i in identities):
        return len({i[2] for i in identities}) == 1
    return len({i[:2] for i in identities}) == 1 and all(i[1] != "unknown" for i in identities)


def pool_warnings(releases: Sequence[dict[str, Any]], paths: Sequence[Path]) -> list[str]:
    """What a reader must know before reading the pooled figures, each naming the bundle and what to do:
    a model that was not approved when released, and bundles made by different or unidentified code."""
    warnings = []
    for path, release in zip(paths, releases, strict=True):
        problem = approval_warning(release)
        if problem is not None:
            warnings.append(
                f"{path}: {problem}; its figures are a candidate's, not an approved model's. To pool an approved "
                "model, approve it (`earlysignal approve`) and release again"
            )
    by_characteristic: dict[str, dict[str, str | None]] = {}
    for release in releases:
        for block in (release.get("fairness") or {}).get("characteristics", []):
            by_characteristic.setdefault(block["key"], {})[_label(release)] = block.get("reference")
    for characteristic, chosen in sorted(by_characteristic.items()):
        if len(set(chosen.values())) > 1:
            detail = ", ".join(f"{name}: {group}" for name, group in chosen.items())
            how = ""
            if "+" in characteristic:
                example = next(group for group in chosen.values() if group)
                how = (f" (the key \"{characteristic}\", e.g. \"{characteristic}\": \"{example}\", or the same "
                       "group for each of its characteristics, which the intersection then joins)")
            warnings.append(
                f"the fairness reference group for {characteristic} differs between boroughs ({detail}), so their "
                "ratios compare different groups and a finding cannot hold across them. Set audit.reference_groups "
                f"to the same group for {characteristic} in every borough's config{how} and release again"
            )
    identities = [code_identity(r) for r in releases]
    unidentified = any(i[1] == "unknown" and i[2] == "unknown" for i in identities)
    if not same_code(releases):
        detail = "; ".join(f"{p}: Early Signal {v}, commit {c[:12]}, source {h[:12]}"
                           for p, (v, c, h) in zip(paths, identities, strict=True))
        verdict = "do not say which code made them" if unidentified else "were made by different code"
        warnings.append(
            f"the bundles {verdict} ({detail}): differences between boroughs may partly be differences in the code. "
            "Install the same pinned release in every borough and release again"
        )
    return warnings


def _interval_words(entry: dict[str, Any] | None, digits: int = 2) -> str:
    if not entry or entry.get("value") is None:
        return "withheld"
    text = f"{entry['value']:.{digits}f}"
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" ({entry['ci_low']:.{digits}f} to {entry['ci_high']:.{digits}f})"
    return text


def _loss_words(loss: dict[str, Any] | None, against: str) -> str | None:
    if not loss:
        return None
    clear = loss.get("ci_low") is not None and (loss["ci_low"] > 0 or loss["ci_high"] < 0)
    verdict = (("clearly worse than " if loss["value"] > 0 else "clearly better than ") if clear
               else "no clear difference from ")
    return f"{verdict}{against} (difference {_interval_words(loss)})"


def board_summary(document: dict[str, Any]) -> list[str]:
    """Plain-English conclusions from a pooled document, in reading order: each evaluation set's pooled AUC
    and whether boroughs agree, the fairness findings that hold across boroughs and those in one only, and
    each shipped model's AUC beside the receiving borough's own and at home."""
    lines = []
    for block in document["sets"]:
        auc = block["metrics"]["roc_auc"]
        pooled = auc["pooled"]
        if pooled is None:
            lines.append(f"{block['title']}: AUC not pooled ({auc['note']}).")
        else:
            agree = ("boroughs differ more than chance explains (I² {:.0f}%): read it as an average over different "
                     "places" if pooled["i2"] >= 0.5 else "boroughs agree within chance (I² {:.0f}%)").format(
                100 * pooled["i2"])
            lines.append(f"{block['title']}: pooled AUC {_interval_words(pooled, 3)}; {agree}.")
            if auc.get("left_out"):
                lines.append(f"Not in that pooled AUC: {', '.join(auc['left_out'])} (AUC withheld for small numbers "
                             "or released without an interval).")
        across = [f for f in block["fairness"] if f["verdict"] == ACROSS]
        for finding in across:
            ratios = ", ".join(f"{item['borough']} {item['ratio']:.2f}" for item in finding["flagged_in"])
            lines.append(f"Holds across boroughs: {finding['group']} ({finding['characteristic']}, against "
                         f"{finding['reference']}), {finding['metric_label']} ratio {ratios}. A board should treat "
                         "this as a property of the model or of recording, not of one place.")
        local = [f for f in block["fairness"] if f["verdict"] != ACROSS]
        if local:
            lines.append(f"{len(local)} fairness finding(s) in one borough only or mixed: for the borough named, "
                         "look at local practice and recording before the model.")
    for row in document["transfer"]:
        auc = next(m for m in row["metrics"] if m["metric"] == "roc_auc")
        parts = [f"{row['trained_in']}'s model in {row['borough']}: AUC {_interval_words(auc['shipped'])}"]
        own = _loss_words(auc["loss_vs_own_model"], f"{row['borough']}'s own model")
        home = _loss_words(auc["loss_vs_home"], f"at home in {row['trained_in']}")
        parts += [p for p in (own, home) if p]
        lines.append("; ".join(parts) + ".")
    return lines


def pool_bundles(paths: Sequence[str | os.PathLike[str]], config: ProjectConfig) -> dict[str, Any]:
    """The pooled evaluation (pool.json content) of the bundles at `paths`; BundleError for any bundle
    that fails a check (unsigned, altered, untrusted checker, small count) or bundles that do not compare."""
    folders = bundle_paths(paths)
    if len(folders) < 2:
        raise BundleError("pool needs at least two release bundles (one folder per borough's release)")
    releases = [verify_bundle(folder, config) for folder in folders]
    _check_comparable(releases, folders)
    warnings = pool_warnings(releases, folders)
    sets = []
    for group in evaluation_sets(releases):
        sets.append({"title": group["title"], "boroughs": [_label(r) for r in group["releases"]],
                     "metrics": meta_analysis(group["releases"]),
                     "fairness": fairness_consistency(group["releases"])})
    document = {
        "schema": POOL_SCHEMA,
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "label": releases[0]["label"],
        "method": {
            "pooling": "random effects, DerSimonian-Laird (statsmodels combine_effects, method_re='dl'), "
                       "normal 95% intervals",
            "standard_errors": "from each borough's released 95% bootstrap interval: (high - low) / (2 x 1.96)",
            "heterogeneity": "Cochran's Q, I² = max(0, (Q - df) / Q), tau² (between-borough variance)",
            "fairness": "a finding holds across boroughs when flagged in two or more, the same way, and in every "
                        "borough where it could be assessed",
        },
        "bundles": [
            {"path": str(folder), "borough": r["borough"], "kind": r["kind"], "trained_in": r["trained_in"],
             "model": r["model"], "signed_off": r["signed_off"], "generated_at": r.get("generated_at"),
             "code": {"earlysignal": r["code"].get("earlysignal"), "git_commit": r["code"].get("git_commit"),
                      "source_sha256": r["code"].get("source_sha256")},
             "approval": r.get("approval"), "approval_warning": approval_warning(r),
             "release_sha256": digest_of({k: v for k, v in r.items() if k != "signed_off"}),
             "n": r["performance"].get("n"), "positives": r["performance"].get("positives"),
             "test_as_of": [row["as_of"] for row in r["coverage"].get("test_as_of", [])],
             "summary": r["performance"]["summary"]}
            for folder, r in zip(folders, releases, strict=True)
        ],
        "sets": sets,
        "transfer": transfer_table(releases),
        "same_code": same_code(releases),
        "warnings": warnings,
    }
    document["summary"] = board_summary(document)
    return document


def run_pool(paths: Sequence[str | os.PathLike[str]], config: ProjectConfig,
             out_dir: str | os.PathLike[str]) -> tuple[Path, Path, dict[str, Any]]:
    """Pool bundles and write pool.json and pool.html into out_dir (atomically); returns both paths and the document."""
    from earlysignal.atomic import write_json, write_text
    from earlysignal.report.pool_render import render_pool_html

    document = pool_bundles(paths, config)
    folder = Path(out_dir)
    json_path = write_json(document, folder / "pool.json")
    html_path = write_text(render_pool_html(document), folder / "pool.html")
    return html_path, json_path, document

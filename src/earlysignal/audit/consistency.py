"""Sentences that keep the audit report from contradicting itself, derived from what the model really is.

The report states facts in several places (the model card, the proxy check, the fairness tables, the
drivers); each sentence here is computed from the same audit document, so that "protected characteristics
are not model inputs" is never printed beside a model that uses age, an empty table is replaced by one
sentence saying why it is empty, and two related drivers that point opposite ways are explained.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from earlysignal.features.spec import AGE_BAND_ATTRIBUTE, window_phrase

RAISES = "higher values raise the score"
LOWERS = "higher values lower the score"


def characteristic_words(attribute: str) -> str:
    """'age_band' -> 'age band': a characteristic's name as a board reads it."""
    return attribute.replace("_", " ")


def protected_inputs(
    feature_records: Sequence[Mapping[str, Any]],
    feature_columns: Sequence[str],
    protected: Sequence[str],
    proxy_groups: Sequence[Any] = (),
) -> list[dict[str, str]]:
    """Model inputs that are a protected characteristic, or stand in for one by declaration.

    Returns one dict per input: feature, characteristic (an audit.protected name, or a proxy group's
    name) and kind: 'characteristic' (protected__<name>, or a declared attribute in audit.protected used
    as a static feature), 'direct proxy' (age in years when age_band is protected) or 'declared proxy'
    (matched by a necessity.proxy_groups pattern; `why` carries the group's own words).
    """
    used = set(feature_columns) if feature_columns else {str(r.get("name")) for r in feature_records}
    records = {str(r.get("name")): r for r in feature_records}
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for name in [n for n in feature_columns] or list(records):
        if name not in used or name.endswith("_imputed"):
            continue
        record = records.get(name, {})
        parts = name.split("__")
        attribute = None
        kind = "characteristic"
        if parts[0] == "protected" and len(parts) >= 2:
            attribute = parts[1]
        elif parts[0] == "static" and len(parts) >= 2:
            if parts[1] in protected and record.get("aggregate", "attribute") == "attribute":
                attribute = parts[1]
            elif record.get("aggregate", parts[1]) == "age" and AGE_BAND_ATTRIBUTE in protected:
                # Age in years fixes the age band exactly: the characteristic itself, in finer steps.
                attribute, kind = AGE_BAND_ATTRIBUTE, "direct proxy"
        if attribute is not None:
            out.append({"feature": name, "characteristic": attribute, "kind": kind, "why": ""})
            seen.add(name)
    for group in proxy_groups:
        for name in feature_columns:
            if name in seen or name.endswith("_imputed"):
                continue
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in group.features):
                out.append({"feature": name, "characteristic": group.name, "kind": "declared proxy",
                            "why": group.why})
                seen.add(name)
    return out


def protected_inputs_sentence(inputs: Sequence[Mapping[str, str]], protected: Sequence[str]) -> str:
    """One sentence on whether protected characteristics are model inputs, from the model's own inputs."""
    direct = [i for i in inputs if i["kind"] != "declared proxy"]
    declared = [i for i in inputs if i["kind"] == "declared proxy"]
    named = ", ".join(characteristic_words(a) for a in protected) or "none declared"
    if not direct:
        text = f"No protected characteristic ({named}) is a model input"
    else:
        by_characteristic: dict[str, list[str]] = {}
        for item in direct:
            by_characteristic.setdefault(item["characteristic"], []).append(item["feature"])
        listed = "; ".join(
            f"{characteristic_words(c)} (through {', '.join(features)})" for c, features in by_characteristic.items()
        )
        text = f"Protected characteristics are model inputs: {listed}"
    if declared:
        groups: dict[str, list[str]] = {}
        whys: dict[str, str] = {}
        for item in declared:
            groups.setdefault(item["characteristic"], []).append(item["feature"])
            whys[item["characteristic"]] = item["why"]
        listed = "; ".join(
            f"{', '.join(features)}" + (f" ({whys[name]})" if whys[name] else f" (proxy group {name})")
            for name, features in groups.items()
        )
        text += f". Inputs declared to stand in for one: {listed}"
    return text + ". Other inputs may still act as proxies (see the proxy check)."


def ratio_table_note(block: Mapping[str, Any], min_cell: int) -> str | None:
    """Why a characteristic has no disparity ratio to show (None when it has at least one)."""
    groups = block.get("groups") or []
    if any(g.get("ratios") for g in groups) or block.get("withheld"):
        return None
    key = block.get("key", "")
    if len(groups) <= 1:
        only = groups[0]["group"] if groups else "none"
        return f"No disparity ratio for {key}: every resident audited is in one group ({only}), so there is nothing to compare."
    reference = next((g for g in groups if g.get("is_reference")), None)
    if reference is not None and reference.get("suppressed") == "secondary":
        return (
            f"No disparity ratio for {key}: the reference group ({reference['group']}) is hidden to protect a "
            f"smaller suppressed group (fewer than {min_cell} people or escalations), so no group can be compared with it."
        )
    if reference is not None and reference.get("suppressed"):
        return (
            f"No disparity ratio for {key}: the reference group ({reference['group']}) has fewer than {min_cell} "
            "people or escalations and is suppressed, so no group can be compared with it."
        )
    return (
        f"No disparity ratio for {key}: every group other than the reference ({block.get('reference')}) is "
        f"suppressed (fewer than {min_cell} people or escalations, or hidden to protect a smaller group)."
    )


def findings_note(fairness: Mapping[str, Any], min_cell: int) -> str:
    """The sentence shown where the findings table would be, when there are no findings.

    Distinguishes 'nothing could be assessed' from 'assessed, nothing flagged'.
    """
    if not fairness.get("evaluated", True) and not fairness.get("characteristics"):
        return "No finding: the fairness audit was not evaluated (the model has no test predictions)."
    assessable = [
        r
        for block in fairness.get("characteristics", [])
        for g in block.get("groups") or []
        for r in (g.get("ratios") or {}).values()
        if r.get("assessable") and r.get("low") is not None
    ]
    band = fairness.get("ratio_band", [0.8, 1.25])
    if not assessable:
        return (
            "No finding, but none could have been: no group was large enough to compare with its reference "
            f"after small-number suppression (at least {min_cell} people, {min_cell} escalations and "
            f"{min_cell} events behind each rate), so this report cannot show whether the list treats groups alike."
        )
    return (
        f"No disparity was flagged: every ratio that could be assessed ({len(assessable)}) is inside the "
        f"{band[0]}–{band[1]} band or its interval includes equality. Suppressed groups could not be assessed "
        "(see Small numbers)."
    )


def _driver_words(item: Mapping[str, Any], fallback: str) -> str:
    # Descriptions read "N door replacements ..." once their value slot is gone; the sentence names the thing.
    text = str(item.get("description") or fallback)
    return text[2:] if text.startswith("N ") else text


def _over(window: str) -> str:
    phrase = window_phrase(window)
    return "the whole record" if phrase == "on record" else phrase


def _quoted(items: Sequence[Mapping[str, Any]]) -> str:
    words = [f"'{_driver_words(i, str(i['feature']))}'" for i in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def opposing_drivers(
    importance: Sequence[Mapping[str, Any]], feature_records: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One line per set of related drivers (same source and event type: other window, scope or aggregate) that
    point opposite ways in the global importance, in plain words.

    'Days since' features are compared only with each other: their direction reads the other way round by
    nature (fewer days since the last event is more recent), so they never contradict a count; but the
    resident's own "days since" raising the score while the household's lowers it is a contradiction to explain.
    """
    records = {str(r.get("name")): r for r in feature_records}
    families: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for item in importance:
        record = records.get(str(item["feature"]))
        if (
            not record
            or item.get("direction") not in (RAISES, LOWERS)
            or record.get("is_imputed_flag")
            or not record.get("window")
        ):
            continue
        days = str(record.get("aggregate", "")).startswith("days_since")
        families.setdefault((record.get("source"), record.get("family"), record.get("event_type"), days), []).append(item)
    out: list[dict[str, Any]] = []
    for items in families.values():
        ups = [i for i in items if i["direction"] == RAISES]
        downs = [i for i in items if i["direction"] == LOWERS]
        if not ups or not downs:
            continue
        up_record, down_record = records[str(ups[0]["feature"])], records[str(downs[0]["feature"])]
        raise_verb = "raises" if len(ups) == 1 else "raise"
        lower_verb = "lowers" if len(downs) == 1 else "lower"
        head = f"{_quoted(ups)} {raise_verb} the score while {_quoted(downs)} {lower_verb} it"
        if str(up_record.get("aggregate", "")).startswith("days_since"):
            why = (
                f"the model reads them together, so for the same {_driver_words(downs[0], str(downs[0]['feature']))}, "
                f"more {_driver_words(ups[0], str(ups[0]['feature']))} raises the score; the push up is that "
                "comparison, not a sign that a longer time since the event is itself a concern."
            )
            out.append({"raises": [str(i["feature"]) for i in ups], "lowers": [str(i["feature"]) for i in downs],
                        "text": f"{head}: {why}"})
            continue
        same_but_window = all(up_record.get(k) == down_record.get(k) for k in ("aggregate", "scope"))
        if len(ups) == 1 and len(downs) == 1 and same_but_window and up_record.get("window") != down_record.get("window"):
            why = (
                f"the model reads the two together, so for the same number over {_over(str(down_record['window']))}, "
                f"more of them in {_over(str(up_record['window']))} raises the score; older history counts for "
                "less than recent history, and neither means these events protect anyone."
            )
        else:
            why = (
                f"the model reads them together, so for the same number of "
                f"{_driver_words(downs[0], str(downs[0]['feature']))}, more "
                f"{_driver_words(ups[0], str(ups[0]['feature']))} raises the score; the pull down is that "
                "comparison, not a sign that these events protect anyone."
            )
        out.append(
            {
                "raises": [str(i["feature"]) for i in ups],
                "lowers": [str(i["feature"]) for i in downs],
                "text": f"{head}: {why}",
            }
        )
    return out


# Contract tables that static features come from: not sources a necessity run leaves out.
PERSON_TABLES = ("residents", "residency")


def _them(names: Sequence[str]) -> tuple[str, str, str]:
    return ("it", "is", "was") if len(names) == 1 else ("them", "are", "were")


def necessity_notes(audit: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(sentence for the Data section, notes for the necessity block) reconciling the sources the model uses
    with what `earlysignal necessity` measured; (None, []) without a necessity document."""
    necessity = audit.get("necessity")
    if not necessity:
        return None, []
    used = [s for s in audit["data"].get("sources", []) if s not in PERSON_TABLES]
    measured = [v["name"] for v in necessity.get("variants", []) if v.get("kind") == "source"]
    notes: list[str] = []
    missing = [s for s in used if s not in measured]
    if missing:
        it, _, were = _them(missing)
        notes.append(
            f"Necessity was not measured for {', '.join(missing)}: the necessity run did not leave {it} out, so this "
            "report cannot say whether this model needs " + ("it." if it == "it" else "them.")
        )
    extra = [s for s in measured if s not in used]
    if extra:
        notes.append(
            f"The necessity run left out {', '.join(extra)}, which this model does not use: it was made for another "
            "feature set; re-run `earlysignal necessity` for this model version."
        )
    findings = len(audit.get("fairness", {}).get("findings", []))
    full = (necessity.get("full") or {}).get("fairness_findings")
    if full is not None and full != findings:
        notes.append(
            f"The necessity run's full model, retrained for the comparison, has {full} fairness finding(s) where this "
            f"audit of the registered model has {findings}: the necessity table compares retrained models with each "
            "other, not with the registered model."
        )
    # "Did as well without it" only of a source whose loss interval is negligible (costs_nothing), when the
    # necessity run says so; older runs only list the sources not shown to be necessary.
    unneeded = [s for s in necessity.get("costs_nothing", necessity.get("not_shown_necessary", [])) if s in used]
    sentence = None
    if unneeded:
        it, are, _ = _them(unneeded)
        sentence = (
            f"Of these, {', '.join(unneeded)} {are} not shown to be necessary (see 'Necessity of each source'): "
            f"the model did as well without {it} on the same test dates."
        )
    return sentence, notes

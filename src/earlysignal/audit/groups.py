"""Protected-characteristic groups and their intersections, with labels a board can read."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

NOT_RECORDED = "Not recorded"
INTERSECTION_JOIN = " + "

# attr__ columns already hold the data dictionary's reporting groups; booleans still read as words.
_DISPLAY: dict[str, dict[str, str]] = {
    "disability": {
        "True": "Disabled",
        "False": "Not disabled",
        "1": "Disabled",
        "0": "Not disabled",
        "Yes": "Disabled",
        "No": "Not disabled",
    },
}


def _boolean_display(attribute: str) -> dict[str, str]:
    """Words for a boolean attribute's Yes/No groups, from its name: 'care_leaver' -> 'Care leaver' /
    'Not care leaver', so a finding never reads 'Yes residents are flagged ... as often as No residents'."""
    words = attribute.replace("_", " ").strip()
    yes, no = words[:1].upper() + words[1:], f"Not {words}"
    return {"Yes": yes, "True": yes, "No": no, "False": no}


def attribute_column(attribute: str) -> str:
    """The predictions column that carries a protected attribute (attr__<name>)."""
    return f"attr__{attribute}"


def characteristic_key(attributes: Sequence[str]) -> str:
    """The name of a characteristic or intersection, e.g. 'ethnicity' or 'sex + ethnicity'."""
    return INTERSECTION_JOIN.join(attributes)


def group_labels(frame: pd.DataFrame, attribute: str) -> pd.Series:
    """Readable group label per row for one attribute; missing values become 'Not recorded'."""
    column = attribute_column(attribute)
    if column not in frame.columns:
        raise KeyError(column)
    raw = frame[column]
    labels = raw.astype("string")
    mapping = _DISPLAY.get(attribute) or _boolean_display(attribute)
    labels = labels.map(lambda value: NOT_RECORDED if pd.isna(value) else mapping.get(str(value), str(value)))
    return pd.Series(labels.astype(str).to_numpy(), index=frame.index, name=characteristic_key([attribute]))


def intersection_labels(frame: pd.DataFrame, attributes: Sequence[str]) -> pd.Series:
    """Readable group label per row for an intersection, e.g. 'Group A + Disabled'."""
    parts = [group_labels(frame, attribute) for attribute in attributes]
    combined = parts[0]
    for part in parts[1:]:
        combined = combined + INTERSECTION_JOIN + part
    return combined.rename(characteristic_key(attributes))


def characteristics(protected: Sequence[str], intersections: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """Every characteristic to audit: each protected attribute alone, then each configured intersection."""
    seen: list[tuple[str, ...]] = []
    for item in [(a,) for a in protected] + [tuple(i) for i in intersections]:
        if item not in seen:
            seen.append(item)
    return seen


def labels_for(frame: pd.DataFrame, attributes: Sequence[str]) -> pd.Series:
    """Group labels for one characteristic (single attribute or intersection)."""
    if len(attributes) == 1:
        return group_labels(frame, attributes[0])
    return intersection_labels(frame, attributes)


def _normalise(text: str) -> str:
    return "".join(text.split()).casefold()


def reference_group(
    groups: pd.Series, key: str, reference_groups: dict[str, str], attributes: Sequence[str]
) -> str:
    """The configured reference group for a characteristic (raw or readable name), else the largest group."""
    wanted = None
    for config_key, value in reference_groups.items():
        if _normalise(config_key) == _normalise(key):
            wanted = value
    counts = groups.value_counts()
    if wanted is not None:
        # Accept raw boolean codes too, mapped part by part ("Group A + True" -> "Group A + Disabled").
        parts = [p.strip() for p in str(wanted).split("+")]
        mapped = [
            _DISPLAY.get(attribute, {}).get(part, part) for attribute, part in zip(attributes, parts, strict=False)
        ]
        candidate = INTERSECTION_JOIN.join(mapped)
        for label in counts.index:
            if _normalise(label) == _normalise(candidate):
                return str(label)
        raise ValueError(
            f"audit.reference_groups.{key}: group {wanted!r} is not among the groups found: {sorted(counts.index)}"
        )
    # Largest group; ties broken by name so the choice is deterministic.
    top = counts[counts == counts.max()].index
    return str(sorted(top)[0])

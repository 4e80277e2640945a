"""Protected-characteristic groups and their intersections, with labels a board can read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

NOT_RECORDED = "Not recorded"
INTERSECTION_JOIN = " + "

# attr__ columns already hold the data dictionary's reporting groups; booleans hold Yes/No, read as the words
# the dictionary gives them (`yes_group` / `no_group`, see DataDictionary.boolean_group_words).
GroupWords = Mapping[str, Mapping[str, str]]


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


def group_labels(frame: pd.DataFrame, attribute: str, words: GroupWords | None = None) -> pd.Series:
    """Readable group label per row for one attribute; missing values become 'Not recorded'.

    `words` maps attribute -> raw value -> group word (the dictionary's boolean_group_words); a boolean
    without declared words reads from its name ('Care leaver' / 'Not care leaver').
    """
    column = attribute_column(attribute)
    if column not in frame.columns:
        raise KeyError(column)
    raw = frame[column]
    labels = raw.astype("string")
    mapping = dict((words or {}).get(attribute) or {}) or _boolean_display(attribute)
    # A blank (empty or only spaces) is not recorded, as the data contract reads it.
    labels = labels.map(
        lambda value: NOT_RECORDED if pd.isna(value) or not str(value).strip() else mapping.get(str(value), str(value))
    )
    return pd.Series(labels.astype(str).to_numpy(), index=frame.index, name=characteristic_key([attribute]))


def not_recorded_mask(labels: pd.Series, group: str = NOT_RECORDED) -> pd.Series:
    """True where a group label means 'not recorded': the audit's own label or the data dictionary's
    not-recorded group (`not_recorded.group`, which the feature matrix writes)."""
    return labels.isin({NOT_RECORDED, group})


def intersection_labels(frame: pd.DataFrame, attributes: Sequence[str], words: GroupWords | None = None) -> pd.Series:
    """Readable group label per row for an intersection, e.g. 'Group A + Group B'."""
    parts = [group_labels(frame, attribute, words) for attribute in attributes]
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


def labels_for(frame: pd.DataFrame, attributes: Sequence[str], words: GroupWords | None = None) -> pd.Series:
    """Group labels for one characteristic (single attribute or intersection)."""
    if len(attributes) == 1:
        return group_labels(frame, attributes[0], words)
    return intersection_labels(frame, attributes, words)


def _normalise(text: str) -> str:
    return "".join(text.split()).casefold()


def reference_group(
    groups: pd.Series, key: str, reference_groups: dict[str, str], attributes: Sequence[str],
    words: GroupWords | None = None,
) -> str:
    """The reference group of a characteristic (a single attribute or an intersection such as ``sex + ethnicity``).

    ``groups``: each resident's group label for ``key``; ``reference_groups``: ``audit.reference_groups`` (raw
    codes or readable names). Returns the configured group for ``key``; else, for an intersection whose every
    attribute has a configured reference group, the group joining them (``{a: X, b: Y}`` gives ``a + b`` the
    reference ``X + Y``, so boroughs that set the attributes' references compare the same intersection group)
    when that group occurs; else the largest group (ties by name).
    Raises ValueError when a group configured for ``key`` itself does not occur.
    """

    def configured(name: str) -> str | None:
        wanted = None
        for config_key, value in reference_groups.items():
            if _normalise(config_key) == _normalise(name):
                wanted = value
        return None if wanted is None else str(wanted)

    def label_of(parts: Sequence[str]) -> str | None:
        # Accept raw boolean codes too, mapped part by part ("Group A + True" -> "Group A + <its yes_group>").
        mapped = [
            (dict((words or {}).get(attribute) or {}) or _boolean_display(attribute)).get(part, part)
            for attribute, part in zip(attributes, parts, strict=False)
        ]
        candidate = INTERSECTION_JOIN.join(mapped)
        for label in counts.index:
            if _normalise(label) == _normalise(candidate):
                return str(label)
        return None

    counts = groups.value_counts()
    wanted = configured(key)
    if wanted is not None:
        found = label_of([p.strip() for p in wanted.split("+")])
        if found is not None:
            return found
        raise ValueError(
            f"audit.reference_groups.{key}: group {wanted!r} is not among the groups found: {sorted(counts.index)}"
        )
    if len(attributes) > 1:
        per_attribute = [configured(attribute) for attribute in attributes]
        if all(value is not None for value in per_attribute):
            found = label_of([str(value).strip() for value in per_attribute])
            if found is not None:
                return found
    # Largest group; ties broken by name so the choice is deterministic.
    top = counts[counts == counts.max()].index
    return str(sorted(top)[0])

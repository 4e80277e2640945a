"""Recording bias: one group's incidents are recorded by some services more often for the same latent state."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from pydantic import ValidationError

from earlysignal.config import RecordingBias
from earlysignal.errors import ConfigError
from earlysignal.synth.people import ETHNICITIES, FEMALE, MALE, People

SOURCES = (
    "housing_repairs",
    "council_tax",
    "benefits",
    "school",
    "police",
    "fire",
    "ae",
    "asb",
    "homelessness",
    "early_help",
    "social_care",
)

# Services that over-record a group's incidents when a bias names no sources.
DEFAULT_BIAS_SOURCES = ("police", "social_care", "early_help")
BIAS_ATTRIBUTES = ("ethnicity", "sex", "disability")

BIAS_FORM = "ATTRIBUTE=GROUP:FACTOR or ATTRIBUTE=GROUP:FACTOR@SOURCE,SOURCE,..."
_BIAS_RE = re.compile(r"^\s*(\w+)\s*=\s*([^:@]+?)\s*:\s*([^@\s]+)\s*(?:@\s*(.*))?$")
_TRUE = {"true", "yes", "1", "disabled"}
_FALSE = {"false", "no", "0", "not_disabled"}


def parse_recording_bias(text: str) -> RecordingBias:
    """Parse 'ethnicity=Black:1.8@police,social_care' (sources default to police, social_care, early_help)."""
    match = _BIAS_RE.match(text)
    if not match:
        raise ConfigError(
            f"--recording-bias {text!r} is not of the form {BIAS_FORM}, e.g. ethnicity=Black:1.8@police,social_care"
        )
    attribute, group, factor_text, sources_text = match.groups()
    try:
        factor = float(factor_text)
    except ValueError:
        raise ConfigError(f"--recording-bias {text!r}: factor {factor_text!r} is not a number") from None
    fields: dict[str, object] = {"attribute": attribute, "group": group, "factor": factor}
    fields["sources"] = (
        tuple(s.strip() for s in sources_text.split(",") if s.strip()) if sources_text else DEFAULT_BIAS_SOURCES
    )
    try:
        bias = RecordingBias(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"--recording-bias {text!r}: {problems}") from None
    check_recording_biases([bias], where="--recording-bias")
    return bias


def check_recording_biases(biases: Sequence[RecordingBias], where: str = "synth.recording_bias") -> None:
    """Raise ConfigError if a bias names an unknown group or source."""
    for bias in biases:
        if bias.attribute not in BIAS_ATTRIBUTES:
            raise ConfigError(f"{where}: attribute {bias.attribute!r} is not one of {list(BIAS_ATTRIBUTES)}")
        if bias.attribute == "ethnicity" and bias.group not in ETHNICITIES:
            raise ConfigError(f"{where}: ethnicity group {bias.group!r} is not one of {list(ETHNICITIES)}")
        if bias.attribute == "sex" and bias.group not in ("F", "M"):
            raise ConfigError(f"{where}: sex group {bias.group!r} must be F or M")
        if bias.attribute == "disability" and bias.group.lower() not in _TRUE | _FALSE:
            raise ConfigError(f"{where}: disability group {bias.group!r} must be true or false")
        unknown = sorted(set(bias.sources) - set(SOURCES))
        if unknown:
            raise ConfigError(f"{where}: unknown sources {unknown}; use any of {list(SOURCES)}")


def in_group(people: People, bias: RecordingBias) -> np.ndarray:
    """Boolean per person: does the person belong to the bias's group (true attribute, recorded or not)?"""
    if bias.attribute == "ethnicity":
        return people.ethnicity == ETHNICITIES.index(bias.group)
    if bias.attribute == "sex":
        return people.sex == (FEMALE if bias.group == "F" else MALE)
    return people.disability == (1 if bias.group.lower() in _TRUE else 0)


def bias_multiplier(people: People, biases: Sequence[RecordingBias], source: str) -> np.ndarray:
    """Per-person factor by which `source` over-records this person's incidents (1 for most)."""
    factor = np.ones(len(people))
    for bias in biases:
        if source in (bias.sources or DEFAULT_BIAS_SOURCES):
            factor = np.where(in_group(people, bias), factor * bias.factor, factor)
    return factor


def bias_to_json(bias: RecordingBias) -> dict[str, object]:
    """The bias as plain data for manifest.json."""
    return {"attribute": bias.attribute, "group": bias.group, "factor": bias.factor, "sources": list(bias.sources or DEFAULT_BIAS_SOURCES)}

"""Recording change: from a date on, a source records only a share of what it did (a planted data break).

Real services change systems, stop a data-sharing feed or change a recording rule; a monitored model
must notice. `--recording-change police:0.2@2024-06-01` keeps each police event on or after 1 June
2024 with probability 0.2. Thinning uses its own random stream, so a borough without a change is
byte-identical to one made before the option existed, and one with it shares everything else.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import numpy as np
from pydantic import ValidationError

from earlysignal.config import RecordingChange
from earlysignal.errors import ConfigError
from earlysignal.synth.bias import SOURCES

CHANGE_FORM = "SOURCE:FACTOR@YYYY-MM-DD"
_CHANGE_RE = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*:\s*([^@\s]+)\s*@\s*(\S+)\s*$")
# A spawn key no stage of the generator uses: the thinning draws never disturb the other streams.
_STREAM_KEY = (7001,)


def parse_recording_change(text: str) -> RecordingChange:
    """Parse 'police:0.2@2024-06-01' into a RecordingChange; ConfigError naming the option otherwise."""
    match = _CHANGE_RE.match(text)
    if not match:
        raise ConfigError(f"--recording-change {text!r} is not of the form {CHANGE_FORM}, e.g. police:0.2@2024-06-01")
    source, factor_text, start_text = match.groups()
    try:
        factor = float(factor_text)
    except ValueError:
        raise ConfigError(f"--recording-change {text!r}: factor {factor_text!r} is not a number") from None
    try:
        start = dt.date.fromisoformat(start_text)
    except ValueError:
        raise ConfigError(f"--recording-change {text!r}: {start_text!r} is not a date of the form YYYY-MM-DD") from None
    try:
        change = RecordingChange(source=source, factor=factor, start=start)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"--recording-change {text!r}: {problems}") from None
    check_recording_changes([change], where="--recording-change")
    return change


def check_recording_changes(changes: Sequence[RecordingChange], where: str = "synth.recording_change") -> None:
    """Raise ConfigError if a change names an unknown source."""
    for change in changes:
        if change.source not in SOURCES:
            raise ConfigError(f"{where}: unknown source {change.source!r}; use one of {list(SOURCES)}")


def change_to_json(change: RecordingChange) -> dict[str, object]:
    """The change as plain data for manifest.json."""
    return {"source": change.source, "factor": change.factor, "start": change.start.isoformat()}


def recording_kept(
    seed: int,
    changes: Sequence[RecordingChange],
    source_of_event: np.ndarray,
    time_us: np.ndarray,
) -> np.ndarray:
    """Boolean per event (n,): still recorded after the changes. source_of_event holds source names,
    time_us event times in microseconds since 1970-01-01."""
    keep = np.ones(len(time_us), dtype=bool)
    if not changes:
        return keep
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_STREAM_KEY))
    draws = rng.random(len(time_us))
    for change in changes:
        start_us = (change.start - dt.date(1970, 1, 1)).days * 86_400_000_000
        hit = (source_of_event == change.source) & (time_us >= start_us)
        keep &= ~hit | (draws < change.factor)
    return keep

"""Abuse hidden from services: a per-household disclosure tendency (docs/adr/0019-abuse-hidden-from-services.md).

Most domestic abuse never reaches the police (ONS Crime Survey for England and Wales: fewer than one in
five partner-abuse victims report it), and a victim who does not tell the police rarely discloses at A&E
or to children's social care either. Each household therefore draws once whether it ever discloses
(`synth.disclosure.share`). In a household that does not, the part of a thinned service's event rate
that domestic abuse adds is kept at `synth.disclosure.kept`: a rate base * e^(b . bits) with the abuse
bit on becomes base * e^(b . bits) * (1 + kept * (e^b_DA - 1)) / e^b_DA. Events abuse does not cause are
untouched, and so are the services not listed (housing repairs above all: a forced door is mended whether
or not anyone disclosed). Outcome hazards do not depend on disclosure (see the ADR for why).

The draw uses its own random stream, so `share: 1` gives a borough byte-identical to one made before
this setting existed, and any share leaves people, states and the other services' events unchanged.
"""

from __future__ import annotations

import numpy as np

from earlysignal.config import Disclosure
from earlysignal.errors import ConfigError
from earlysignal.synth.adversity import DA
from earlysignal.synth.bias import SOURCES

# A spawn key no stage of the generator uses (recording_change uses 7001).
_STREAM_KEY = (7002,)
# The services hidden abuse is thinned from when `synth.disclosure.sources` is empty. Never housing repairs.
DEFAULT_DISCLOSURE_SOURCES = ("police", "ae", "social_care")


def disclosure_sources(disclosure: Disclosure) -> tuple[str, ...]:
    """The sources thinned for hidden households: the configured ones, or the default three."""
    return disclosure.sources or DEFAULT_DISCLOSURE_SOURCES


def check_disclosure(disclosure: Disclosure, where: str = "synth.disclosure") -> None:
    """Raise ConfigError if `sources` names a source the synthetic world does not have."""
    unknown = [s for s in disclosure_sources(disclosure) if s not in SOURCES]
    if unknown:
        raise ConfigError(f"{where}.sources: unknown source(s) {unknown}; use some of {list(SOURCES)}")


def disclosure_to_json(disclosure: Disclosure) -> dict[str, object]:
    """The setting as plain data for manifest.json and ground_truth/hazards.json."""
    return {"share": disclosure.share, "kept": disclosure.kept, "sources": list(disclosure_sources(disclosure))}


def hidden_households(seed: int, n_households: int, share: float) -> np.ndarray:
    """Boolean (n_households,): True where the household never discloses abuse (probability 1 - share)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_STREAM_KEY))
    return rng.random(n_households) >= share


def thinning_factor(
    betas: tuple[float, ...], masks: np.ndarray, hidden: np.ndarray, kept: float
) -> np.ndarray:
    """Per piece (n,): the factor on a thinned service's event rate; 1 where the household discloses,
    where abuse is absent or where abuse does not raise the rate (b_DA <= 0)."""
    lift = float(np.exp(betas[DA]))
    if lift <= 1.0:
        return np.ones(len(masks))
    abused = (np.asarray(masks) & np.uint8(1 << DA)) > 0
    return np.where(np.asarray(hidden) & abused, (1.0 + kept * (lift - 1.0)) / lift, 1.0)

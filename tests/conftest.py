"""Shared test fixtures. Keep each fixture small and named for what it holds."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_borough_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A standard-world synthetic borough of ~12,000 residents over 5 years (seed 7), generated once."""
    from earlysignal.config import SynthSection
    from earlysignal.synth import generate_borough

    out = tmp_path_factory.mktemp("synth_borough_small")
    generate_borough(out, SynthSection(residents=12_000, years=5, seed=7))
    return out

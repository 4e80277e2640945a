"""Shared test fixtures. Keep each fixture small and named for what it holds."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="session", autouse=True)
def approval_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One approval ledger folder for the session, so no test reads or writes the repository's reports/approval.

    Session-wide because module fixtures audit models before any test runs; tests that need an empty
    ledger point EARLYSIGNAL_APPROVAL_STORE at their own folder.
    """
    folder = tmp_path_factory.mktemp("approval-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EARLYSIGNAL_APPROVAL_STORE", str(folder))
        yield folder


@pytest.fixture(scope="session", autouse=True)
def release_register_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A release register for the session (module fixtures that release), so no test reads or writes the
    repository's reports/release-register; each test gets its own below."""
    folder = tmp_path_factory.mktemp("release-register")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(folder / "session"))
        yield folder


@pytest.fixture(autouse=True)
def release_register(release_register_base: Path, request: pytest.FixtureRequest,
                     monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own release register (not created until a release is written): releases of one borough in
    other tests must not be read with this test's (docs/adr/0024, "A borough's own bundles")."""
    import hashlib

    folder = release_register_base / hashlib.sha256(request.node.nodeid.encode("utf-8")).hexdigest()[:16]
    monkeypatch.setenv("EARLYSIGNAL_RELEASE_REGISTER", str(folder))
    return folder


@pytest.fixture(scope="session")
def raw_borough_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~2,500-resident, 4-year borough (seed 11) with raw departmental extracts in raw/, generated once."""
    from earlysignal.config import SynthSection
    from earlysignal.synth import generate_borough
    from earlysignal.synth.raw_extracts import write_raw_extracts

    out = tmp_path_factory.mktemp("raw_borough_tiny")
    settings = SynthSection(residents=2500, years=4, seed=11)
    generate_borough(out, settings)
    write_raw_extracts(out, settings.seed)
    return out


# The feature tests run on every engine (as Splink tests every backend). Spark reuses one local
# session for the whole test run; each test gets a fresh engine (its own temporary views).
FEATURE_ENGINES = ("duckdb", pytest.param("spark", marks=pytest.mark.spark))


@pytest.fixture(params=FEATURE_ENGINES)
def feature_engine(request: pytest.FixtureRequest):
    """A feature engine by name: DuckDB, then Spark in local mode (skipped when PySpark is not installed)."""
    from earlysignal.engines import get_engine

    if request.param == "spark":
        pytest.importorskip("pyspark", reason="the Spark engine needs the spark extra: pip install -e '.[spark]'")
    with get_engine(request.param) as engine:
        yield engine


@pytest.fixture
def spark_engine():
    """The Spark engine in local mode (skipped when PySpark is not installed)."""
    from earlysignal.engines import get_engine

    pytest.importorskip("pyspark", reason="the Spark engine needs the spark extra: pip install -e '.[spark]'")
    with get_engine("spark") as engine:
        yield engine

"""Cross-borough work where the code goes to the data (docs/federation.md, ADR 0016).

Each borough runs the same pinned code on its own estate and releases only a **release bundle**:
checked aggregates with statistical disclosure control applied, hashed and signed by a named output
checker (`bundle`). `pool` verifies bundles from several boroughs and combines them into one
pan-London evaluation by random-effects meta-analysis. `transfer` evaluates a model trained in one
borough, shipped as its registered and approved artefact, on another borough's data inside that
borough.
"""

from __future__ import annotations

from earlysignal.federation.bundle import (
    BundleError,
    build_release,
    sign_bundle,
    verify_bundle,
    write_bundle,
)

__all__ = ["BundleError", "build_release", "sign_bundle", "verify_bundle", "write_bundle"]

"""The `release` stage: evaluate, build the bundle of aggregates, write it, and sign it when a key is given."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from earlysignal.config import ProjectConfig
from earlysignal.federation.bundle import (
    KIND_HOME,
    KIND_TRANSFER,
    BundleError,
    build_release,
    sign_bundle,
    write_bundle,
)
from earlysignal.federation.evaluate import home_evaluation, transfer_evaluation
from earlysignal.federation.register import (
    check_home_borough, check_register_anchor, describe, earlier_for, record_register_anchor)


def default_bundle_dir(borough: str, model_name: str, model_version: str) -> Path:
    """reports/release/<borough>-<model>-v<version>/."""
    from earlysignal.ledger import key_slug

    return Path("reports") / "release" / f"{key_slug(borough)}-{model_name}-v{model_version}"


def run_release(
    config: ProjectConfig,
    model_uri: str,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    borough: str | None = None,
    shipped: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    as_of_dates: Sequence[dt.date] | None = None,
    home_model_uri: str | None = None,
    trained_in: str | None = None,
    key_path: str | os.PathLike[str] | None = None,
    checker: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write a release bundle for `model_uri` evaluated in this borough; returns (bundle folder, release.json).

    shipped False: the borough's own model on its logged test rows. shipped True: a model trained
    elsewhere, approved, evaluated here on `data_dir` (see transfer_evaluation). With key_path the
    bundle is signed off at once by that output checker; without, it waits for `release-sign`. The
    release is read with every earlier release of the borough (federation.register.earlier_for) and
    release.json lists them under `earlier_releases`.
    """
    name = (borough or config.release.borough or "").strip()
    if not name:
        raise BundleError("a release needs the borough's name as the pooled report will show it: set "
                          "release.borough in the config or pass --borough")
    # Every earlier release of this borough (its register's, whatever --out, and release.earlier's), checked
    # before minutes of evaluation: a missing or altered one stops here.
    own_model = (model_uri[len("models:/"):].split("/")[0].split("@")[0]
                 if not shipped and model_uri.startswith("models:/") else None)
    earlier = earlier_for(config, name, model=own_model)
    if own_model:
        # A renamed borough's own model, or its earlier releases registered elsewhere: said before the
        # evaluation runs, not after (write_bundle checks the name again).
        check_home_borough(config, {"kind": KIND_HOME, "borough": name, "model": {"name": own_model}})
        check_register_anchor(config, own_model)
    if shipped:
        evaluation = transfer_evaluation(model_uri, config, data_dir, as_of_dates=as_of_dates,
                                         home_model_uri=home_model_uri, trained_in=trained_in)
    else:
        if home_model_uri or as_of_dates:
            raise BundleError("--home-model and --as-of apply to a shipped model only (--shipped)")
        evaluation = home_evaluation(model_uri, config)
        if trained_in:
            evaluation.model["trained_in"] = trained_in
        evaluation.model["trained_in"] = evaluation.model.get("trained_in") or name
    release = build_release(
        evaluation.frame,
        config=config,
        borough=name,
        model=evaluation.model,
        kind=KIND_TRANSFER if shipped else KIND_HOME,
        feature_metadata=evaluation.feature_metadata,
        approval=evaluation.approval,
        earlier=earlier.documents,
    )
    # The checker reads beside the figures which earlier releases they were checked against (no paths).
    release["earlier_releases"] = describe(earlier.releases)
    folder = Path(out_dir) if out_dir is not None else default_bundle_dir(
        name, str(evaluation.model["name"]), str(evaluation.model["version"]))
    write_bundle(release, folder, config)
    if own_model:
        record_register_anchor(config, own_model)
    if key_path is not None:
        sign_bundle(folder, key_path, config, checker=checker)
    return folder, release

"""The MLflow model registry: resolve model URIs and register trained versions as `candidate`.

Only `earlysignal approve` sets `champion`; training never does.
"""

from __future__ import annotations

import re

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from earlysignal.errors import EarlySignalError

CANDIDATE_ALIAS = "candidate"
CHAMPION_ALIAS = "champion"
_URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$")


class ModelNotFoundError(EarlySignalError):
    """A model URI does not resolve to a registered model version."""


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """Split models:/name/3 or models:/name@alias into (name, version, alias)."""
    match = _URI_RE.match(model_uri)
    if not match:
        raise ModelNotFoundError(
            f"model URI {model_uri!r} is not of the form models:/<name>/<version> or models:/<name>@<alias>"
        )
    return match["name"], match["version"], match["alias"]


def resolve_model_version(model_uri: str) -> ModelVersion:
    """The registered ModelVersion a models:/ URI points at; a clear error if there is none."""
    name, version, alias = parse_model_uri(model_uri)
    client = MlflowClient()
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as error:
        hint = (
            f"no version of {name!r} has the alias {alias!r}"
            if alias
            else f"model {name!r} has no version {version}"
        )
        if alias == CHAMPION_ALIAS:
            hint += "; approve a version first (earlysignal approve) or pass --model models:/<name>/<version>"
        raise ModelNotFoundError(f"cannot use {model_uri}: {hint} ({error.message.splitlines()[0]})") from None


def version_uri(name: str, version: str | int) -> str:
    """The pinned URI of one registered version."""
    return f"models:/{name}/{version}"


def set_candidate(name: str, version: str | int) -> None:
    """Point the `candidate` alias at a version."""
    MlflowClient().set_registered_model_alias(name, CANDIDATE_ALIAS, str(version))

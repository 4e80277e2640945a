"""Where MLflow keeps runs and the model registry.

MLFLOW_TRACKING_URI wins when set (a team server, or a test's temporary store); otherwise
an embedded SQLite store under ./mlruns/, which `mlflow ui` opens without a server:

    mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import mlflow


class _DropKnownNoise(logging.Filter):
    """Drop MLflow messages that say nothing to an Early Signal user.

    The store's schema migrations are routine. The CloudPickle notice is about loading models from
    untrusted sources: the registry holds the versions Early Signal trained, and an approved
    version's artefact hash is checked before it scores anyone.
    """

    _NOISE = (
        "Creating initial MLflow database tables",
        "Updating database tables",
        "Passing a Python object as `python_model`",
        "Validating input example against model signature",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(fragment in record.getMessage() for fragment in self._NOISE)


for _logger_name in ("mlflow.store.db.utils", "mlflow.pyfunc"):
    logging.getLogger(_logger_name).addFilter(_DropKnownNoise())

LOCAL_STORE_DIR = Path("mlruns")


def local_tracking_uri(store_dir: Path = LOCAL_STORE_DIR) -> str:
    """The embedded SQLite tracking URI for a store folder."""
    return f"sqlite:///{(store_dir / 'mlflow.db').as_posix()}"


def configure_tracking() -> str:
    """Point MLflow at MLFLOW_TRACKING_URI, else the local SQLite store; return the URI in use."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        LOCAL_STORE_DIR.mkdir(parents=True, exist_ok=True)
        uri = local_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def use_experiment(name: str) -> str:
    """Create the experiment if needed (artifacts beside a local SQLite store) and make it active."""
    uri = configure_tracking()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        artifact_location = None
        if uri.startswith("sqlite:///"):
            store = Path(uri.removeprefix("sqlite:///")).parent
            artifact_location = (store / "artifacts").resolve().as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """Inside the block, MLflow does not draw its artefact download bars (unless the user set
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR themselves): stages show their own progress."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if key in os.environ:
        yield
        return
    os.environ[key] = "false"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def ui_command() -> str:
    """The command that opens the MLflow UI on the store in use."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri()
    return f"mlflow ui --backend-store-uri {uri}"

"""The feature matrix on disk: a Parquet file plus a JSON sidecar (`<matrix>.json`, i.e. the
Parquet path with `.json` appended), and reuse when spec and data are unchanged."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from earlysignal.atomic import atomic_path, write_json
from earlysignal.errors import ConfigError, EarlySignalError
from earlysignal.fingerprint import file_sha256, stable_hash

if TYPE_CHECKING:
    from earlysignal.config import ProjectConfig
    from earlysignal.engines.base import Engine

# The link run's quality file: the matrix records it (provenance.linkage_provenance), so it is an input.
LINK_QUALITY_NAME = "link_quality.json"


@dataclass
class FeatureMatrix:
    """Rows (resident_id, as_of) with label, model features and attr__* columns, plus metadata."""

    frame: pd.DataFrame
    metadata: dict[str, Any]

    @property
    def feature_columns(self) -> list[str]:
        """The model inputs, in order."""
        return list(self.metadata["feature_columns"])

    @property
    def protected_columns(self) -> list[str]:
        """The attr__* columns that travel alongside for audits (not model inputs)."""
        return list(self.metadata["protected_columns"])


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar beside a matrix: `features/x.parquet` -> `features/x.parquet.json`."""
    path = Path(path)
    return path.with_name(path.name + ".json")


# The Parquet file carries its own copy of the sidecar in its schema metadata, so the one atomic
# rename of the Parquet file is what commits a new matrix; the sidecar is a readable copy of it.
EMBEDDED_METADATA_KEY = b"earlysignal.matrix"


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete what a killed write of this matrix or its sidecar left behind (SIGKILL or a power cut: an error,
    Ctrl-C and SIGTERM clean up on the way out); returns the paths removed. That is the temporary files of an
    atomic write, and a partitioned build's folders `<matrix>.tmp/` (part files) and `<matrix>.events.tmp/`
    (every table's accepted rows per partition; features/partition.py).

    Two `features` runs writing the same matrix at once are not supported: one would remove the other's.
    """
    from earlysignal.features.partition import EVENTS_TMP_SUFFIX, PARTS_TMP_SUFFIX

    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [
        p for name in (path.name, sidecar_path(path).name) for p in path.parent.glob(f".{name}.*.tmp") if p.is_file()
    ]
    for p in stale:
        p.unlink(missing_ok=True)
    folders = [path.with_name(path.name + suffix) for suffix in (PARTS_TMP_SUFFIX, EVENTS_TMP_SUFFIX)]
    for folder in folders:
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            stale.append(folder)
    return stale


def write_feature_matrix(matrix: FeatureMatrix, path: str | os.PathLike[str]) -> Path:
    """Write the matrix (Parquet, zstd, with the metadata embedded) and then its sidecar, each atomically.

    Killed before the Parquet rename, the old matrix and sidecar stay; killed after it, the new Parquet
    holds the new metadata and the next read rewrites the sidecar from it. Stale temporary files from
    an earlier killed write are removed first.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    table = pa.Table.from_pandas(matrix.frame, preserve_index=False)
    embedded = json.dumps(matrix.metadata, sort_keys=True, default=str).encode("utf-8")
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), EMBEDDED_METADATA_KEY: embedded})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    write_json(matrix.metadata, sidecar_path(path))
    return path


def _embedded_metadata(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        raw = (pq.read_schema(path).metadata or {}).get(EMBEDDED_METADATA_KEY)
    except (OSError, pa.ArrowInvalid):
        return None
    return json.loads(raw) if raw else None


def read_feature_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a matrix file: its sidecar, repaired from the Parquet's embedded copy when a killed
    write left the sidecar missing or describing the previous matrix."""
    side = sidecar_path(path)
    embedded = _embedded_metadata(Path(path))
    sidecar: dict[str, Any] | None = None
    if side.exists():
        try:
            sidecar = json.loads(side.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            if embedded is None:
                raise EarlySignalError(f"{side} is not valid JSON ({error}); rebuild the matrix") from None
    if embedded is not None and sidecar != embedded:
        write_json(embedded, side)
        return embedded
    if sidecar is None:
        raise EarlySignalError(f"{side} does not exist; rebuild the matrix with `earlysignal features`")
    return sidecar


def matrix_rows(matrix: FeatureMatrix) -> int:
    """Rows of a matrix, from its frame or, when the frame was not read back, from its metadata."""
    if len(matrix.frame) or not matrix.metadata.get("rows_per_as_of"):
        return len(matrix.frame)
    return int(sum(matrix.metadata["rows_per_as_of"].values()))


def _metadata_only(path: Path) -> FeatureMatrix:
    """A matrix on disk as its metadata and an empty frame (build_or_reuse_feature_matrix, read_back=False)."""
    return FeatureMatrix(frame=pd.DataFrame(), metadata=read_feature_metadata(path))


def read_feature_matrix(path: str | os.PathLike[str]) -> FeatureMatrix:
    """Read a matrix and its sidecar."""
    path = Path(path)
    if not path.exists():
        raise EarlySignalError(f"feature matrix {path} does not exist; build it with `earlysignal features`")
    metadata = read_feature_metadata(path)
    if path.is_dir():  # a partitioned build (features/partition.py): one part file per partition
        from earlysignal.features.partition import read_partitioned_frame

        frame = read_partitioned_frame(path)
    else:
        frame = pd.read_parquet(path)
    frame["label"] = frame["label"].astype("Int8")
    missing = [c for c in metadata["feature_columns"] if c not in frame.columns]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise EarlySignalError(f"{path}: columns listed in the sidecar are missing: {missing[:5]}{more}")
    return FeatureMatrix(frame=frame, metadata=metadata)


def data_files(data_dir: str | os.PathLike[str]) -> dict[str, str]:
    """{file name: SHA-256} of the borough's input files present in data_dir: manifest.json, each contract
    table's file (<table>.parquet or .csv) and link_quality.json (the link run the matrix records).

    Outputs written beside them (a second matrix, its sidecar, quarantine/, raw/ or ingested/ extracts)
    are not inputs of the matrix and are left out, so writing one never makes the data look changed.
    """
    from earlysignal.contract.schemas import MANIFEST_NAME, TABLE_NAMES

    folder = Path(data_dir)
    names = [MANIFEST_NAME, *(f"{table}.{suffix}" for table in TABLE_NAMES for suffix in ("parquet", "csv")),
             LINK_QUALITY_NAME]
    return {name: file_sha256(folder / name) for name in names if (folder / name).is_file()}


def fingerprint_of(files: dict[str, str]) -> str:
    """The data fingerprint (SHA-256) of data_files' {name: SHA-256}."""
    return stable_hash(files)


def data_fingerprint(data_dir: str | os.PathLike[str]) -> str:
    """SHA-256 over the borough's input files (data_files): the manifest, the contract's tables and the link
    quality file; nothing else in the folder moves it."""
    return fingerprint_of(data_files(data_dir))


def changed_data_files(previous: dict[str, Any], current: dict[str, str]) -> str:
    """Which input files differ from those a matrix was built from, in words ('events.parquet',
    'residency.parquet added', ...); a generic phrase when the matrix did not record its files."""
    before = previous.get("data_files")
    if not isinstance(before, dict):
        return "the matrix does not record its input files (built by an earlier version)"
    parts = []
    for name in sorted(set(before) | set(current)):
        if name not in before:
            parts.append(f"{name} added")
        elif name not in current:
            parts.append(f"{name} removed")
        elif before[name] != current[name]:
            parts.append(name)
    return ", ".join(parts) or "the same files, fingerprinted differently"


def default_matrix_path(config: ProjectConfig, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """`<data.dir>/features/<label.name>.parquet`."""
    return Path(data_dir or config.data.dir) / "features" / f"{config.label.name}.parquet"


def matrix_status_words(status: str) -> str:
    """What a build did, in words for the console, from build_or_reuse_feature_matrix's status string
    ('built: no matrix' -> 'Built the feature matrix (first build: none existed yet)')."""
    if status == "reused":
        return "Reused the feature matrix (spec, code and data unchanged)"
    if status == "built: no matrix":
        return "Built the feature matrix (first build: none existed yet)"
    return f"Rebuilt the feature matrix ({status.removeprefix('built: ')})"


def _build_in_spark_tasks(
    config: ProjectConfig, data_dir: Path, out: Path, engine: Engine | None, extra: dict[str, Any]
) -> None:
    """The partitioned build with each partition in a Spark task (build.spark_tasks), on the Spark engine's
    session. Raises ConfigError when the engine is not Spark."""
    if engine is None or engine.name != "spark":
        raise ConfigError(
            "build.spark_tasks runs each partition in a Spark task, so it needs the Spark engine: "
            "set build.engine: spark or pass --engine spark"
        )
    from earlysignal.features.spark_partitions import build_partitioned_feature_matrix_from_folder_on_spark

    build_partitioned_feature_matrix_from_folder_on_spark(config, data_dir, out, engine.session, extra_metadata=extra)  # type: ignore[attr-defined]


def build_or_reuse_feature_matrix(
    config: ProjectConfig,
    data_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    engine: Engine | None = None,
    progress: bool = False,
    read_back: bool = True,
) -> tuple[FeatureMatrix, str]:
    """Reuse the matrix at `out` when its spec hash, code fingerprint (package version and the source of
    the modules that make a matrix: features.spec.code_fingerprint) and data fingerprint all match;
    otherwise build and write it. The string says 'reused', 'built: no matrix', or 'built: X changed'
    naming what changed: 'spec', 'code', 'data', 'spec and data', 'spec, code and data' ...

    `read_back=False`: a matrix on disk (reused, or built in partitions) is not read back into memory;
    the FeatureMatrix returned then has its metadata and an empty frame (rows: `matrix_rows`), so a
    partitioned build stays within its memory budget."""
    from earlysignal.features.builder import build_feature_matrix, load_data
    from earlysignal.features.spec import code_fingerprint, spec_hash

    if data_dir is not None:
        config = config.model_copy(update={"data": config.data.model_copy(update={"dir": Path(data_dir)})})
    data_dir = Path(config.data.dir)
    if not data_dir.is_dir():
        raise EarlySignalError(f"data folder {data_dir} does not exist; run `earlysignal synth` or pass --data DIR")
    out = Path(out) if out is not None else default_matrix_path(config)
    remove_stale_temporaries(out)
    wanted_spec = spec_hash(config)
    wanted_code = code_fingerprint()
    files = data_files(data_dir)
    fingerprint = fingerprint_of(files)
    reason = "built: no matrix"
    if out.exists() and (sidecar_path(out).exists() or _embedded_metadata(out) is not None):
        try:
            previous = read_feature_metadata(out)
        except EarlySignalError:
            previous = {}
        # A matrix from before a code upgrade (or with no code fingerprint at all) is rebuilt: new code
        # may compute the same spec differently (e.g. calendar windows, docs/adr/0020-calendar-windows.md).
        changed = [
            what
            for what, differs in (
                ("spec", previous.get("spec_hash") != wanted_spec),
                ("code", previous.get("code_fingerprint") != wanted_code),
                ("data", previous.get("data_fingerprint") != fingerprint),
            )
            if differs
        ]
        if not changed:
            return (read_feature_matrix(out) if read_back else _metadata_only(out)), "reused"
        listed = changed[0] if len(changed) == 1 else ", ".join(changed[:-1]) + " and " + changed[-1]
        reason = f"built: {listed} changed"
        if "data" in changed:
            # Say which input moved: a rebuild with no visible cause is one nobody can check.
            reason += f": {changed_data_files(previous, files)}"
    build = getattr(config, "build", None)
    if build is not None and (build.memory_budget_gb is not None or build.partitions is not None):
        # Bounded memory: the matrix is built partition by partition into a folder of part files, and
        # the events are validated in batches and read back one partition at a time.
        from earlysignal.features.partition import build_partitioned_feature_matrix_from_folder

        from earlysignal.provenance import linkage_provenance

        # The link run travels with the matrix whichever way it was built (audit, bundle, MLflow tags).
        extra = {"data_fingerprint": fingerprint, "data_files": files, "code_fingerprint": wanted_code,
                 "data_dir": str(data_dir), "linkage": linkage_provenance(data_dir)}
        if build.spark_tasks:
            _build_in_spark_tasks(config, data_dir, out, engine, extra)
        else:
            build_partitioned_feature_matrix_from_folder(
                config, data_dir, out, engine=engine, extra_metadata=extra, progress=progress
            )
        # Reading the whole matrix back would undo the budget (at 120,000 residents: 3.1 GB peak with a
        # budget of 0.6 GB, where the build itself peaked under 1 GB).
        return (read_feature_matrix(out) if read_back else _metadata_only(out)), reason
    if build is not None and build.spark_tasks:
        raise ConfigError(
            "build.spark_tasks needs the population split into partitions: set build.partitions (e.g. the "
            "cluster's executor cores x 2) or build.memory_budget_gb"
        )
    started = time.perf_counter()
    data = load_data(config)
    loaded = time.perf_counter() - started
    matrix = build_feature_matrix(config, data, engine=engine, progress=progress)
    matrix.metadata["timings"] = {"load": round(loaded, 3), **matrix.metadata["timings"]}
    matrix.metadata["data_fingerprint"] = fingerprint
    matrix.metadata["data_files"] = files
    matrix.metadata["code_fingerprint"] = wanted_code
    matrix.metadata["data_dir"] = str(data_dir)
    from earlysignal.provenance import linkage_provenance

    # The code lists' hash and the link run behind the data travel with every downstream artefact.
    matrix.metadata["linkage"] = linkage_provenance(data_dir)
    if len(matrix.frame) == 0:
        # An empty matrix written with success would let every later stage fail far from the cause.
        raise EarlySignalError(
            f"the feature matrix has no rows: no resident of {data_dir} is in the cohort at any of the "
            f"{len(matrix.metadata['as_of_dates'])} as_of dates ({matrix.metadata['as_of_dates'][:1]} ... "
            f"{matrix.metadata['as_of_dates'][-1:]}); check the cohort section and temporal.first_as_of/last_as_of "
            f"against the data (residents accepted: {len(data.residents):,}); nothing was written to {out}"
        )
    write_feature_matrix(matrix, out)
    return matrix, reason

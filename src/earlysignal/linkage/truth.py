"""Which ground truth (synthetic worlds only) `earlysignal link` measures its accuracy against.

Order: `--ground-truth` (must exist); else `linkage.ground_truth`, an absolute path as it is and a
relative one looked for in the ingested folder, then in `data.dir` (a synthetic borough's folder, whose
`ground_truth/` sits beside its `raw/` extracts), then beside the ingested folder (the demo's layout:
DATA/raw, DATA/ingested, DATA/ground_truth). A file found without being named on the command line is
used only if it describes the records being linked (`covers`): a stale synthetic world in `data.dir`
must not give figures for another borough's records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from earlysignal.errors import ContractError

# A ground truth of the same synthetic world names every person record; one naming fewer is another world's.
MIN_RECORDS_COVERED = 0.99


@dataclass(frozen=True)
class GroundTruthChoice:
    """The ground-truth file chosen (None: accuracy not measured), how it was chosen, and where it was looked for."""

    path: Path | None
    origin: str  # "--ground-truth", "linkage.ground_truth" or "none"
    looked_in: tuple[Path, ...] = ()

    def describe(self) -> str:
        """One sentence for the console and link_quality.json: which file, or why none."""
        if self.path is not None:
            return f"ground truth {self.path} (from {self.origin})"
        if not self.looked_in:
            return "no ground truth (--ground-truth, synthetic worlds; linkage.ground_truth is not set)"
        places = ", ".join(str(p) for p in self.looked_in)
        return f"no ground truth found (linkage.ground_truth looked for at {places})"


def find_ground_truth(
    ingested: Path, configured: Path | None, data_dir: Path | None, explicit: Path | None
) -> GroundTruthChoice:
    """The ground truth to measure against (see module docstring).

    Raises ContractError when `explicit` (--ground-truth) does not exist.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_absolute():
            # Relative to the working directory, as a command-line path is; older runs gave it relative
            # to the ingested folder, which is still tried second.
            path = next((p for p in (Path.cwd() / path, ingested.absolute() / path) if p.is_file()), Path.cwd() / path)
        if not path.is_file():
            raise ContractError(f"--ground-truth {explicit} does not exist; give the synthetic borough's "
                                "ground_truth/raw_records.parquet, or leave it out")
        return GroundTruthChoice(path, "--ground-truth")
    if configured is None:
        return GroundTruthChoice(None, "none")
    if configured.is_absolute():
        candidates = [configured]
    else:
        bases = [ingested]
        if data_dir is not None:
            bases.append(Path(data_dir))
        bases.append(ingested.parent)
        candidates = []
        for base in bases:
            candidate = (base / configured).absolute()
            if candidate not in candidates:
                candidates.append(candidate)
    for candidate in candidates:
        if candidate.is_file():
            return GroundTruthChoice(candidate, "linkage.ground_truth", tuple(candidates))
    return GroundTruthChoice(None, "none", tuple(candidates))

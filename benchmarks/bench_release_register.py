"""What reading a borough's own earlier releases costs `release` (the release register, ADR 0024 addendum).

A borough releases once a month over a sliding pair of test dates (release i covers months i and i + 1, so each
release shares a date with the one before). Each month's rows are tests/test_release_bundle.evaluation_rows'
(2,000 residents; every other month the weak date whose list finds a handful, so dates get withheld and
complemented). For release i this times what `release` does after the evaluation, with the register holding the
i earlier releases (read from the register, closed against them, refused if still pinned, registered) against
the same release into an empty register: median of REPEATS each.

    python benchmarks/bench_release_register.py [RELEASES] [OUT]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

REPEATS = 3


def month_rows(j: int):
    """Test date j's rows: 2,000 residents, a strong list on even months and a weak one (a handful found) on odd."""
    import pandas as pd
    from test_release_bundle import evaluation_rows

    rows = evaluation_rows(seed=j)
    part = rows[rows["as_of"] == pd.Timestamp("2025-01-01" if j % 2 else "2024-10-01")].copy()
    part["as_of"] = pd.Timestamp("2024-01-01") + pd.DateOffset(months=j)
    part["resident_id"] = [f"M{j:02d}-{i:05d}" for i in range(len(part))]
    return part


def release_once(rows, config, out: Path, register: Path) -> tuple[float, dict, int]:
    """Seconds for: earlier_for, build_release with them, write_bundle (its check and the register entry)."""
    from earlysignal.federation.bundle import build_release, write_bundle
    from earlysignal.federation.register import describe, earlier_for

    os.environ["EARLYSIGNAL_RELEASE_REGISTER"] = str(register)
    start = time.perf_counter()
    earlier = earlier_for(config, "Northgate")
    release = build_release(rows, config=config, borough="Northgate", model={"name": "es", "version": "1",
                                                                            "model_sha256": "ab" * 32},
                            earlier=earlier.documents)
    release["earlier_releases"] = describe(earlier.releases)
    write_bundle(release, out, config)
    return time.perf_counter() - start, release, len(earlier.releases)


def main(releases: int, root: Path) -> None:
    import pandas as pd

    from earlysignal.audit.differencing import attack_releases
    from earlysignal.config import load_config

    base = load_config(REPO / "conf" / "borough.yaml")
    config = base.model_copy(update={
        "capacity": base.capacity.model_copy(update={"k": 100, "top_percent": None}),
        "training": base.training.model_copy(update={"bootstrap": 20}),
        "audit": base.audit.model_copy(update={"bootstrap": 20}),
    })
    shutil.rmtree(root, ignore_errors=True)
    months = [month_rows(j) for j in range(releases + 1)]
    register = root / "register"
    written = []
    print("| release | earlier read | without register (s) | with register (s) | added (s) | withheld found at "
          "its dates (without → with) | pinned reading all (without → with) |")
    print("|---|---|---|---|---|---|---|")
    for i in range(releases):
        rows = pd.concat([months[i], months[i + 1]], ignore_index=True)
        alone_times, with_times = [], []
        for r in range(REPEATS):
            seconds, alone, _ = release_once(rows, config, root / f"alone-{i}-{r}", root / f"empty-{i}-{r}")
            alone_times.append(seconds)
        for r in range(REPEATS):
            # Each repeat into the real register; only the first is kept there (the others' entries removed).
            snapshot = (register / "register.jsonl").read_text() if (register / "register.jsonl").exists() else None
            seconds, release, n_earlier = release_once(rows, config, root / f"release-{i}", register)
            with_times.append(seconds)
            if r < REPEATS - 1:
                if snapshot is None:
                    (register / "register.jsonl").unlink()
                else:
                    (register / "register.jsonl").write_text(snapshot)
        written.append(release)

        def hidden(doc: dict) -> int:
            return sum(row["precision_at_capacity"] is None for row in doc["performance"]["per_as_of"])

        pinned_alone = sum(b.worked_back for b in attack_releases([*written[:-1], alone]))
        pinned_with = sum(b.worked_back for b in attack_releases(written))
        print(f"| {i + 1} | {n_earlier} | {statistics.median(alone_times):.2f} | {statistics.median(with_times):.2f} | "
              f"{statistics.median(with_times) - statistics.median(alone_times):+.2f} | {hidden(alone)} → "
              f"{hidden(release)} | {pinned_alone} → {pinned_with} |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8,
         Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp/bench_release_register"))

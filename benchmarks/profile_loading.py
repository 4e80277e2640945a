"""Where the memory of a partitioned load goes (not run by CI).

    .venv/bin/python benchmarks/profile_loading.py --data-dir /work/data/r250000-s42 --budget-gb 1.5

Runs `load_partitioned_data` (contract/streaming.py: residents and residency checked in buckets, events in
batches, every table's accepted rows written per partition) on a borough folder with the partition count
`earlysignal features` would choose, and prints one line per phase and per events batch: the process's
current RSS (/proc/self/statm), its peak so far, its peak since the previous line (VmHWM, reset after each
line through /proc/self/clear_refs, so every phase's own peak shows, not only the largest so far) and the
bytes Arrow's memory pool holds (pa.total_allocated_bytes), so what grows with the number of batches or
partitions shows as a trend.
`--partitions` and `--batch-rows` vary the two counts on a small borough.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import os
import resource
import tempfile
import time
from pathlib import Path


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _malloc_gb() -> tuple[float, float]:
    """(bytes in use, bytes held) by glibc's malloc, all arenas and mmapped blocks (mallinfo2)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return (info.uordblks + info.hblkhd) / 1e9, (info.arena + info.hblkhd) / 1e9


def _phase_peak_gb() -> float | None:
    """The process's peak RSS since the last call (VmHWM, then reset through /proc/self/clear_refs: Linux
    4.0+), so a phase's own peak shows even after an earlier phase set a higher one; None if unavailable."""
    try:
        with open("/proc/self/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except (OSError, StopIteration, ValueError):
        return None
    return kb * 1024 / 1e9


def _rss_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--budget-gb", type=float, default=1.5)
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()

    import numpy as np
    import pyarrow as pa

    from earlysignal.config import load_config
    from earlysignal.contract import streaming
    from earlysignal.features.partition import (
        _chosen_partitions,
        assign_partitions,
        household_components,
    )

    config = load_config(args.config)
    config = config.model_copy(update={"build": config.build.model_copy(update={"memory_budget_gb": args.budget_gb})})
    started = time.perf_counter()
    cpu = os.times()

    overall = {"peak": 0.0}

    def line(what: str) -> None:
        now = os.times()
        phase = _phase_peak_gb()
        overall["peak"] = max(overall["peak"], phase or 0.0)
        print(
            f"{dt.datetime.now(dt.timezone.utc):%H:%M:%S} {time.perf_counter() - started:7.1f} s "
            f"cpu {now.user - cpu.user + now.system - cpu.system:7.1f} s  rss {_rss_gb():.3f} GB  "
            f"peak {max(overall['peak'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6):.3f} GB  "
            f"since last line {'n/a' if phase is None else f'{phase:.3f}'} GB  "
            f"arrow {pa.total_allocated_bytes() / 1e9:.3f} GB  malloc in use/held {'/'.join(f'{v:.3f}' for v in _malloc_gb())} GB"
            f"  {what}",
            flush=True,
        )

    def traced(owner: object, name: str) -> None:
        original = getattr(owner, name)

        def wrapper(*a, **kw):  # type: ignore[no-untyped-def]
            line(f"{name} start")
            result = original(*a, **kw)
            line(f"{name} end")
            return result

        setattr(owner, name, wrapper)

    from earlysignal.contract import by_resident

    for name in ("_keys", "_split_buckets", "_stream_events", "_write_table_parts", "_duplicate_flags"):
        traced(streaming, name)
    traced(by_resident, "validate_by_resident")
    batches = {"n": 0}
    writer_class = getattr(streaming, "_PartWriters", None)
    if writer_class is not None:
        write = writer_class.write

        def counted(self, *a, **kw):  # type: ignore[no-untyped-def]
            write(self, *a, **kw)
            batches["n"] += 1
            line(f"events batch {batches['n']} written")

        writer_class.write = counted
    grid = list(config.as_of_dates())

    def assign(residents, residency):  # type: ignore[no-untyped-def]
        count = _chosen_partitions(config, len(residents), grid, args.partitions)
        components = household_components(residents, residency)
        line(f"assign: {count} partitions")
        return assign_partitions(components, np.ones(components.size), count), count

    line("start")
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        data = streaming.load_partitioned_data(args.data_dir, config, folder, assign, False, args.batch_rows)
        line(f"loaded: {data.partitions} partitions, {data.report.tables['events'].accepted:,} events accepted")


if __name__ == "__main__":
    main()

"""Combine synthetic borough folders into one larger population (not run by CI).

    .venv/bin/python benchmarks/combine_boroughs.py /work/data/r1000000-s42 /work/data/r1000000-s43 \
        --out /work/data/r2000000-2x1m

Used to measure the partitioned build at 2M residents: `generate_borough` holds a whole borough in memory
(6.4 GB peak at 1M), so two 1M boroughs with different seeds are generated and joined here instead. Every
identifier (resident, household, address, event) is prefixed with `B<n>-` so the boroughs stay disjoint;
tables are copied row group by row group (memory stays at one row group); the manifest sums the row counts
and keeps the first borough's dates (all inputs must share extract_date). Ground truth is not copied.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

IDS = ("resident_id", "household_id", "address_id", "event_id")
TABLES = ("residents", "residency", "events", "outcomes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in args.folders]
    if len({m["extract_date"] for m in manifests}) != 1:
        raise SystemExit("the boroughs have different extract dates; generate them with the same synth.end_date")
    args.out.mkdir(parents=True, exist_ok=False)
    counts: dict[str, int] = {}
    for table in TABLES:
        writer = None
        for number, folder in enumerate(args.folders):
            file = pq.ParquetFile(folder / f"{table}.parquet")
            prefix = pa.scalar(f"B{number}-")
            for group in range(file.metadata.num_row_groups):
                data = file.read_row_group(group)
                for index, name in enumerate(data.column_names):
                    if name in IDS:
                        data = data.set_column(index, name, pc.binary_join_element_wise(prefix, data.column(name), ""))
                if writer is None:
                    writer = pq.ParquetWriter(args.out / f"{table}.parquet", data.schema, compression="zstd")
                writer.write_table(data)
                counts[table] = counts.get(table, 0) + data.num_rows
        assert writer is not None
        writer.close()
        print(f"{table}: {counts[table]:,} rows", flush=True)
    manifest = dict(manifests[0])
    manifest["row_counts"] = counts
    manifest["sources"] = list(dict.fromkeys(s for m in manifests for s in m.get("sources", [])))
    manifest["combined_from"] = [str(folder) for folder in args.folders]
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()

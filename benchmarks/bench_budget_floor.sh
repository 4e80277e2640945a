#!/bin/sh
# Peak RSS, wall and user CPU of `earlysignal features` at several build.memory_budget_gb (docs/performance.md,
# "A budget below the floor"). Run from a borough's folder holding conf/borough.yaml and its data:
#   sh benchmarks/bench_budget_floor.sh 0.5 0.25 0.1
# Each budget builds into a fresh budgetruns/m-<budget>.parquet with conf/budget-<budget>.yaml (the config plus
# build.memory_budget_gb); "none" builds without a budget.
set -e
mkdir -p budgetruns
for b in "$@"; do
  c=conf/borough.yaml
  if [ "$b" != none ]; then
    c=conf/budget-$b.yaml
    cp conf/borough.yaml "$c" && printf '\nbuild:\n  memory_budget_gb: %s\n' "$b" >> "$c"
  fi
  rm -rf "budgetruns/m-$b.parquet" "budgetruns/m-$b.parquet.json"
  /usr/bin/time -v earlysignal features --config "$c" --out "budgetruns/m-$b.parquet" > "budgetruns/$b.log" 2> "budgetruns/$b.time"
  echo "$b $(grep -ao 'In [0-9]* partitions' "budgetruns/$b.time" "budgetruns/$b.log" | head -1 | cut -d: -f2)" \
       "peak $(grep 'Maximum resident' "budgetruns/$b.time" | awk '{print $NF}') kB" \
       "wall $(grep 'Elapsed' "budgetruns/$b.time" | awk '{print $NF}') user $(grep 'User time' "budgetruns/$b.time" | awk '{print $NF}') s"
done

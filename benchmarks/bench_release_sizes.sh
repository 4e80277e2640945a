#!/bin/sh
# Release bundles of synthetic boroughs of several sizes (docs/performance.md, "How small a borough a release can
# describe"): for each size, a folder <work>/b<size> with a copy of CONF (its approval.approvers holding KEY's
# public key), then synth, features, train, audit, approve --version 1 and release --borough b<size>.
#   sh benchmarks/bench_release_sizes.sh WORK CONF KEY 5000 10000 40000
# With REFERRAL=1 the label is a children's social care referral within 12 months instead of the config's.
# Then: python benchmarks/release_withheld.py WORK/b*/reports/release/*/release.json
set -e
work=$1; conf=$2; key=$3; shift 3
for n in "$@"; do
  d=$work/b$n
  rm -rf "$d"; mkdir -p "$d"
  cp -r "$(dirname "$conf")" "$d/conf"
  cd "$d"
  sed -i "s/^  residents: [0-9]*/  residents: $n/; s#^  dir: [^ ]*#  dir: data/b$n#" conf/$(basename "$conf")
  if [ -n "$REFERRAL" ]; then
    sed -i "s/^  name: cpp_within_6m/  name: referral_within_12m/; s/^  outcome_types: \[child_protection_plan\]/  outcome_types: [csc_referral]/; s/^  horizon_months: 6 /  horizon_months: 12 /" conf/$(basename "$conf")
  fi
  c=conf/$(basename "$conf")
  echo "== $n $(date -u +%H:%M:%S) $(uptime)"
  earlysignal synth --config "$c" --out data/b$n > synth.log 2>&1
  earlysignal features --config "$c" > features.log 2>&1
  earlysignal train --config "$c" > train.log 2>&1
  earlysignal audit --config "$c" > audit.log 2>&1
  earlysignal approve --config "$c" --version 1 --key "$key" --report reports/audit/earlysignal-cpp-v1/audit.html > approve.log 2>&1
  earlysignal release --config "$c" --borough b$n --model models:/earlysignal-cpp/1 > release.log 2>&1
  tail -4 release.log
done

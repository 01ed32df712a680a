#!/usr/bin/env bash
# Every bench, PostgreSQL included, on a durable throwaway server (fsync on: every commit is
# flushed), RUNS times (default 3). Each run's figures go to target/bench-runs/run-N.json; the
# tables BENCHMARKS.md quotes — each figure as the range over the runs — are printed at the end
# (python3 scripts/bench_report.py --ranges target/bench-runs).
#   bash scripts/bench-all.sh [RUNS] [extra criterion filter]
# BENCHES (default "issuance read_side") narrows a run to some bench files.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
filter=${2:-}

# shellcheck source=scripts/pg-throwaway.sh
source scripts/pg-throwaway.sh
unset PASSKEY_LINKS_DATABASE_URL
PASSKEY_LINKS_PG_DURABLE=1 pg_start

out=target/bench-runs
rm -rf "$out" && mkdir -p "$out"
cargo bench --all-features --no-run -q
for run in $(seq 1 "$runs"); do
  echo "== run $run of $runs"
  rm -rf target/criterion
  : > "$out/run-$run.log"
  for bench in ${BENCHES:-issuance read_side}; do
    cargo bench --all-features --bench "$bench" -- $filter 2>&1 | tee -a "$out/run-$run.log" \
      | grep -E "^[a-z_]+/|time:|pg_interleaved|pg_crowded|cold_start/" || true
  done
  python3 scripts/bench_report.py --json "$out/run-$run.log" > "$out/run-$run.json"
done
python3 scripts/bench_report.py --ranges "$out"

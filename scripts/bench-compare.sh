#!/usr/bin/env bash
# Before/after: every bench of this checkout and of an earlier commit, interleaved (new, old,
# new, old, …) on one durable throwaway server (fsync on), RUNS rounds each (default 3). The
# earlier commit is checked out as a worktree under target/bench-base with its own target
# directory. Each round's figures go to target/bench-compare/{new,old}N.json; the table of
# ranges (before, after) is printed at the end.
#   bash scripts/bench-compare.sh REV [RUNS]
# BENCHES (default "issuance read_side") and BENCH_FILTER (a criterion filter, e.g.
# "pg_throughput|postgres/") narrow a run; BENCH_BASE names an existing checkout of REV to use.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench-compare.sh REV [RUNS]}
runs=${2:-3}
here=$(pwd)
base=${BENCH_BASE:-$here/target/bench-base}
if [ ! -d "$base" ]; then
  git worktree add --detach "$base" "$rev"
else
  git -C "$base" checkout --detach -q "$rev"
fi

# shellcheck source=scripts/pg-throwaway.sh
source scripts/pg-throwaway.sh
unset PASSKEY_LINKS_DATABASE_URL
PASSKEY_LINKS_PG_DURABLE=1 pg_start

out=$here/target/bench-compare
rm -rf "$out" && mkdir -p "$out"
cargo bench --all-features --no-run -q
(cd "$base" && CARGO_TARGET_DIR=$base/target cargo bench --all-features --no-run -q)
for n in $(seq 1 "$runs"); do
  for side in new old; do
    if [ "$side" = new ]; then dir=$here; target=$here/target; else dir=$base; target=$base/target; fi
    echo "== $side, round $n of $runs ($(date +%T))"
    rm -rf "$target/criterion"
    for bench in ${BENCHES:-issuance read_side}; do
      (cd "$dir" && CARGO_TARGET_DIR=$target cargo bench --all-features --bench "$bench" -- ${BENCH_FILTER:+"$BENCH_FILTER"} >> "$out/$side$n.log" 2>&1)
    done
    CRITERION_DIR=$target/criterion python3 scripts/bench_report.py --json "$out/$side$n.log" > "$out/$side$n.json"
  done
done
python3 scripts/bench_report.py --compare "$out"

#!/usr/bin/env bash
# The whole test suite: every test of every feature, the PostgreSQL-backed ones against a
# throwaway server this script starts (and stops) itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/pg-throwaway.sh
source scripts/pg-throwaway.sh
pg_start

# Library, integration tests, examples (built) and doc tests; benches are compiled by CI with
# `cargo bench --no-run` and run with `cargo bench` (their setup is too heavy for debug builds).
cargo test --all-features --lib --tests --examples
cargo test --all-features --doc

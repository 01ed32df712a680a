#!/usr/bin/env bash
# The whole test suite: every test of every feature, the PostgreSQL-backed ones against a
# throwaway server this script starts (and stops) itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/pg-throwaway.sh
source scripts/pg-throwaway.sh
pg_start

cargo test --all-features --all-targets
cargo test --all-features --doc

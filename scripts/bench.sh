#!/usr/bin/env bash
# Reproduces the run recorded in docs/BENCHMARKS.md: a release build, the
# machine's description, then `dashctl bench compare` (which starts and stops
# its own PostgreSQL node and `dashctl serve`). Extra arguments are passed on,
# e.g. `scripts/bench.sh --json` or `scripts/bench.sh --in-process`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p dash-cli
echo "nproc: $(nproc)"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Hypervisor vendor):' || true
exec ./target/release/dashctl bench compare \
    --concurrency "${CONCURRENCY:-32}" --duration "${DURATION:-10s}" "$@"

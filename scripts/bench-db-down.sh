#!/usr/bin/env bash
# How fast the API answers while its database is down: `dashctl serve`
# against a port nothing listens on (every host refused), then N calls,
# C at a time, each timed by curl. Prints p50/p99/max and the statuses.
#
#   scripts/bench-db-down.sh [N] [C]        (default 2000, 32)
#
# Loopback only; the server is stopped by its PID on exit.
set -euo pipefail
N=${1:-2000}; C=${2:-32}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/dashctl
[ -x "$BIN" ] || { echo "build it first: cargo build --release -p dash-cli" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API=$(free_port); MET=$(free_port); DEAD=$(free_port)
WORK=$(mktemp -d /tmp/dash-down.XXXXXX)
DASH_HOME=$WORK DASH_BIND=127.0.0.1 DASH_API_PORT=$API METRICS_PORT=$MET DASH_LOG=error \
    DATABASE_URL="postgresql://dash_user:x@127.0.0.1:$DEAD/dash" "$BIN" serve > "$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill -TERM $SERVE 2>/dev/null; wait $SERVE 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$API/livez" >/dev/null && break; sleep 0.1; done
seq 1 "$N" | xargs -P "$C" -I{} curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
    "http://127.0.0.1:$API/api/v1/swarms" > "$WORK/times"
echo "statuses: $(cut -d' ' -f1 "$WORK/times" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
cut -d' ' -f2 "$WORK/times" | sort -n | awk '{a[NR]=$1} END {printf "%d calls, %d at a time: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", NR, '"$C"', a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000, a[NR]*1000}'

#!/usr/bin/env bash
# Instructions per request of `dashctl serve` (valgrind's callgrind), the
# figure docs/benchmarks/api-vs-pgbench.md records before and after each
# change: a private `dashctl up --no-backups` on free ports, `dashctl serve`
# against it under callgrind, `dashctl bench api` driving MIX (get or list)
# from outside; counters zeroed after a warm-up, dumped after N1 and after
# N2 more requests, and the difference divided by N2 - N1 (so the
# unmeasured seeding of each run cancels out). Every process started here is
# stopped by its PID; the temp home is removed.
#
#   cargo build --release -p dash-cli   (CARGO_PROFILE_RELEASE_DEBUG=line-tables-only for function names)
#   scripts/profile-serve.sh get 5000 10000
#   scripts/profile-serve.sh list 1000 2000
set -euo pipefail
MIX=${1:-get}; N1=${2:-5000}; N2=${3:-10000}
B=${DASHCTL:-target/release/dashctl}
B=$(realpath "$B")
HOME_DIR=$(mktemp -d /tmp/dash-profile-XXXXXX); chmod 755 "$HOME_DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API=$(free_port); MET=$(free_port); PG=$(free_port); NODE=$(free_port); ETCD=$(free_port)
UP= ; SERVE=
cleanup() {
    [ -n "$SERVE" ] && kill -INT "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null || true
    [ -n "$UP" ] && kill -INT "$UP" 2>/dev/null && wait "$UP" 2>/dev/null || true
    rm -rf "$HOME_DIR"
}
trap cleanup EXIT
DASH_HOME=$HOME_DIR DASH_API_PORT=$(free_port) METRICS_PORT=$(free_port) DASH_LOG=warn \
    "$B" up --no-backups --pg-port "$PG" --node-port "$NODE" --etcd-port "$ETCD" > "$HOME_DIR/up.log" 2>&1 &
UP=$!
for _ in $(seq 1 180); do grep -qs "Press Ctrl-C" "$HOME_DIR/up.log" && break; sleep 1; done
PW=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['password'])" "$HOME_DIR/cluster.json")
DATABASE_URL="postgresql://dash_user:$PW@127.0.0.1:$PG,127.0.0.1:$((PG+1))/dash" DASH_API_TOKENS=profile \
    DASH_API_PORT=$API METRICS_PORT=$MET DASH_SPAWN_RATE=0 DASH_LOG=warn DATABASE_POOL_SIZE=8 \
    valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
    --callgrind-out-file="$HOME_DIR/cg.%p" "$B" serve > "$HOME_DIR/serve.log" 2>&1 &
SERVE=$!
for _ in $(seq 1 120); do curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$API/ready" | grep -q 200 && break; sleep 1; done
drive() { "$B" bench api --url "http://127.0.0.1:$API" --token profile --mix "$MIX" --concurrency 4 --requests "$1" --duration 600s; }
drive 500 > /dev/null
callgrind_control -z "$SERVE" > /dev/null 2>&1; drive "$N1" | grep -E "^(get|list)"; callgrind_control -d "$SERVE" > /dev/null 2>&1
callgrind_control -z "$SERVE" > /dev/null 2>&1; drive "$N2" | grep -E "^(get|list)"; callgrind_control -d "$SERVE" > /dev/null 2>&1
python3 "$(dirname "$0")/callgrind-per-request.py" "$HOME_DIR/cg.$SERVE.1" "$HOME_DIR/cg.$SERVE.2" $((N2 - N1)) 25

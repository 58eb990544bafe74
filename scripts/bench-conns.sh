#!/usr/bin/env bash
# Idle event streams and slow connections against a Dash API, on loopback:
#   scripts/bench-conns.sh DASHCTL streams [N]   # N idle streams (default 10000)
#   scripts/bench-conns.sh DASHCTL slow [N]      # N slow connections (default 2000), API under a 1,024-descriptor limit
#   scripts/bench-conns.sh DASHCTL slow-once [N] # the same, each slow client connecting only once
# Starts a private PostgreSQL 15 (trust auth, 127.0.0.1 only) and DASHCTL serve
# against it, runs scripts/bench_conns.py, and stops both by PID. Run as root
# (PostgreSQL runs as the postgres user).
set -euo pipefail
DASHCTL=$(realpath "$1"); MODE=$2; N=${3:-}
HERE=$(dirname "$(realpath "$0")")
BIN=/usr/lib/postgresql/15/bin
PGPORT=55433; API=55480; MET=55490; TOKEN=bench-token
DIR=$(mktemp -d /tmp/dash-bench-conns.XXXXXX); chown postgres "$DIR"
API_PID=
cleanup() {
  [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null || true
  runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
runuser -u postgres -- "$BIN/initdb" -D "$DIR/data" -U dash_user --auth=trust >/dev/null
runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w start \
  -o "-p $PGPORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=100" >/dev/null
runuser -u postgres -- "$BIN/createdb" -h 127.0.0.1 -p $PGPORT -U dash_user dash
export DATABASE_URL="postgres://dash_user@127.0.0.1:$PGPORT/dash" DASH_BIND=127.0.0.1 \
  DASH_API_PORT=$API METRICS_PORT=$MET DASH_API_TOKENS=$TOKEN DASH_LOG=warn,dash_api=info
LIMIT=()
case "$MODE" in slow|slow-once) LIMIT=(prlimit --nofile=1024:1024) ;; esac
"${LIMIT[@]}" "$DASHCTL" serve >"$DIR/api.log" 2>&1 &
API_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$API/ready" >/dev/null && break; sleep 0.2; done
echo "API pid $API_PID, descriptors: $(grep 'open files' /proc/$API_PID/limits)"
case "$MODE" in
  streams) python3 "$HERE/bench_conns.py" streams --url "http://127.0.0.1:$API" \
             --metrics-url "http://127.0.0.1:$MET/metrics" --token $TOKEN --pid "$API_PID" --streams "${N:-10000}" ;;
  slow) python3 "$HERE/bench_conns.py" slow --url "http://127.0.0.1:$API" --conns "${N:-2000}" ;;
  slow-once) python3 "$HERE/bench_conns.py" slow --no-reconnect --url "http://127.0.0.1:$API" --conns "${N:-2000}" ;;
  *) echo "mode: streams, slow or slow-once" >&2; exit 2 ;;
esac
echo "API log: $(grep -c "Too many open files" "$DIR/api.log" || true) lines with \"Too many open files\"; $(grep -m1 "connection limits" "$DIR/api.log" || true)"

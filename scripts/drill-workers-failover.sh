#!/usr/bin/env bash
# Worker load through primary failovers, on `dashctl up`'s platform: each
# round spawns agents for two workers (demo runtime), kills the primary's
# PostgreSQL (kill -9 of its postmaster, by PID) mid-run, waits until every
# agent of the round has completed, and counts each agent's agent.completed
# events (exactly one each) and the attempts that were fenced out.
#
#   scripts/drill-workers-failover.sh [ROUNDS] [AGENTS]     (default 5, 8)
#
# Uses target/release/dashctl, a private DASH_HOME under a temp directory,
# and ports from DASH_API_PORT/METRICS_PORT (default 3201/9201); stops
# everything it started, by PID, on exit.
set -euo pipefail
ROUNDS=${1:-5}
AGENTS=${2:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/dashctl
[ -x "$BIN" ] || { echo "build it first: cargo build --release -p dash-cli" >&2; exit 2; }
WORK=$(mktemp -d /tmp/dash-drill.XXXXXX); chmod 755 "$WORK"
export DASH_HOME=$WORK/home DASH_API_PORT=${DASH_API_PORT:-3201} METRICS_PORT=${METRICS_PORT:-9201} DASH_LOG=warn
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" up > "$WORK/up.log" 2>&1 & pids+=($!)
for _ in $(seq 1 180); do grep -q "Press Ctrl-C" "$WORK/up.log" && break; sleep 1; done
grep -q "Press Ctrl-C" "$WORK/up.log" || { cat "$WORK/up.log"; exit 1; }
W=(--runtime demo --demo-steps 10 --demo-step 300ms --demo-cost 0.01 --slots 4)
"$BIN" worker "${W[@]}" --name wa > "$WORK/wa.log" 2>&1 & pids+=($!)
"$BIN" worker "${W[@]}" --name wb > "$WORK/wb.log" 2>&1 & pids+=($!)
leader() {
    for port in $(jq -r '.nodes[].node_port' "$DASH_HOME/cluster.json"); do
        curl -s --max-time 1 "http://127.0.0.1:$port/status" | jq -r 'select(.holds_key == true) | .name'
    done | head -1
}
total=0; once=0; fenced=0
printf 'round  leader  killed-at        agents  completed-once  fenced  took\n'
for r in $(seq 1 "$ROUNDS"); do
    swarm=$("$BIN" swarm create --name "round-$r" --max-agents "$AGENTS" --json | jq -r .id)
    ids=$(for _ in $(seq 1 "$AGENTS"); do "$BIN" agent spawn --swarm "$swarm" --task "drill round $r" --json | jq -r .id; done)
    sleep 1.5
    L=$(leader)
    kill -KILL "$(head -1 "$DASH_HOME/$L/postmaster.pid")"
    at=$(date +%T.%N | cut -c1-12); t0=$(date +%s.%N)
    for _ in $(seq 1 120); do
        left=$("$BIN" agent list --swarm "$swarm" --json 2>/dev/null | jq '[.[] | select(.status != "completed")] | length' || echo x)
        [ "$left" = 0 ] && break; sleep 1
    done
    took=$(echo "$(date +%s.%N) - $t0" | bc)
    ok=0; f=0
    for id in $ids; do
        ev=$("$BIN" agent logs "$id" --json)
        [ "$(echo "$ev" | jq -s '[.[] | select(.kind == "agent.completed")] | length')" = 1 ] && ok=$((ok+1))
        f=$((f + $(echo "$ev" | jq -s '[.[] | select(.kind == "agent.fenced")] | length')))
    done
    total=$((total+AGENTS)); once=$((once+ok)); fenced=$((fenced+f))
    printf '%5s  %-6s  %s  %6s  %14s  %6s  %.1fs\n' "$r" "$L" "$at" "$AGENTS" "$ok" "$f" "$took"
    # The old primary rejoins as a replica before the next round.
    sleep 3
done
echo "agents $total, completed exactly once $once, lost or doubled $((total-once)), fenced attempts $fenced"
[ "$once" = "$total" ]

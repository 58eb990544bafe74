#!/usr/bin/env bash
# Agents that run, as a user runs them: `dashctl up`, two workers (demo
# runtime), a swarm with room and one with a small budget, agents spawned,
# `agent logs --follow`, a worker killed (kill -9) and then the primary's
# postmaster killed mid-run; then each agent's completions, the small
# swarm's budget, the fenced attempts and the incident timeline.
#
#   scripts/walkthrough-agents.sh        (after cargo build --release -p dash-cli)
#
# A private DASH_HOME in a temp dir; ports from DASH_API_PORT/METRICS_PORT
# (default 3101/9101); everything it started is stopped by PID on exit.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/dashctl
[ -x "$BIN" ] || { echo "build it first: cargo build --release -p dash-cli" >&2; exit 2; }
D=$(mktemp -d /tmp/dash-agents.XXXXXX); chmod 755 "$D"
export DASH_HOME=$D/home DASH_API_PORT=${DASH_API_PORT:-3101} METRICS_PORT=${METRICS_PORT:-9101} DASH_LOG=warn
mkdir -p "$DASH_HOME"; chmod 755 "$DASH_HOME"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done; sleep 8; for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$D"; }
trap cleanup EXIT
$BIN up > $D/up.log 2>&1 & UP=$!; pids+=($UP)
for i in $(seq 1 180); do grep -q "Press Ctrl-C" $D/up.log && break; sleep 1; done
grep -q "Press Ctrl-C" $D/up.log || { echo "not up"; cat $D/up.log; exit 1; }
echo "== up"; grep -E "API |node[0-9]" $D/up.log
W="--runtime demo --demo-steps 10 --demo-step 300ms --demo-cost 0.05 --slots 3"
$BIN worker $W --name w1 > $D/w1.log 2>&1 & W1=$!; pids+=($W1)
$BIN worker $W --name w2 > $D/w2.log 2>&1 & W2=$!; pids+=($W2)
sleep 2
A=$($BIN swarm create --name roomy --budget 100 --max-agents 20 --json | jq -r .id)
B=$($BIN swarm create --name small --budget 0.50 --max-agents 20 --json | jq -r .id)
echo "== swarms roomy=$A small=$B"
for i in $(seq 1 8); do $BIN agent spawn --swarm "$A" --task "roomy task $i: \$(reboot); rm -rf /" --json | jq -r .id; done > $D/roomy.ids
for i in $(seq 1 4); do $BIN agent spawn --swarm "$B" --task "small task $i" --json | jq -r .id; done > $D/small.ids
FIRST=$(head -1 $D/roomy.ids)
$BIN agent logs "$FIRST" --follow > $D/follow.out 2>&1 & FOLLOW=$!
sleep 1.5
echo "== kill -9 worker w1 (pid $W1) at $(date +%T.%N)"; kill -KILL $W1
$BIN worker $W --name w3 > $D/w3.log 2>&1 & W3=$!; pids+=($W3)
sleep 1.5
LEADER=""
for port in $(jq -r '.nodes[].node_port' "$DASH_HOME/cluster.json"); do
  st=$(curl -s --max-time 1 "http://127.0.0.1:$port/status")
  [ "$(echo "$st" | jq -r .holds_key)" = true ] && LEADER=$(echo "$st" | jq -r .name)
done
echo "== leader $LEADER"
PM=$(head -1 "$DASH_HOME/$LEADER/postmaster.pid")
echo "== kill -9 the primary's postmaster (pid $PM) at $(date +%T.%N)"; kill -KILL "$PM"
for i in $(seq 1 120); do
  left=$($BIN agent list --swarm "$A" --json | jq '[.[] | select(.status != "completed")] | length')
  [ "$left" = 0 ] && break; sleep 1
done
echo "== roomy agents not completed: $left after ${i}s"
wait $FOLLOW; echo "== logs --follow exit $?"; head -5 $D/follow.out; echo ...; tail -3 $D/follow.out
echo "== completions per roomy agent (events agent.completed)"
for id in $(cat $D/roomy.ids); do
  n=$($BIN agent logs "$id" --json | jq -s '[.[] | select(.kind == "agent.completed")] | length')
  a=$($BIN agent show "$id" --json | jq -r '"\(.status) retry_count=\(.retry_count)"'); echo "$id completed-events=$n $a"
done
echo "== small swarm"; $BIN swarm show "$B"
$BIN agent list --swarm "$B"
echo "== fenced (stale) events"; for id in $(cat $D/roomy.ids $D/small.ids); do $BIN agent logs "$id" --json | jq -c 'select(.kind == "agent.fenced") | .data'; done
echo "== incidents"; $BIN db incidents --since 10m | head -20

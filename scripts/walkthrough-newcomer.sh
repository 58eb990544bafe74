#!/usr/bin/env bash
# The newcomer's path, end to end, as the README and the runbook tell it:
# `dashctl up`, eval "$(dashctl env)", the runbook's SQL lines, a backup,
# verify-backup as an application user without CREATEDB, a guarded
# restore, add-replica, status, the incident timeline and the dashboard.
#
#   scripts/walkthrough-newcomer.sh      (after cargo build --release -p dash-cli)
#
# A private DASH_HOME in a temp dir; ports from DASH_API_PORT/METRICS_PORT
# (default 3102/9102); `dashctl up` is stopped (Ctrl-C, by PID) on exit.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$ROOT/target/release/dashctl" ] || { echo "build it first: cargo build --release -p dash-cli" >&2; exit 2; }
D=$(mktemp -d /tmp/dash-newcomer.XXXXXX); chmod 755 "$D"
export PATH=$ROOT/target/release:$PATH
export DASH_HOME=$D/home DASH_API_PORT=${DASH_API_PORT:-3102} METRICS_PORT=${METRICS_PORT:-9102} DASH_LOG=warn
mkdir -p "$DASH_HOME"; chmod 755 "$DASH_HOME"
dashctl up > $D/up.log 2>&1 & UP=$!
trap 'kill -INT $UP; wait $UP; rm -rf "$D"' EXIT
for i in $(seq 1 180); do grep -q "Press Ctrl-C" $D/up.log && break; sleep 1; done
echo '$ dashctl up'; cat $D/up.log
echo; echo '$ eval "$(dashctl env)"'; dashctl env; eval "$(dashctl env)"
echo; echo '$ pg_isready'; pg_isready
echo; echo '$ psql -U dash_user -d dash -c "SELECT count(*), state FROM pg_stat_activity GROUP BY state;"'
psql -U dash_user -d dash -c "SELECT count(*), state FROM pg_stat_activity GROUP BY state;"
echo '$ psql -c "SELECT application_name, state, sync_state FROM pg_stat_replication;"'
psql -c "SELECT application_name, state, sync_state FROM pg_stat_replication;"
dashctl swarm create --name demo --budget 5 > /dev/null
echo; echo '$ dashctl db backup'; dashctl db backup
echo; echo '# an application user, as in most deployments, cannot create databases:'
psql -qc "CREATE ROLE app_user LOGIN PASSWORD 'app-pw' NOCREATEDB; GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_user; GRANT USAGE ON SCHEMA dash_control TO app_user; GRANT SELECT ON ALL TABLES IN SCHEMA dash_control TO app_user;"
echo '$ DATABASE_URL=postgresql://app_user:***@$PGHOST:$PGPORT/dash dashctl db verify-backup'
DATABASE_URL="postgresql://app_user:app-pw@$PGHOST:$PGPORT/dash" dashctl db verify-backup; echo "exit $?"
echo; echo '$ dashctl db restore --stop-writes --yes'; dashctl db restore --stop-writes --yes; echo "exit $?"
echo; echo '$ dashctl db add-replica'; dashctl db add-replica; echo "exit $?"
echo; echo '$ dashctl db status'; dashctl db status | head -30
echo; echo '$ dashctl db incidents --since 1h'; dashctl db incidents --since 1h | head -30
echo; echo '$ curl -s localhost:$DASH_API_PORT/api/v1/dashboard | jq .cluster.incident.title'; curl -s "localhost:$DASH_API_PORT/api/v1/dashboard" | jq '.cluster | {leader, nodes: [.nodes[] | {name, role, lag_bytes}], incident: .incident.title}'

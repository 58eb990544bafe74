# Shared by node-init.sh and node-start.sh (sourced, not run).
#
# Both PostgreSQL StatefulSets run the same scripts; only their environment
# differs:
#
#   PGDATA                         the data directory, a subdirectory of the volume
#   NODE_NAME                      this node's application_name and replication slot name
#                                  (postgres_0 | postgres_replica_0)
#   NODE_ROLE                      what this StatefulSet is when nothing exists yet:
#                                  primary (may initdb a new cluster) | replica (only ever clones)
#   PEER_HOST, PEER_PORT           the other node's Service (postgres-replica | postgres), 5432
#   REPLICATION_USER               the role created by initdb-replication.sh (replicator)
#   POSTGRES_REPLICATION_PASSWORD  its password (Secret dash-secrets)
#
# Every call to the peer runs under `timeout`: a frozen server accepts TCP and
# then hangs the handshake, and libpq's connect_timeout does not cover that.

set -euo pipefail

: "${PGDATA:?PGDATA is not set}" "${NODE_NAME:?NODE_NAME is not set}"
: "${NODE_ROLE:?NODE_ROLE is not set}" "${PEER_HOST:?PEER_HOST is not set}"
PEER_PORT="${PEER_PORT:-5432}"
REPLICATION_USER="${REPLICATION_USER:-replicator}"
# For the walreceiver, pg_basebackup and pg_rewind. Outside the data
# directory (pg_basebackup and pg_rewind copy that), rewritten from the Secret
# at every start; a file because the image's entrypoint unsets POSTGRES_*
# before it execs the server. /var/lib/postgresql is the postgres user's home.
PASSFILE="${PASSFILE:-/var/lib/postgresql/.pgpass}"
PEER_TIMEOUT="${PEER_TIMEOUT:-10}"

log() {
    printf '%s %s[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(basename "$0")" "$NODE_NAME" "$*" >&2
}

# ~/.pgpass format: backslash and colon are escaped with a backslash.
write_passfile() {
    local pw
    pw="$(printf '%s' "${POSTGRES_REPLICATION_PASSWORD:?POSTGRES_REPLICATION_PASSWORD is not set}" | sed 's/[\\:]/\\&/g')"
    (
        umask 077
        printf '*:*:*:%s:%s\n' "$REPLICATION_USER" "$pw" >"$PASSFILE.tmp"
    )
    mv -f "$PASSFILE.tmp" "$PASSFILE"
}

# The libpq connection string to the peer, without dbname / replication.
peer_conninfo() {
    printf 'host=%s port=%s user=%s passfile=%s application_name=%s connect_timeout=3' \
        "$PEER_HOST" "$PEER_PORT" "$REPLICATION_USER" "$PASSFILE" "$NODE_NAME"
}

# One SQL statement on the peer; prints the unaligned result.
peer_sql() {
    timeout "$PEER_TIMEOUT" psql "$(peer_conninfo) dbname=postgres" -XAtq -v ON_ERROR_STOP=1 -c "$1"
}

# primary | standby | unreachable
peer_role() {
    local r
    r="$(peer_sql 'SELECT pg_is_in_recovery()' 2>/dev/null || true)"
    case "$r" in
        f) echo primary ;;
        t) echo standby ;;
        *) echo unreachable ;;
    esac
}

# "systemid|timeline|xlogpos|dbname" of the peer (replication protocol).
peer_identify() {
    timeout "$PEER_TIMEOUT" psql "$(peer_conninfo) replication=true" -XAtq -c IDENTIFY_SYSTEM
}

controldata() {
    LC_ALL=C pg_controldata "$PGDATA" | sed -n "s/^$1: *//p"
}

own_sysid() { controldata 'Database system identifier'; }
own_timeline() { controldata "Latest checkpoint's TimeLineID"; }

# Keeps WAL for this node on the peer from now on (created before a rewind,
# so the WAL the rewound node must replay cannot be recycled meanwhile).
ensure_slot_on_peer() {
    peer_sql "SELECT pg_create_physical_replication_slot('$NODE_NAME', true)
              WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$NODE_NAME')" >/dev/null
}

# A slot left by an earlier incarnation of this node would make
# `pg_basebackup -C` fail; an active one is not ours to drop.
drop_stale_slot_on_peer() {
    peer_sql "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
              WHERE slot_name = '$NODE_NAME' AND NOT active" >/dev/null
}

# Makes the data directory $1 a standby of the peer. Appended settings win
# over earlier lines of postgresql.auto.conf (which pg_basebackup and
# pg_rewind copy from the peer). synchronous_standby_names is cleared: a
# clone inherits the primary's, and once promoted it would block every write
# waiting for a standby that is not there (set it again by hand with
# ALTER SYSTEM once a new standby streams from it).
configure_standby() {
    local dir="$1"
    cat >>"$dir/postgresql.auto.conf" <<EOF
# Written by $(basename "$0") on $(date -u +%Y-%m-%dT%H:%M:%SZ): $NODE_NAME is a standby of $PEER_HOST.
primary_conninfo = '$(peer_conninfo) keepalives_idle=5 keepalives_interval=1 keepalives_count=3'
primary_slot_name = '$NODE_NAME'
synchronous_standby_names = ''
EOF
    touch "$dir/standby.signal"
}

#!/bin/bash
# Main container command of both PostgreSQL StatefulSets. Runs at every
# container start (init containers do not run again when a container
# restarts) and then execs the image's entrypoint with the arguments given
# (the `-c name=value` server settings).
#
# It fences this node: a node that was a primary when it stopped must not
# come back as a second primary once its peer has been promoted (runbook
# scenario 3, `pg_ctl promote`). Then it rewinds itself onto the peer with
# pg_rewind and starts as the peer's standby, or, when that is not possible,
# refuses to start (the pod crash-loops, visibly, and never takes a write).
. "$(dirname "$0")/node-lib.sh"

ENTRYPOINT="${POSTGRES_ENTRYPOINT:-docker-entrypoint.sh}"

start() {
    exec "$ENTRYPOINT" postgres "$@"
}

write_passfile

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ "$NODE_ROLE" != primary ]; then
        log "no data directory at $PGDATA: the clone init container did not make one; refusing to create a new cluster on a replica"
        exit 1
    fi
    log "no data directory: first start, the entrypoint runs initdb"
    start "$@"
fi

role="$(peer_role)"

if [ -f "$PGDATA/standby.signal" ]; then
    if [ "$role" = primary ]; then
        peer_sysid="$(peer_identify | cut -d'|' -f1 || true)"
        if [ -n "$peer_sysid" ] && [ "$peer_sysid" != "$(own_sysid)" ]; then
            log "refusing to start: this standby belongs to another cluster (system id $(own_sysid)) than the primary $PEER_HOST ($peer_sysid)." \
                "Re-clone it: kubectl delete pvc postgres-storage-${HOSTNAME} and delete this pod (see deploy/README.md)"
            exit 1
        fi
        ensure_slot_on_peer || log "could not create slot $NODE_NAME on $PEER_HOST (continuing)"
    fi
    log "starting as a standby of $PEER_HOST ($PEER_HOST is $role)"
    start "$@"
fi

# This node was a primary when it stopped.
if [ "$role" != primary ]; then
    log "starting as the primary ($PEER_HOST is $role)"
    start "$@"
fi

ident="$(peer_identify || true)"
peer_sysid="$(printf '%s' "$ident" | cut -d'|' -f1)"
peer_tli="$(printf '%s' "$ident" | cut -d'|' -f2)"
my_sysid="$(own_sysid)"
my_tli="$(own_timeline)"
log "FENCE: $PEER_HOST is a writable primary (timeline ${peer_tli:-?}) and this node was a primary (timeline $my_tli)"

if [ -z "$peer_sysid" ] || [ "$peer_sysid" != "$my_sysid" ]; then
    log "refusing to start: cannot tell whether $PEER_HOST (system id ${peer_sysid:-?}) and this node (system id $my_sysid) are one cluster." \
        "Keep one primary: delete the other node's PVC so it clones again (see deploy/README.md)"
    exit 1
fi
for tli in "$peer_tli" "$my_tli"; do
    case "$tli" in
        '' | *[!0-9]*)
            log "refusing to start: cannot read both timelines ($PEER_HOST: '${peer_tli}', this node: '${my_tli}')"
            exit 1
            ;;
    esac
done
if [ "$peer_tli" -le "$my_tli" ]; then
    log "refusing to start: split brain, both nodes are primaries and $PEER_HOST is not on a newer timeline." \
        "Decide which node keeps the data and re-clone the other (see deploy/README.md)"
    exit 1
fi

log "$PEER_HOST was promoted after this node stopped: rewinding onto it (pg_rewind) to rejoin as its standby"
ensure_slot_on_peer
# A just-promoted peer shows its new timeline in pg_control only after a
# checkpoint; without one pg_rewind answers "no rewind required" and this node
# cannot follow the new timeline.
peer_sql CHECKPOINT >/dev/null
if ! timeout 1h pg_rewind --target-pgdata="$PGDATA" --source-server="$(peer_conninfo) dbname=postgres" \
    --write-recovery-conf --progress; then
    log "refusing to start: pg_rewind failed. Re-clone this node: kubectl delete pvc postgres-storage-${HOSTNAME}" \
        "and delete this pod (see deploy/README.md)"
    exit 1
fi
configure_standby "$PGDATA"
log "rewound: starting as a standby of $PEER_HOST"
start "$@"

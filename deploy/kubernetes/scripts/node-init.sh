#!/bin/bash
# Init container of both PostgreSQL StatefulSets: when the data directory is
# empty, clone it from the peer if the peer is a writable primary
# (pg_basebackup -R -X stream -C -S $NODE_NAME). Otherwise a primary-role node
# leaves it empty (the image's entrypoint runs initdb) and a replica-role node
# waits for a primary to clone from. A data directory that exists is never
# touched here (node-start.sh decides how it may start).
. "$(dirname "$0")/node-lib.sh"

write_passfile

if [ -s "$PGDATA/PG_VERSION" ]; then
    log "data directory $PGDATA exists: nothing to clone"
    exit 0
fi

clone() {
    local tmp="$PGDATA.clone"
    rm -rf "$tmp"
    drop_stale_slot_on_peer
    log "cloning from $PEER_HOST:$PEER_PORT (pg_basebackup, slot $NODE_NAME)"
    if ! timeout 6h pg_basebackup --dbname="$(peer_conninfo)" --pgdata="$tmp" \
        --write-recovery-conf --wal-method=stream --create-slot --slot="$NODE_NAME" \
        --checkpoint=fast --no-password; then
        rm -rf "$tmp"
        return 1
    fi
    configure_standby "$tmp"
    # Only a complete clone becomes $PGDATA.
    rmdir "$PGDATA" 2>/dev/null || true
    mv "$tmp" "$PGDATA"
    chmod 0700 "$PGDATA"
    log "cloned: $NODE_NAME starts as a standby of $PEER_HOST"
}

waited=0
while true; do
    role="$(peer_role)"
    case "$role" in
        primary)
            clone && exit 0
            log "clone failed; retrying in 5s"
            ;;
        unreachable)
            if [ "$NODE_ROLE" = primary ]; then
                log "no data and nothing answers at $PEER_HOST: the entrypoint creates a new cluster (initdb)"
                exit 0
            fi
            if [ $((waited % 60)) -eq 0 ]; then
                log "waiting for a writable primary at $PEER_HOST to clone from (nothing answers there yet)"
            fi
            ;;
        standby)
            # The peer holds this cluster's data (it is a standby of the
            # primary whose volume is gone). A new empty cluster here would
            # take the writes while the data sits on the peer, and the peer
            # could never stream from it. Promote the peer instead (runbook
            # scenario 3: this node then clones from it), or, to start over
            # from a backup (scenario 2), delete the peer's StatefulSet and PVC.
            if [ $((waited % 60)) -eq 0 ]; then
                log "refusing to create a new cluster: $PEER_HOST is a standby holding this cluster's data." \
                    "Promote it (kubectl exec ${PEER_HOST}-0 -n dash -- pg_ctl promote) and this node clones from it," \
                    "or delete statefulset/$PEER_HOST and pvc/postgres-storage-${PEER_HOST}-0 (-n dash) to start a new cluster (see deploy/README.md)"
            fi
            ;;
    esac
    sleep 5
    waited=$((waited + 5))
done

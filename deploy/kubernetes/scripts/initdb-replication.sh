#!/bin/bash
# Run once by the postgres image's entrypoint (/docker-entrypoint-initdb.d),
# when postgres-0 creates a new cluster, on its temporary socket-only server.
#
# - role `replicator`: streaming replication (pg_basebackup, standbys) and
#   pg_rewind as its source (the four functions pg_rewind's documentation
#   lists, and pg_checkpoint);
# - pg_hba.conf: replication connections from the pod network, password
#   (SCRAM) required; pg_basebackup and pg_rewind copy this file to the peer;
# - synchronous_standby_names: commits wait for the replica. Set here with
#   ALTER SYSTEM, not with `-c` in the StatefulSet's args: with `-c` the
#   entrypoint's temporary server would wait for a standby while it runs
#   CREATE DATABASE (no standby can connect to it), and the setting could not
#   be changed at runtime. Clones clear it (node-lib.sh configure_standby), so
#   a promoted replica never waits for itself.
set -euo pipefail

# In database `postgres`: EXECUTE grants are per database, and pg_rewind and
# node-lib.sh connect there (the role and ALTER SYSTEM are cluster-wide).
psql -v ON_ERROR_STOP=1 -X --username "$POSTGRES_USER" --dbname postgres \
    --set=repl_password="${POSTGRES_REPLICATION_PASSWORD:?POSTGRES_REPLICATION_PASSWORD is not set}" <<'SQL'
CREATE ROLE replicator WITH LOGIN REPLICATION PASSWORD :'repl_password';
GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO replicator;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO replicator;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO replicator;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO replicator;
-- CHECKPOINT on a just-promoted source before pg_rewind (its control file
-- shows the new timeline only after one).
GRANT pg_checkpoint TO replicator;
ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (postgres_replica_0)';
SQL

cat >>"$PGDATA/pg_hba.conf" <<'EOF'
# Streaming replication and pg_rewind between postgres-0 and postgres-replica-0.
host replication replicator all scram-sha-256
EOF

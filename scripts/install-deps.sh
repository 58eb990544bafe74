#!/usr/bin/env bash
# Installs what Dash needs on this machine, each only when it is absent:
#
#   what                     package(s)                       why
#   PostgreSQL server        postgresql, postgresql-contrib   initdb, postgres, pg_basebackup, pg_rewind, ...
#   etcd, etcdctl            etcd-server, etcd-client         the DCS that holds leadership
#   protoc                   protobuf-compiler                the etcd-client crate generates its gRPC code
#                                                             at build time: needed BEFORE cargo builds
#   nft, ip                  nftables, iproute2               multi-host tests (network namespaces, partitions)
#   promtool                 prometheus                       alert rule tests (deploy/prometheus)
#   amtool                   prometheus-alertmanager          routing tests (deploy/alertmanager)
#   jq                       jq                               the coding-agent runtime deploy/runtimes/claude-code.sh
#   pgbackrest               pgbackrest                       WAL archiving, physical backups, point-in-time restores
#   chromium, chromedriver   chromium, chromium-driver        the dashboard's browser test (headless)
#
# Idempotent: when everything is present it installs nothing and skips
# `apt-get update`. Debian/Ubuntu (apt-get, as root or through sudo) only;
# elsewhere it says what to install. Used by `make deps` and `.ci/run`.
#
# Dash needs these packages' programs, not their services: Debian would start
# a system etcd (2379), Prometheus (9090, Dash's metrics port) and
# Alertmanager (9093) on install. While installing, a temporary
# /usr/sbin/policy-rc.d (when none exists) tells the package scripts not to
# start services; an existing one (as in Debian's container images) is left
# alone.
set -euo pipefail

# Whether command $1 exists, also in the sbin directories a non-root PATH lacks.
have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

have_pg_server() {
    if [ -n "${DASH_PG_BINDIR:-}" ] && [ -x "${DASH_PG_BINDIR}/postgres" ]; then
        return 0
    fi
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

have_etcd() {
    if [ -n "${DASH_ETCD_BIN:-}" ]; then
        [ -x "${DASH_ETCD_BIN}" ]
    else
        have etcd
    fi
}

have_protoc() {
    # prost-build (behind the etcd-client crate) honours $PROTOC, else PATH.
    if [ -n "${PROTOC:-}" ]; then
        [ -x "${PROTOC}" ]
    else
        have protoc
    fi
}

missing=()
have_pg_server || missing+=(postgresql postgresql-contrib)
have_etcd || missing+=(etcd-server)
have etcdctl || missing+=(etcd-client)
have jq || missing+=(jq)
have pgbackrest || missing+=(pgbackrest)
have_protoc || missing+=(protobuf-compiler)
have nft || missing+=(nftables)
have ip || missing+=(iproute2)
have promtool || missing+=(prometheus)
have amtool || missing+=(prometheus-alertmanager)
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    as_root=(none)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "Dash's dependencies are installed (PostgreSQL server, etcd, etcdctl, protoc, nft, ip, promtool, amtool, chromium, chromedriver)."
elif ! command -v apt-get >/dev/null 2>&1 || [ "${as_root[*]}" = none ]; then
    echo "Missing the packages: ${missing[*]}" >&2
    echo "Install them (Debian/Ubuntu: apt-get install ${missing[*]}), or point Dash at" >&2
    echo "existing binaries: DASH_PG_BINDIR (directory holding \`postgres\`), DASH_ETCD_BIN" >&2
    echo "(the etcd binary), PROTOC (the protoc binary); then retry." >&2
    exit 1
else
    echo "Installing with apt-get: ${missing[*]}"
    policy=/usr/sbin/policy-rc.d
    made_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# Dash install-deps.sh: no service starts while it installs\nexit 101\n' |
            "${as_root[@]}" tee "$policy" >/dev/null
        "${as_root[@]}" chmod 755 "$policy"
        made_policy=yes
    fi
    status=0
    "${as_root[@]}" apt-get update || status=$?
    if [ "$status" -eq 0 ]; then
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" || status=$?
    fi
    if [ "$made_policy" = yes ]; then
        "${as_root[@]}" rm -f "$policy"
    fi
    [ "$status" -eq 0 ] || exit "$status"
fi

# As root, Dash runs the server binaries as the unprivileged `postgres` user.
# The Debian package creates it; make sure it exists either way.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "Creating the unprivileged OS user postgres..."
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

#!/usr/bin/env bash
# Installs what Dash needs on this machine, each only when it is absent:
#
#   what                     package(s)                       why
#   PostgreSQL server        postgresql, postgresql-contrib   initdb, postgres, pg_basebackup, pg_rewind, ...
#   etcd, etcdctl            etcd-server, etcd-client         the DCS that holds leadership
#   protoc                   protobuf-compiler                the etcd-client crate generates its gRPC code
#                                                             at build time: needed BEFORE cargo builds
#   nft, ip                  nftables, iproute2               multi-host tests (network namespaces, partitions)
#
# Idempotent: when everything is present it installs nothing and skips
# `apt-get update`. Debian/Ubuntu (apt-get, as root or through sudo) only;
# elsewhere it says what to install. Used by `make deps` and `.ci/run`.
#
# Debian's etcd-server package starts a system etcd (127.0.0.1:2379/2380,
# data in /var/lib/etcd) on install where services may start: under systemd,
# or under sysvinit unless /usr/sbin/policy-rc.d forbids it, as in Debian's
# container images. That daemon is harmless here: Dash's tests run their etcd
# members on free ports of their own. `systemctl disable --now etcd` stops it.
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
have_protoc || missing+=(protobuf-compiler)
have nft || missing+=(nftables)
have ip || missing+=(iproute2)

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    as_root=(none)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "Dash's dependencies are installed (PostgreSQL server, etcd, etcdctl, protoc, nft, ip)."
elif ! command -v apt-get >/dev/null 2>&1 || [ "${as_root[*]}" = none ]; then
    echo "Missing the packages: ${missing[*]}" >&2
    echo "Install them (Debian/Ubuntu: apt-get install ${missing[*]}), or point Dash at" >&2
    echo "existing binaries: DASH_PG_BINDIR (directory holding \`postgres\`), DASH_ETCD_BIN" >&2
    echo "(the etcd binary), PROTOC (the protoc binary); then retry." >&2
    exit 1
else
    echo "Installing with apt-get: ${missing[*]}"
    "${as_root[@]}" apt-get update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

# As root, Dash runs the server binaries as the unprivileged `postgres` user.
# The Debian package creates it; make sure it exists either way.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "Creating the unprivileged OS user postgres..."
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

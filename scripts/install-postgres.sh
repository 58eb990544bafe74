#!/usr/bin/env bash
# Installs the PostgreSQL server binaries Dash runs (initdb, postgres,
# pg_basebackup, pg_rewind, ...) when they are absent. Idempotent: does nothing
# when a server is already installed. Debian/Ubuntu (apt-get) only; elsewhere
# it says what to install. Used by `make deps` and `.ci/run`.
set -euo pipefail

have_server() {
    if [ -n "${DASH_PG_BINDIR:-}" ] && [ -x "${DASH_PG_BINDIR}/postgres" ]; then
        return 0
    fi
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    as_root=(none)
fi

if have_server; then
    echo "PostgreSQL server binaries found: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tr '\n' ' ')${DASH_PG_BINDIR:-}"
elif ! command -v apt-get >/dev/null 2>&1 || [ "${as_root[*]}" = none ]; then
    echo "PostgreSQL server binaries not found. Install the PostgreSQL server package" >&2
    echo "(Debian/Ubuntu: apt-get install postgresql postgresql-contrib), or set" >&2
    echo "DASH_PG_BINDIR to the directory holding \`postgres\`, then retry." >&2
    exit 1
else
    echo "Installing PostgreSQL server packages with apt-get..."
    "${as_root[@]}" apt-get update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql postgresql-contrib
fi

# As root, Dash runs the server binaries as the unprivileged `postgres` user.
# The Debian package creates it; make sure it exists either way.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "Creating the unprivileged OS user postgres..."
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

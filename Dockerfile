# Dash: one image for the API (`dashctl serve`, the default), the backup CronJob
# (`dashctl db backup`), the operator CLI (`kubectl exec ... -- dashctl db status`),
# and the `dashctl` binary the database pods copy in to run `dashctl node`.
#
#   docker build -t dash:0.1.0 .
#
# Needs BuildKit (the default builder since Docker 23; `docker buildx build`)
# for the cargo cache mounts.
#
# Base images are pinned to exact versions, never to a moving tag (`1`,
# `bookworm-slim`, `latest`): the same Dockerfile builds on the same bases.
# A tag can still be re-pushed; at release pin the digest too. Resolve each
# tag (needs the registry):
#
#   docker buildx imagetools inspect rust:1.95.0-bookworm   # "Digest: sha256:..."
#
# and write `FROM rust:1.95.0-bookworm@sha256:<digest>` (keep the tag: it says
# what the digest is, and the digest wins). The same for every `image:` in
# deploy/kubernetes (deploy/README.md, "Build the image"). The test
# crates/dash-kube/tests/image.rs fails on a moving tag and accepts `tag` or
# `tag@sha256:<64 hex>`.
#
# All three Debian-based images are bookworm (Debian 12): the build stage,
# the runtime, and postgres:<PG_MAJOR>.<minor>-bookworm in the database pods,
# which run the `dashctl` built here against their glibc. Move them to a new
# Debian release together (the test checks they agree).

# The PostgreSQL major version, here and only here: the client installed
# below (pg_dump/pg_restore must be at least as new as the server) and the
# server image of deploy/kubernetes/postgres*-statefulset.yaml, whose tag and
# DASH_PG_BINDIR the test requires to match it. Debian bookworm's own archive
# ships only postgresql-client-15; for another major, add the PGDG apt
# repository (apt.postgresql.org, `bookworm-pgdg`) to the runtime stage first.
ARG PG_MAJOR=15

# --- build -------------------------------------------------------------------
# The toolchain the workspace is tested with (kube 5 needs Rust 1.89 or newer).
FROM rust:1.95.0-bookworm AS build
# protoc: the etcd client crate generates its gRPC code at build time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# --locked: build exactly the dependency versions in Cargo.lock (fails if the
# lock file is out of date instead of resolving new versions).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dash-cli \
    && install -D -m 0755 target/release/dashctl /out/dashctl

# --- runtime -----------------------------------------------------------------
FROM debian:12.15-slim
ARG PG_MAJOR
# curl and nc: the runbook runs them inside the dash-api pod
# (`curl localhost:9090/metrics`, `nc -zv postgres 5432`); curl is also the
# HEALTHCHECK below.
# postgresql-client-${PG_MAJOR}: pg_dump / pg_restore for `dashctl db backup`,
# `verify-backup` and `restore` (and psql for an operator); the same major as
# the server. The base image is pinned; the packages are the archive's current
# ones at build time (security fixes included).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl netcat-openbsd "postgresql-client-${PG_MAJOR}" \
    && rm -rf /var/lib/apt/lists/*

# Non-root; uid/gid 10001 as in the Kubernetes securityContexts.
RUN groupadd --system --gid 10001 dash \
    && useradd --system --uid 10001 --gid dash --home-dir /home/dash --create-home --shell /usr/sbin/nologin dash

COPY --from=build /out/dashctl /usr/local/bin/dashctl

ENV DASH_BIND=0.0.0.0 \
    DASH_API_PORT=3001 \
    METRICS_PORT=9090 \
    DASH_BACKUP_DIR=/backups/dash/postgres

# Descriptors: every connection and event stream holds one. An image cannot
# carry an RLIMIT_NOFILE; `dashctl serve` raises its soft limit to the hard
# limit the runtime grants and fits DASH_MAX_CONNECTIONS to it (logged at
# start). Run with a hard limit above the caps below, e.g.
#   docker run --ulimit nofile=65536:65536 dash:0.1.0
# (the usual default hard limit, 524288 or more, is enough).
ENV DASH_MAX_CONNECTIONS=16384 \
    DASH_MAX_EVENT_STREAMS=10000

# Read-only root filesystem: Dash writes only to HOME (`dashctl env`/`psql`
# keep their pgpass file in ~/.dash, `./.dash` is DASH_HOME's default and the
# working directory is HOME, psql its history), /tmp, and the backup
# directory. The Kubernetes manifests mount an emptyDir on each of HOME and
# /tmp (and the backup claim); with Docker:
#   docker run --read-only --tmpfs /tmp \
#     --tmpfs /home/dash:uid=10001,gid=10001,mode=0700 dash:0.1.0
# HOME is set here, not left to the runtime's passwd lookup, so that it is the
# path those mounts name whatever uid the container runs as.
ENV HOME=/home/dash

USER 10001:10001
WORKDIR /home/dash
# 3001: REST API, /health, /ready, /livez, dashboard. 9090: /metrics.
EXPOSE 3001 9090

# Docker's health state (`docker ps`, compose `depends_on: service_healthy`):
# /livez answers 200 while the process serves, whatever the database does,
# as the Deployment's livenessProbe (Kubernetes ignores HEALTHCHECK and uses
# its probes). Shell form, so DASH_API_PORT is the container's at run time.
# /livez is answered even when the connection cap is reached (the overflow
# lane), so a busy API is not reported unhealthy. Meant for `serve`: a
# one-shot command run from this image (`db backup`) that outlives the start
# period shows as unhealthy, which Docker only reports. Assumes the API
# listens on the loopback too (DASH_BIND 0.0.0.0, the default, or 127.0.0.1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS --max-time 4 -o /dev/null "http://127.0.0.1:${DASH_API_PORT}/livez" || exit 1

ENTRYPOINT ["dashctl"]
CMD ["serve"]

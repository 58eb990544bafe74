# Dash: one image for the API (`dashctl serve`, the default), the backup CronJob
# (`dashctl db backup`), the operator CLI (`kubectl exec ... -- dashctl db status`),
# and the `dashctl` binary the database pods copy in to run `dashctl node`.
#
#   docker build -t dash:0.1.0 .
#
# Needs BuildKit (the default builder since Docker 23; `docker buildx build`)
# for the cargo cache mounts.

# --- build -------------------------------------------------------------------
FROM rust:1-bookworm AS build
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
FROM debian:bookworm-slim
# curl and nc: the runbook runs them inside the dash-api pod
# (`curl localhost:9090/metrics`, `nc -zv postgres 5432`).
# postgresql-client-15: pg_dump / pg_restore for `dashctl db backup`,
# `verify-backup` and `restore` (and psql for an operator); a client at least
# as new as the server (PostgreSQL 15).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl netcat-openbsd postgresql-client-15 \
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

USER 10001:10001
WORKDIR /home/dash
# 3001: REST API, /health, /ready, /livez, dashboard. 9090: /metrics.
EXPOSE 3001 9090
ENTRYPOINT ["dashctl"]
CMD ["serve"]

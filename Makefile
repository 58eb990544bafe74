# Dash developer entry points. `make test` is what CI runs (via .ci/run).

CARGO ?= cargo

.PHONY: deps build fmt lint test up install

## deps: install what is absent: PostgreSQL server, etcd, etcdctl, protoc (to build), nft, ip (apt-get; sudo when not root)
deps:
	scripts/install-deps.sh

## build: compile the workspace
build:
	$(CARGO) build --workspace

## fmt: format all code
fmt:
	$(CARGO) fmt --all

## lint: formatting check and clippy with warnings as errors
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## test: deps, then format check, clippy and the full test suite (real PostgreSQL and etcd)
test: deps lint
	$(CARGO) test --workspace

## up: deps, then the local platform (etcd, a dashctl node agent per PostgreSQL node, the API)
up: deps
	$(CARGO) run --release -p dash-cli -- up

## install: put `dashctl` on PATH (cargo install into ~/.cargo/bin, or $(PREFIX)/bin when PREFIX is set)
install:
	$(CARGO) install --locked --path crates/dash-cli $(if $(PREFIX),--root $(PREFIX))

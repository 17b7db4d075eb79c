# txcoord — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# Rust crates tested with `cargo test` (the binding crates are tested from Python and Node).
RUST_PKGS := -p txcoord -p txcoord-cli -p txcoord-testkit -p txcoord-examples
# Test and smoke runs start their own throwaway redis-server: a server named by an inherited
# URL is never used, let alone flushed (`make demo`, `make demo-locks` and the bench scripts
# say what they use: a throwaway redis-server, or $REDIS_URL).
NO_URLS := env -u REDIS_URL -u BENCH_REDIS_URL -u BENCH_REDIS_FLUSH


.PHONY: cli help deps demo demo-locks test test-rust test-python test-node test-cross test-dist lint bench bench-rust bench-smoke soak dist

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## install what is missing (redis-server, redis-tools) with apt
	@scripts/install-deps.sh

demo: deps ## sagas in Rust, Python and Node: a stalled saga, a deadlock, two monitor sidecars and a failover (~15 s once built)
	@scripts/demo.sh sagas

demo-locks: deps ## Rust, Python and Node contend for one lock: handoffs, fencing tokens, a lost lock (~5 s once built)
	@scripts/demo.sh locks

lint: deps ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test-rust: deps ## Rust unit, integration and example tests (the demo's tests run the Python and Node workers)
	$(NO_URLS) scripts/demo.sh --prepare
	$(NO_URLS) $(CARGO) test --locked $(RUST_PKGS)
	$(NO_URLS) BENCH_QUICK=1 $(CARGO) test --locked -p txcoord-bench --lib --bench scenarios

test-python: deps ## the Python package: .venv, maturin develop, stubtest, mypy, pytest
	$(NO_URLS) scripts/test-python.sh

test-node: deps ## the Node package: addon, declarations (tsc, native.d.ts diff), node --test
	$(NO_URLS) scripts/test-node.sh

test-cross: deps ## cross-language tests and the API parity check (after test-python and test-node)
	$(NO_URLS) scripts/test-cross.sh

cli: ## the txcoord command: target/release/txcoord (or: cargo install --path cli)
	$(CARGO) build --release --locked -p txcoord-cli
	@echo "built target/release/txcoord"

dist: ## release artifacts in dist/: abi3 wheel, sdist, npm tarball with the prebuilt linux-x64 addon
	scripts/dist.sh

test-dist: deps dist ## install dist/ into a fresh venv and npm project with no cargo on PATH, take a lock
	$(NO_URLS) scripts/check-dist.sh

bench-smoke: deps ## the benchmark programs of all three languages on a short run (reuses dist/)
	$(NO_URLS) BENCH_QUICK=1 BENCH_WHEEL=$(firstword $(wildcard dist/txcoord-*.whl)) BENCH_NODE_ADDON=$(wildcard bindings-node/prebuilt/txcoord.linux-x64-gnu.node) scripts/bench.sh

test: lint test-rust test-python test-node test-cross test-dist bench-smoke ## everything (what CI runs)
	@echo "make test: all suites passed"

bench: deps ## server cost per lock cycle and ceiling beside the seed's, A-D in Rust, Python and Node beside other libraries, then deadlock detector, monitor and saga save at scale; one redis-server, ~8 min
	scripts/bench.sh

bench-rust: deps ## the Rust program alone: server cost, redis-benchmark ceiling, A-D beside rslock, ~3 min
	$(CARGO) bench --locked -p txcoord-bench --bench scenarios

soak: deps ## 1e6 acquire/release cycles per language; fails unless RSS stays flat, ~2-3 min
	scripts/soak.sh

# txcoord — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# Rust crates tested with `cargo test` (the binding crates are tested from Python and Node).
RUST_PKGS := -p txcoord -p txcoord-testkit -p txcoord-examples

.PHONY: help deps demo test test-rust test-python test-node test-cross test-dist lint bench dist

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## install what is missing (redis-server, redis-tools) with apt
	@scripts/install-deps.sh

demo: deps ## the cross-language demo: Rust, Python and Node contend for one lock (throwaway redis-server or $$REDIS_URL)
	@scripts/demo.sh

lint: deps ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test-rust: deps ## Rust unit, integration and example tests (the demo's tests run the Python and Node workers)
	scripts/demo.sh --prepare
	$(CARGO) test --locked $(RUST_PKGS)
	BENCH_QUICK=1 $(CARGO) test --locked -p txcoord --bench scenarios

test-python: deps ## the Python package: .venv, maturin develop, stubtest, mypy, pytest
	scripts/test-python.sh

test-node: deps ## the Node package: addon, declarations (tsc, native.d.ts diff), node --test
	scripts/test-node.sh

test-cross: deps ## cross-language tests and the API parity check (after test-python and test-node)
	scripts/test-cross.sh

dist: ## release artifacts in dist/: abi3 wheel, sdist, npm tarball with the prebuilt linux-x64 addon
	scripts/dist.sh

test-dist: deps dist ## install dist/ into a fresh venv and npm project with no cargo on PATH, take a lock
	scripts/check-dist.sh

test: lint test-rust test-python test-node test-cross test-dist ## everything (what CI runs)
	@echo "make test: all suites passed"

bench: deps ## benchmark tables (txcoord beside rslock and redis-benchmark), ~3 min
	$(CARGO) bench --locked -p txcoord --bench scenarios

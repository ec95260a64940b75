# The developer's front panel. `make demo` runs the product; `make test` runs every test.
# Both set up what they need first (a virtualenv in .venv with the package built from source).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: help setup build loadgen demo test test-rust test-python protos protos-check lint bench clean

help:
	@echo "make demo     set up, then serve gRPC on 127.0.0.1:50051 and REST, /docs and /console/ on 127.0.0.1:8080"
	@echo "make test     set up, then run every test (proto check, cargo test, pytest)"
	@echo "make build    rebuild the Rust extension in place after changing rust_core/"
	@echo "make loadgen  build omnix-loadgen, the native sender of \`omnix loadgen --engine native\`"
	@echo "make protos   regenerate python/omnix_recs/_proto from proto/"
	@echo "make lint     set up, then proto freshness, ruff, mypy, stubtest, clippy, rustfmt (CI runs it)"
	@echo "make bench    run the benchmarks in benches/ (minutes; prints numbers)"

# System packages (servers some tests start) and the virtualenv with the package and its
# test dependencies. Re-runs only when pyproject.toml or the Rust sources change.
$(STAMP): pyproject.toml Cargo.toml rust_core/Cargo.toml $(shell find rust_core/src -name '*.rs') scripts/setup-system.sh
	bash scripts/setup-system.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

build: setup
	$(BIN)/pip install --quiet --no-deps -e .

demo: setup
	$(BIN)/omnix demo

# The load generator's native sender: its own Cargo workspace (benches/loadgen), never in the wheel.
LOADGEN = benches/loadgen/Cargo.toml

loadgen:
	cargo build --quiet --release --manifest-path $(LOADGEN)

protos: setup
	$(BIN)/python scripts/gen_protos.py

protos-check: setup
	$(BIN)/python scripts/gen_protos.py --check

test-rust:
	cargo test -p omnix_core --quiet
	cargo test --manifest-path $(LOADGEN) --quiet

test-python: setup loadgen
	$(BIN)/python -m pytest

test: protos-check test-rust test-python

# Stops at the first check that fails. Needs the venv (pinned ruff and mypy, type stubs) and the
# built extension (mypy and stubtest import omnix_recs._core), hence `setup`.
lint: setup protos-check
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest omnix_recs._core
	cargo clippy -p omnix_core --all-targets -- -D warnings
	cargo clippy --manifest-path $(LOADGEN) --all-targets -- -D warnings
	cargo fmt --all -- --check
	cargo fmt --manifest-path $(LOADGEN) -- --check

bench: setup
	@for b in benches/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) target benches/loadgen/target var .pytest_cache

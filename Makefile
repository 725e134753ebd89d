# Tandem: `make run` serves the site, `make test` runs every test. Both install what is missing
# first (scripts/setup.sh, idempotent). Build cache: $(CARGO_TARGET_DIR), outside the clone.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

export CARGO_TARGET_DIR ?= $(HOME)/.cache/tandem/target
# wasm-opt from npm's binaryen must win over Debian's (TOOLCHAIN.md); cargo-installed tools next.
export PATH := $(CURDIR)/tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

ADDR ?= 127.0.0.1:3000
DATA_DIR ?= data
SERVER := $(CARGO_TARGET_DIR)/release/server

# Native crates checked and tested together (the page's `frontend` needs `hydrate`, which
# excludes `ssr`: it is checked on wasm32 instead).
NATIVE := -p tandem-events -p tandem-store -p tandem-protocol -p tandem-accounts -p tandem-pg -p tandem-load -p worker -p app -p server --features app/ssr,tandem-events/testkit
WASM := -p tandem-events -p tandem-store -p worker -p frontend --target wasm32-unknown-unknown

.PHONY: run test setup worker build lint test-rust test-sim check-wasm crash scale-smoke bench-scale fuzz e2e sizes bench bench-browser clean

run: build
	$(SERVER) serve --addr $(ADDR) --data-dir $(DATA_DIR)

test: setup lint test-rust check-wasm build crash scale-smoke e2e

setup:
	@scripts/setup.sh

worker: setup
	scripts/build-worker.sh

# --precompress: the site's brotli and gzip forms are made before the server is compiled, so the
# release binary carries the finished site (feature embed-site) — cargo-leptos compiles the
# server beside the front, seeing a half-written site, unless it precompresses first.
build: worker
	cargo leptos build --release --precompress

lint: setup
	cargo fmt --all --check
	cargo clippy $(NATIVE) --all-targets -- -D warnings
	cargo clippy $(WASM) -- -D warnings

# The crash test runs against the release server, after the build (target crash). The
# PostgreSQL tests run on a throwaway cluster started for the run and removed after it; the
# server's integration tests that reach it only through HTTP, WebSockets and the command
# line's code run a second time with their servers on PostgreSQL.
PG_SERVER_TESTS := --test serve --test access --test live --test sync_protocol --test fuzz
test-rust: setup
	pg=$$(scripts/pg-cluster.sh start) || exit 1; eval "$$pg"; trap 'scripts/pg-cluster.sh stop "$$TANDEM_TEST_PG_DIR"' EXIT; \
	cargo test $(NATIVE) -- --skip killed_at_random && \
	TANDEM_TEST_BACKEND=postgres cargo test -p server --features app/ssr,tandem-events/testkit $(PG_SERVER_TESTS)

# kill -9 under push load, 3 rounds (make bench: 20), against the release server.
crash: build
	TANDEM_SERVER_BIN=$(SERVER) CRASH_ROUNDS=$${CRASH_ROUNDS:-3} cargo test $(NATIVE) --test crash -- --nocapture

# The load harness (load/): real server processes on SQLite, PostgreSQL, and two on PostgreSQL;
# 1,000 WebSocket clients, ingest, 10,000 idle sockets; each figure beside its goal, appended to
# docs/benchmarks.md. `make test` runs a short smoke of it (no figure is judged there).
bench-scale: build
	pg=$$(scripts/pg-cluster.sh start) || exit 1; eval "$$pg"; trap 'scripts/pg-cluster.sh stop "$$TANDEM_TEST_PG_DIR"' EXIT; \
	cargo run --release -p tandem-load -- --server $(SERVER) --record docs/benchmarks.md $(SCALE_ARGS)

scale-smoke: build
	pg=$$(scripts/pg-cluster.sh start) || exit 1; eval "$$pg"; trap 'scripts/pg-cluster.sh stop "$$TANDEM_TEST_PG_DIR"' EXIT; \
	cargo run -p tandem-load -- --server $(SERVER) --smoke

# The sync simulation with 10,000 random schedules (the seed is printed; SIM_SEED replays)
# instead of make test's 1,000 fixed ones.
test-sim: setup
	SIM_RANDOM=1 SIM_SCHEDULES=10000 cargo test -p tandem-store --release --test simulation -- --nocapture

bench: setup
	cargo bench -p tandem-store --bench store
	CRASH_SEED=$$(date +%s) $(MAKE) crash CRASH_ROUNDS=20

# The HTTP fuzz with 5,000 requests from a drawn seed (printed; FUZZ_SEED replays).
fuzz: setup
	FUZZ_SEED=$${FUZZ_SEED:-$$(date +%s)} FUZZ_CASES=5000 cargo test $(NATIVE) --test fuzz -- --nocapture

check-wasm: setup
	cargo build -p tandem-events -p tandem-store --target wasm32-unknown-unknown

# Against the release server, on its own port, with a fresh data dir removed afterwards.
# processes.spec.ts runs two server processes on a throwaway PostgreSQL cluster.
e2e: build
	data=$$(mktemp -d); pg=$$(scripts/pg-cluster.sh start) || exit 1; eval "$$pg"; \
	trap 'rm -rf "$$data"; scripts/pg-cluster.sh stop "$$TANDEM_TEST_PG_DIR"' EXIT; \
	(cd end2end && TANDEM_SERVER_BIN=$(SERVER) E2E_DATA_DIR=$$data npx playwright test)

# The browser benchmarks in Chromium (end2end/bench/bench.mjs): Enter -> render, a toggle in a
# list of 10,000, a fresh device's pull of 100,000 events, boot, shipped sizes; each beside a
# baseline measured in the same run. Prints numbers; asserts nothing.
bench-browser: build
	cd end2end && TANDEM_SERVER_BIN=$(SERVER) node bench/bench.mjs

# Raw and gzip sizes of every .wasm/.js the site ships (recorded in docs/development.md).
sizes:
	@cd target/site && for f in $$(find . -name '*.wasm' -o -name '*.js' | sort); do \
	  printf '%-40s %9d raw %9d gzip\n' "$$f" "$$(wc -c < $$f)" "$$(gzip -9c $$f | wc -c)"; done

clean:
	rm -rf target public/worker end2end/test-results end2end/playwright-report

# tessera: two commands. `make demo` runs the main job, `make test` passes the tests.
# Both install what the machine lacks (clang, libclang-dev) before calling cargo.
#
# The target directory lives outside the clone so repeated runs (and CI on this machine)
# do not rebuild RocksDB's C++ (8 to 30 minutes on 2 cores, depending on the machine).

export CARGO_TARGET_DIR ?= $(HOME)/.cache/tessera-target
CARGO ?= cargo
SEEDS ?= 100000

.PHONY: all deps test demo bench lint fmt sim chaos compare

all: test

deps:
	@./scripts/install-deps.sh

# The demo's binary first: `cargo run` resolves dependency features without the
# dev-dependencies, so it needs its own build of a few crates (iroh, tessera); building it
# here means `make demo` after `make test` compiles nothing.
test: deps
	$(CARGO) build --locked --bin tessera
	$(CARGO) test --workspace --locked

demo: deps
	$(CARGO) run --locked --bin tessera -- demo

# More simulator seeds than `make test` runs (2,000): `make sim SEEDS=100000`.
sim: deps
	SIM_SEEDS=$(SEEDS) $(CARGO) test --workspace --locked --lib sim::runs::seeds -- --nocapture

# The nemesis suite, longer than the run inside `make test` (README, "Nemesis suite"):
# `make chaos CHAOS_SECS=600 CHAOS_NEMESES=kill,partition CHAOS_SEED=42`. Needs root for
# the network nemeses (iptables, tc on lo); without it they are left out, said so.
CHAOS_SECS ?= 300
CHAOS_NEMESES ?= all
chaos: deps
	CHAOS_SECS=$(CHAOS_SECS) CHAOS_NEMESES=$(CHAOS_NEMESES) $(CARGO) test --workspace --locked \
		--test chaos nemesis_run -- --nocapture

bench: deps
	$(CARGO) bench --workspace --locked

# Failover figures, tessera beside a 3-member etcd 3.4 (README, "Failover"). Installs
# etcd-server and etcd-client through apt-get when `etcd` is missing.
.PHONY: failover
failover: deps
	@command -v etcd >/dev/null 2>&1 || { \
		echo "failover: installing etcd-server and etcd-client (the comparison's peer)" >&2; \
		SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null; }
	$(CARGO) bench --workspace --locked --profile dev --bench failover

# tessera beside a 3-member etcd 3.4 on this machine, same wrk load over HTTP (README,
# "Side by side with etcd"). Builds the release binary (a separate build from the tests':
# about 20 minutes on 2 cores the first time); installs etcd-server, etcd-client and wrk
# through apt-get when missing. Knobs: COMPARE_ROUNDS, COMPARE_SECS (scripts/compare.sh).
compare: deps
	$(CARGO) build --release --locked --bin tessera
	./scripts/compare.sh

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked --profile dev -- -D warnings

fmt:
	$(CARGO) fmt --all

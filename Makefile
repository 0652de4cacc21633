# TrackLayer — the project's commands. `make test` is the README's test command; `make ci` is
# what .ci/run executes on a clean clone.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

CARGO ?= cargo
PYTHON3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NODE_SDK := tests/sdk/node
BROWSER := tests/browser
CHROMIUM ?= /usr/bin/chromium

.PHONY: xmlsec1 fuzz fuzz-smoke fuzz-tools test clippy-test clippy-driver-check browser-test chromium-check ci fmt-check clippy structure-check lint-template secret-scan semgrep audit bench measure-ingest measure-delivery measure-aws tools clean-tools lambda lambda-check

## Test tools: a Python venv (segment SDK, moto, cfn-lint, detect-secrets, schemathesis, semgrep) and
## the Node SDK. Each is rebuilt when its lock file changes; a missing interpreter fails loudly.
$(VENV)/.installed: infra/requirements-test.txt
	@command -v $(PYTHON3) >/dev/null || { echo "error: $(PYTHON3) not found; install Python 3.11+ (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
	rm -rf $(VENV)
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements-test.txt
	touch $@

$(NODE_SDK)/node_modules/.installed: $(NODE_SDK)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "error: node and npm are needed for the Node SDK tests (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund --prefix $(NODE_SDK)
	touch $@

$(BROWSER)/node_modules/.installed: $(BROWSER)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "error: node and npm are needed for the browser tests (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund --prefix $(BROWSER)
	touch $@

## The SAML suite's real IdP (pysaml2) signs with Debian's xmlsec1 (a test tool only: nothing
## at run time links it). Installed when missing; fails loudly when it cannot be.
xmlsec1:
	@command -v xmlsec1 >/dev/null || { echo "xmlsec1 is missing: installing it (apt-get install -y xmlsec1)" >&2; \
	  { [ "$$(id -u)" = 0 ] && apt-get install -y xmlsec1 >&2; } || sudo apt-get install -y xmlsec1 >&2 || \
	  { echo "error: could not install xmlsec1, which the SAML tests need: apt-get install xmlsec1" >&2; exit 1; }; }
	@command -v xmlsec1 >/dev/null || { echo "error: xmlsec1 is still missing after apt-get" >&2; exit 1; }

## The browser suite drives Debian's chromium (never a downloaded browser): installed from
## Debian's packages when it is missing at the default path, as xmlsec1 is; fails loudly when
## it cannot be.
APT_INSTALL = { [ "$$(id -u)" = 0 ] && { apt-get install -y $(1) >&2 || { apt-get update >&2 && apt-get install -y $(1) >&2; }; }; } || sudo apt-get install -y $(1) >&2
chromium-check:
	@test -x "$(CHROMIUM)" || [ "$(CHROMIUM)" != /usr/bin/chromium ] || { echo "chromium is missing: installing it (apt-get install -y chromium)" >&2; \
	  $(call APT_INSTALL,chromium) || { echo "error: could not install chromium, which the browser tests need: apt-get install chromium" >&2; exit 1; }; }
	@test -x "$(CHROMIUM)" || { echo "error: chromium not found at $(CHROMIUM): apt-get install chromium (or set CHROMIUM=/path/to/chromium)" >&2; exit 1; }

tools: $(VENV)/.installed $(NODE_SDK)/node_modules/.installed $(BROWSER)/node_modules/.installed

clean-tools:
	rm -rf $(VENV) $(NODE_SDK)/node_modules $(BROWSER)/node_modules

## Unit, contract and end-to-end tests (the e2e suites start and stop their own servers),
## schemathesis against the APIs of a live server, scim2-tester and the browser suite.
## The binaries are built with the tests in one cargo invocation (BUILD_BINS): the same feature
## resolution as `cargo test --workspace`, so the test run and the browser suite reuse every
## crate. A build of the binary packages alone resolves features without the dev-dependencies'
## (serde_json's preserve_order, the AWS SDK's test features): `-p tracklayer -p
## tracklayer-ingest …` rebuilt 55 units for `cargo test` (the AWS SDKs, rusqlite, axum,
## reqwest), and the browser suite's `-p tracklayer` 84 more (tokio, hyper, serde among them).
BUILD_BINS := $(CARGO) build --workspace --bins --tests
## The test binaries, the doc tests and the three suites of live servers run TEST_JOBS at a time
## (infra/run-tests.py): run one after another, as `cargo test --workspace` does, the moto and
## end-to-end binaries left a core idle for minutes while they waited on their servers.
TEST_JOBS ?= 3
## Where cargo puts what it builds: CARGO_TARGET_DIR when it is set, else ./target.
TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)
DEBUG_BIN = $(abspath $(TARGET_DIR)/debug)
test: tools xmlsec1 $(BROWSER)/node_modules/.installed chromium-check
	$(BUILD_BINS)
	TRACKLAYER_TEST_PYTHON=$(abspath $(PY)) CARGO=$(CARGO) $(PYTHON3) infra/run-tests.py --jobs $(TEST_JOBS) \
	  --suite schemathesis="TRACKLAYER_BIN=$(DEBUG_BIN)/tracklayer SCHEMATHESIS=$(abspath $(VENV)/bin/schemathesis) PYTHON=$(abspath $(PY)) bash tests/schemathesis/run.sh" \
	  --suite scim="TRACKLAYER_BIN=$(DEBUG_BIN)/tracklayer PYTHON=$(abspath $(PY)) bash tests/scim/run.sh" \
	  --suite browser="$(BROWSER_RUN)"

## The console in a real browser (tests/browser, Node's test runner + playwright-core driving
## chromium, axe-core): screenshots of every page under target/browser-screenshots/. The SAML
## sign-in there has the SAML suite's real IdP (the venv's pysaml2, signing with xmlsec1).
BROWSER_RUN = TRACKLAYER_BIN=$(DEBUG_BIN)/tracklayer TRACKLAYER_TEST_PYTHON=$(abspath $(PY)) CHROMIUM=$(CHROMIUM) node --test --test-concurrency=1 $(wildcard $(BROWSER)/*.test.mjs)
browser-test: $(VENV)/.installed xmlsec1 $(BROWSER)/node_modules/.installed chromium-check
	$(BUILD_BINS)
	$(BROWSER_RUN)

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## What `make ci` runs for clippy and the tests: one build that is both. `cargo clippy` is cargo
## with clippy-driver as the workspace's rustc wrapper (RUSTC_WORKSPACE_WRAPPER) and the lint
## flags in CLIPPY_ARGS; here the same wrapper and flags (`-D warnings`) wrap the tests' build
## of every target (`--all-targets`: libraries, binaries, tests, benches, examples), so the
## workspace's crates are linted as `make clippy` lints them while they compile, and a warning
## fails the step. `make clippy` is a check-mode build of the whole graph of its own: the
## dependencies compiled a second time, which cost CI 862 CPU s (441 s wall) on 2 cores.
## The variables are exported to the whole step (the test runner's `cargo test --no-run` and
## `--doc` see the same wrapper, so nothing is rebuilt).
CLIPPY_DRIVER = $(shell command -v clippy-driver)
clippy-test: export CLIPPY_ARGS = -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
clippy-test: export RUSTC_WORKSPACE_WRAPPER = $(CLIPPY_DRIVER)
clippy-test: BUILD_BINS = $(CARGO) build --workspace --all-targets
clippy-test: clippy-driver-check test
clippy-driver-check:
	@[ -n "$(CLIPPY_DRIVER)" ] || { echo "error: clippy-driver is not installed (rustup component add clippy)" >&2; exit 1; }

lint-template: $(VENV)/.installed
	$(VENV)/bin/cfn-lint --regions us-east-1 eu-central-1 -- template.yaml

secret-scan: $(VENV)/.installed
	PYTHON=$(abspath $(PY)) infra/secret-scan.sh

## Semgrep with our own rules (infra/semgrep/, each with test cases): the rules' tests, then the
## scan of the tree. Offline: local rule files only, no metrics, no version check. A finding
## fails; a justified exception is `// nosemgrep: <rule-id> — <reason>` on or just above its line.
SEMGREP_FLAGS := --metrics=off --disable-version-check
semgrep: $(VENV)/.installed
	$(VENV)/bin/semgrep --test $(SEMGREP_FLAGS) infra/semgrep
	$(VENV)/bin/semgrep scan $(SEMGREP_FLAGS) --config infra/semgrep --exclude infra/semgrep --error --quiet .

## Dependency audit: cargo-deny (advisories, licences, duplicate versions, sources; infra/deny.toml)
## offline against the RustSec snapshot in ../shared/data (the newest there; override with
## ADVISORY_SNAPSHOT=...). cargo-deny is built once into target/tools.
ADVISORY_DATA ?= ../shared/data
ADVISORY_SNAPSHOT ?= $(lastword $(sort $(wildcard $(ADVISORY_DATA)/rustsec-advisory-db-*.tar.gz)))
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY_ROOT := target/tools/cargo-deny-$(CARGO_DENY_VERSION)

## cargo-deny's own release profile is fat LTO with one codegen unit (a long serial step). It is
## a tool run once per CI on one lock file, so it is built unoptimised and without debug info
## (`--debug`): measured cold on 2 cores, 168 CPU s to build and 17.5 to run both audits, against
## 260 and 7.5 at opt-level 1 without LTO (what this rule built before) and more with cargo-deny's
## own profile. What the audit checks does not change.
$(CARGO_DENY_ROOT)/bin/cargo-deny:
	CARGO_PROFILE_DEV_DEBUG=false \
	  $(CARGO) install --debug --locked --quiet cargo-deny --version =$(CARGO_DENY_VERSION) --root $(CARGO_DENY_ROOT)

audit:
	@[ -f "$(ADVISORY_SNAPSHOT)" ] || { echo "error: no RustSec advisory snapshot: expected $(ADVISORY_DATA)/rustsec-advisory-db-YYYY-MM-DD.tar.gz (shared/data next to the repository), or pass ADVISORY_SNAPSHOT=/path/to/it" >&2; exit 1; }
	$(MAKE) --no-print-directory $(CARGO_DENY_ROOT)/bin/cargo-deny
	$(CARGO) fetch --locked --quiet  # cargo-deny runs offline: the crates' manifests must be here
	ADVISORY_SNAPSHOT=$(abspath $(ADVISORY_SNAPSHOT)) CARGO_DENY=$(abspath $(CARGO_DENY_ROOT)/bin/cargo-deny) infra/audit.sh --self-test
	ADVISORY_SNAPSHOT=$(abspath $(ADVISORY_SNAPSHOT)) CARGO_DENY=$(abspath $(CARGO_DENY_ROOT)/bin/cargo-deny) infra/audit.sh

## The structure budget: no non-test source file over 800 lines, no function over 120 lines.
structure-check:
	python3 infra/structure-check.py

## The ingest benchmark (criterion); prints per-event cost and the pipeline/parse ratio.
bench:
	$(CARGO) bench -p tracklayer-core --bench ingest

## Ingest on one core: `tracklayer serve` (3 paused destinations routed) against a bare axum +
## serde_json server, alternated 3 times, servers pinned to CPU 0 and the generator to CPU 1;
## then half rate (p99) and 3 destinations delivering to 20 ms fakes. MEASURE_SECONDS=5 shortens
## the 20 s runs; MEASURE_FAKE_RATE sets the delivering variant's offered events/s (20000);
## MEASURE_RATE=<events/s> runs only `serve`, three times at that offered rate.
measure-ingest:
	$(CARGO) build --release -p tracklayer -p tracklayer-tests --bins
	./target/release/measure-ingest

## Delivery: requests per 1,000 events per destination, and events/s through 20 ms fakes.
measure-delivery:
	$(CARGO) build --release -p tracklayer -p tracklayer-tests --bins
	./target/release/measure-delivery

## The Lambda functions (native release builds) under the Runtime API emulator on moto: cold
## starts, binary sizes, AWS requests and DynamoDB units per 1,000 events at batches of 100
## and of 1, cost per million. The binaries are where cargo put them (CARGO_TARGET_DIR or
## build.target-dir too), as `cargo metadata` says.
measure-aws: $(VENV)/.installed
	$(CARGO) build --release -p tracklayer-tests -p tracklayer-ingest -p tracklayer-deliver -p tracklayer-admin -p tracklayer-dsr --bins
	target_dir="$$($(CARGO) metadata --format-version 1 --no-deps | $(PYTHON3) -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"; \
	  TRACKLAYER_TEST_PYTHON=$(abspath $(PY)) "$$target_dir/release/measure-aws"

## The Lambda functions for arm64, as `sam build` builds them (cargo-lambda, release profile):
## target/lambda/<name>/bootstrap. One cargo invocation, so that the crates they share build
## once. cargo-lambda and zig come from the venv. Each bootstrap's native libraries (readelf's
## NEEDED entries) must be the recorded ones (infra/lambda-needed.txt): nothing beyond glibc.
LAMBDA_BINS := ingest deliver admin dsr
LAMBDA_PROFILE_FLAGS ?= --release

lambda: $(VENV)/.installed
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(abspath $(VENV)/bin):$$PATH" $(CARGO) lambda build $(LAMBDA_PROFILE_FLAGS) --arm64 $(addprefix --bin ,$(LAMBDA_BINS))
	@for b in $(LAMBDA_BINS); do ls -l $(TARGET_DIR)/lambda/$$b/bootstrap; done
	infra/lambda-needed.sh $(TARGET_DIR) $(LAMBDA_BINS)

## What `make ci` runs: the same cross-build and link for arm64 with the `lambda-check` profile
## (no optimisation, no LTO), a fraction of the release build's cost.
lambda-check:
	$(MAKE) lambda LAMBDA_PROFILE_FLAGS="--profile lambda-check"

## Fuzzing (cargo-fuzz, libFuzzer) on the installed nightly toolchain (rustup cannot download
## one here): the targets of fuzz/, each from its seed corpus fuzz/seeds/<target>. Built without
## a sanitizer (`-s none`): every crate forbids unsafe code, so AddressSanitizer would only slow
## the build and the runs; the targets' property assertions are what fails.
FUZZ_TARGETS := ingest_batch gzip_body normalize_meta normalize_google normalize_tiktok normalize_snapchat normalize_pinterest normalize_reddit normalize_microsoft normalize_linkedin consent_signals admin_dto problem_mapping saml_response
FUZZ_TOOLCHAIN ?= nightly
FUZZ_SMOKE_SECONDS ?= 10
SECONDS ?= 300

fuzz-tools:
	@rustup toolchain list | grep -q '^$(FUZZ_TOOLCHAIN)' || { echo "error: the Rust $(FUZZ_TOOLCHAIN) toolchain is not installed (see rustup toolchain list); cargo-fuzz needs it and rustup cannot download it here" >&2; exit 1; }
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked --version 0.13.2

## Every target for FUZZ_SMOKE_SECONDS (default 10 s) in `make ci`, built once (`run` reuses
## the build: same flags, same environment) with `--dev`: fuzz/Cargo.toml's dev profile,
## opt-level 0 without debug info, libFuzzer itself at 3; the crates of this repository with
## cargo-fuzz's instrumentation, debug assertions and overflow checks, the dependencies without
## the instrumentation (fuzz/smoke-rustc.sh, the rustc wrapper). So the smoke proves what it did
## (every target builds, runs from its seed corpus and keeps its properties for its seconds) at
## half the cost: the step cold on 2 cores 276 s wall and 534 CPU s (the build 190 s), against
## 630 and 1,114 at opt-level 1 with 16 codegen units (what it built until 2026-12-07), and per
## target 0.25 to 2.6 times the inputs that build ran in its 10 s (README § Development). With
## the dependencies instrumented at level 0 it ran 2-6 times fewer. `make fuzz` (the long runs
## that count executions) keeps cargo-fuzz's release build: opt-level 3, everything instrumented.
FUZZ_SMOKE_ENV := RUSTC_WRAPPER=$(abspath fuzz/smoke-rustc.sh)
FUZZ_SMOKE_FLAGS := --dev
## The smoke runs two targets at a time (each fuzzer is one process on one core): CI has two
## cores, so fourteen 10 s runs take 70 s of wall time instead of 140 s. A failing target fails the
## step (xargs exits non-zero) with its input under fuzz/artifacts/<target>/.
FUZZ_SMOKE_JOBS ?= 2
fuzz-smoke: fuzz-tools
	$(FUZZ_SMOKE_ENV) $(CARGO) +$(FUZZ_TOOLCHAIN) fuzz build -s none $(FUZZ_SMOKE_FLAGS)
	@printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(FUZZ_SMOKE_JOBS) -I{} env $(FUZZ_SMOKE_ENV) CARGO_FUZZ="$(CARGO) +$(FUZZ_TOOLCHAIN) fuzz" FUZZ_BUILD_FLAGS="$(FUZZ_SMOKE_FLAGS)" fuzz/run.sh {} $(FUZZ_SMOKE_SECONDS)

## One target for longer: `make fuzz TARGET=ingest_batch SECONDS=3600` (what it finds is kept
## in fuzz/corpus/TARGET for the next run).
fuzz: fuzz-tools
	@test -n "$(TARGET)" || { echo "error: name a target: make fuzz TARGET=<one of: $(FUZZ_TARGETS)> SECONDS=<n>" >&2; exit 1; }
	KEEP_CORPUS=1 CARGO_FUZZ="$(CARGO) +$(FUZZ_TOOLCHAIN) fuzz" fuzz/run.sh $(TARGET) $(SECONDS)

# What `make ci` runs, cheap checks first so that they fail fast: the formatting and the
# structure budget (seconds), the template lint, the secret scan and Semgrep (the venv, then
# seconds), the audit (a small cargo-deny build), then clippy with the tests (one build), the
# arm64 link and the fuzz smoke (each a build of its own: test, aarch64, nightly).
## The Python checks (lint-template installs the venv: mostly network, one core) run beside the
## cargo-deny build of `audit` (two cores): measured cold, 320 s one after the other, 210 side by
## side. The arm64 cross-build beside the fuzz build and smoke was tried and lost: each keeps
## both cores busy (351 + 630 s one after the other; side by side 793 and 1,021 s, so 1,021).
CI_STEPS := fmt-check structure-check lint-template,secret-scan,semgrep+audit clippy-test lambda-check fuzz-smoke

# A clean clone builds once: incremental caches (gigabytes, never reused there) are off. The
# steps run one after another, a group (`a,b+c`) side by side (infra/ci-steps.sh), which prints
# each one's wall and CPU seconds at the end, pass or fail.
ci: export CARGO_INCREMENTAL = 0
ci:
	infra/ci-steps.sh "$(MAKE)" $(CI_STEPS)

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

.PHONY: test browser-test chromium-check ci fmt-check clippy structure-check lint-template secret-scan bench measure-delivery measure-aws tools clean-tools lambda lambda-check

## Test tools: a Python venv (segment SDK, moto, cfn-lint, detect-secrets, schemathesis) and
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

## The browser suite drives Debian's chromium (never a downloaded browser).
chromium-check:
	@test -x "$(CHROMIUM)" || { echo "error: chromium not found at $(CHROMIUM): apt-get install chromium (or set CHROMIUM=/path/to/chromium)" >&2; exit 1; }

tools: $(VENV)/.installed $(NODE_SDK)/node_modules/.installed $(BROWSER)/node_modules/.installed

clean-tools:
	rm -rf $(VENV) $(NODE_SDK)/node_modules $(BROWSER)/node_modules

## Unit, contract and end-to-end tests (the e2e suites start and stop their own servers), then
## schemathesis against the admin API of a live server.
test: tools
	$(CARGO) build -p tracklayer -p tracklayer-ingest -p tracklayer-deliver -p tracklayer-admin -p tracklayer-dsr
	TRACKLAYER_TEST_PYTHON=$(abspath $(PY)) $(CARGO) test --workspace
	TRACKLAYER_BIN=$(abspath target/debug/tracklayer) SCHEMATHESIS=$(abspath $(VENV)/bin/schemathesis) PYTHON=$(abspath $(PY)) bash tests/schemathesis/run.sh
	$(MAKE) browser-test

## The console in a real browser (tests/browser, Node's test runner + playwright-core driving
## chromium, axe-core): screenshots of every page under target/browser-screenshots/.
browser-test: $(BROWSER)/node_modules/.installed chromium-check
	$(CARGO) build -p tracklayer
	TRACKLAYER_BIN=$(abspath target/debug/tracklayer) CHROMIUM=$(CHROMIUM) node --test --test-concurrency=1 $(wildcard $(BROWSER)/*.test.mjs)

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lint-template: $(VENV)/.installed
	$(VENV)/bin/cfn-lint --regions us-east-1 eu-central-1 -- template.yaml

secret-scan: $(VENV)/.installed
	PYTHON=$(abspath $(PY)) infra/secret-scan.sh

## The structure budget: no non-test source file over 800 lines, no function over 120 lines.
structure-check:
	python3 infra/structure-check.py

## The ingest benchmark (criterion); prints per-event cost and the pipeline/parse ratio.
bench:
	$(CARGO) bench -p tracklayer-core --bench ingest

## Delivery: requests per 1,000 events per destination, and events/s through 20 ms fakes.
measure-delivery:
	$(CARGO) build --release -p tracklayer -p tracklayer-tests --bins
	./target/release/measure-delivery

## The Lambda functions (native release builds) under the Runtime API emulator on moto: cold
## starts, binary sizes, AWS requests and DynamoDB units per 1,000 events, cost per million.
measure-aws: $(VENV)/.installed
	$(CARGO) build --release -p tracklayer-tests -p tracklayer-ingest -p tracklayer-deliver -p tracklayer-admin -p tracklayer-dsr --bins
	TRACKLAYER_TEST_PYTHON=$(abspath $(PY)) ./target/release/measure-aws

## The Lambda functions for arm64, as `sam build` builds them (cargo-lambda, release profile):
## target/lambda/<name>/bootstrap. One cargo invocation, so that the crates they share build
## once. cargo-lambda and zig come from the venv.
LAMBDA_BINS := ingest deliver admin dsr
LAMBDA_PROFILE_FLAGS ?= --release

lambda: $(VENV)/.installed
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(abspath $(VENV)/bin):$$PATH" $(CARGO) lambda build $(LAMBDA_PROFILE_FLAGS) --arm64 $(addprefix --bin ,$(LAMBDA_BINS))
	@for b in $(LAMBDA_BINS); do ls -l target/lambda/$$b/bootstrap; done

## What `make ci` runs: the same cross-build and link for arm64 with the `lambda-check` profile
## (no optimisation, no LTO), a fraction of the release build's cost.
lambda-check:
	$(MAKE) lambda LAMBDA_PROFILE_FLAGS="--profile lambda-check"

# A clean clone builds once: incremental caches (gigabytes, never reused there) are off.
ci: export CARGO_INCREMENTAL = 0
ci: fmt-check structure-check clippy test lint-template secret-scan lambda-check
	@echo "make ci: all checks passed"

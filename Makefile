# Weir: build, lint and test.
#
#   make build      compile every package, and the commands into bin/
#   make lint       gofmt, go vet, staticcheck
#   make test       lint, then all tests (race detector) against a real Kafka
#                   broker: the one in $KAFKA_BROKERS if set, else a local
#                   Kafka 4.4 started (and always stopped) by scripts/kafka.sh,
#                   and a real schema registry: $SCHEMA_REGISTRY_URL, else
#                   Apicurio Registry started by scripts/registry.sh
#   make torture    the randomized fault test (e2e TestTorture), longer, and with
#                   broker SIGKILLs:
#                   WEIR_TORTURE_SEEDS (6) schedules of WEIR_TORTURE_STEPS (16)
#   make bench      benchmarks, same broker handling
#   make bench-nexmark  Nexmark on Weir, Kafka Streams, Flink and the bare
#                   client (builds the Java baselines with mvn): q1 and q5,
#                   1 repetition, windows of 10 s or more after a 30 s
#                   warm-up (~15 minutes)
#   make bench-nexmark-full  every query and pass, 3 repetitions (hours), writing its
#                   tables into bench/README.md
#   make demo       the clickstream example with everything embedded (broker,
#                   catalog service, archive directory): examples/clickstream
#   make kafka-up / kafka-down   start / stop the local test broker by hand
#   make registry-up / registry-down   the same for the schema registry
#   make s3-up / s3-down   the same for the S3 server the archive tests use
#   make clean
#
# The local broker needs java 17+ and mvn; the jars are fetched from Maven
# Central once and cached in $${WEIR_CACHE:-$$HOME/.cache/weir}; the registry
# needs java 21+ (scripts/registry.sh finds or fetches one).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-builtin-rules

GO ?= go
KAFKA_SH := bash scripts/kafka.sh
REGISTRY_SH := bash scripts/registry.sh
S3_SH := bash scripts/s3.sh
TEST_TIMEOUT ?= 15m
BENCH_TIMEOUT ?= 20m
# Extra flags, e.g. make test TESTFLAGS='-run TestFoo -v'
TESTFLAGS ?=
BENCHFLAGS ?=
PKGS ?= ./...

.PHONY: all build lint fmt vet staticcheck test alerts torture bench bench-nexmark bench-nexmark-full bench-nexmark-build demo \
	kafka-up kafka-down kafka-restart kafka-status registry-up registry-down s3-up s3-down s3-prefetch clean

all: lint build test

build:
	$(GO) build $(PKGS)
	@if [ -n "$$($(GO) list ./cmd/... 2>/dev/null)" ]; then \
		mkdir -p bin && echo "$(GO) build -o bin/ ./cmd/..." && $(GO) build -o bin/ ./cmd/...; \
	fi

lint: fmt vet staticcheck

fmt:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run: gofmt -w .):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) tool staticcheck $(PKGS)

# scripts/s3.sh run does the same for a real S3-compatible server (Versity S3
# Gateway, built once from the Go module proxy) unless WEIR_S3_ENDPOINT is
# set; scripts/duckdb.sh installs DuckDB from PyPI once for the archive test.
# scripts/registry.sh run does the same for a real schema registry (Apicurio
# Registry's Confluent API, fetched once from Maven Central) unless
# SCHEMA_REGISTRY_URL is set.
# scripts/kafka.sh run: starts a broker only if KAFKA_BROKERS is unset, and
# then always stops it, keeping the exit code of the tests; on failure it
# prints the last 50 lines of the broker log. scripts/gotest.sh runs the
# packages whose tests restart that broker (e2e) after all others, alone.
test: s3-prefetch lint alerts
	WEIR_REQUIRE_KAFKA=1 WEIR_REQUIRE_REGISTRY=1 WEIR_REQUIRE_S3=1 GO=$(GO) $(KAFKA_SH) run $(REGISTRY_SH) run $(S3_SH) run bash scripts/gotest.sh \
		-race -count=1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) -- $(PKGS)

# The S3 server is built (once, into the cache) in the background while
# lint runs; scripts/s3.sh run waits for that build.
s3-prefetch:
	@mkdir -p .cache && (setsid $(S3_SH) fetch >.cache/s3-fetch.log 2>&1 &)

# The alert rules shipped beside the dashboard, checked by Prometheus's
# own promtool (scripts/promtool.sh fetches it once if it is not on PATH).
alerts:
	bash scripts/promtool.sh check rules deploy/prometheus/alerts.yml

# The randomized fault test with more seeds and longer schedules than make
# test gives it; WEIR_TORTURE_SEED=<seed> replays one.
WEIR_TORTURE_SEEDS ?= 6
WEIR_TORTURE_STEPS ?= 16
torture:
	WEIR_REQUIRE_KAFKA=1 WEIR_TORTURE_SEEDS=$(WEIR_TORTURE_SEEDS) WEIR_TORTURE_STEPS=$(WEIR_TORTURE_STEPS) \
		$(KAFKA_SH) run $(GO) test -race -count=1 -timeout 60m -run TestTorture -v ./e2e/

bench:
	WEIR_REQUIRE_KAFKA=1 $(KAFKA_SH) run \
		$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout $(BENCH_TIMEOUT) $(BENCHFLAGS) $(PKGS)

# Extra flags for the runner, e.g. NEXMARK_FLAGS='-queries q1,q5 -engines weir,flink'
NEXMARK_FLAGS ?=
MVN ?= mvn -B -q

# The default subset (about 15 minutes): a stateless query and a window query,
# each engine once, with windows of at least 10 s after a 30 s warm-up (the
# JVMs' compilers); it prints its tables. bench-nexmark-full runs every query
# and pass three times (hours: 3 queries of 3 engines once took 16 minutes)
# and writes the tables into bench/README.md.
NEXMARK_SUBSET ?= -queries q1,q5 -reps 1 -alo-queries none -also-queries none

bench-nexmark: bench-nexmark-build
	$(KAFKA_SH) run bash -c 'bin/nexmark bench -brokers "$$KAFKA_BROKERS" \
		-json bench/nexmark/results-subset.json $(NEXMARK_SUBSET) $(NEXMARK_FLAGS)'

bench-nexmark-full: bench-nexmark-build
	$(KAFKA_SH) run bash -c 'bin/nexmark bench -brokers "$$KAFKA_BROKERS" \
		-readme bench/README.md -json bench/nexmark/results.json $(NEXMARK_FLAGS)'

bench-nexmark-build:
	$(GO) build -o bin/nexmark ./bench/nexmark/cmd/nexmark
	$(MVN) -f bench/nexmark/kstreams/pom.xml package -DskipTests
	$(MVN) -f bench/nexmark/flink/pom.xml package -DskipTests

demo:
	$(GO) run ./examples/clickstream demo

s3-up:
	@$(S3_SH) start

s3-down:
	@$(S3_SH) stop

registry-up:
	@$(REGISTRY_SH) start

registry-down:
	@$(REGISTRY_SH) stop

kafka-up:
	@$(KAFKA_SH) start

kafka-down:
	@$(KAFKA_SH) stop

kafka-restart:
	@$(KAFKA_SH) restart

kafka-status:
	@$(KAFKA_SH) status || true

clean:
	-@$(KAFKA_SH) stop
	-@$(REGISTRY_SH) stop
	-@$(S3_SH) stop
	rm -rf bin .cache/kafka-run .cache/registry-run .cache/s3-run

# airlock: a thin Makefile. `make help` lists the targets; docs/testing.md
# says what each suite needs. Scripts under scripts/ and bench/ do the work.

GO        ?= go
BIN       ?= bin/airlock
# Concurrent packages that also run under the race detector (those that exist).
RACE_PKGS := $(patsubst %,./%/...,$(wildcard internal/blobstore internal/registry internal/cache internal/upstream internal/egress internal/dnsserver internal/admin internal/node internal/verify internal/relay internal/storage internal/warm internal/cluster internal/basicauth internal/policy))
UNIT_FLAGS ?= -count=1 -timeout 4m
E2E_FLAGS ?= -count=1 -timeout 12m
FUZZTIME  ?= 10s

.DEFAULT_GOAL := help
.PHONY: help build image deps test test-unit vet fmt-check unit race conformance conformance-baseline e2e e2e-objstore fuzz bench bench-registry bench-cache bench-gateway bench-dns bench-dns-cores bench-storage bench-cluster bench-failover bench-failover-vip bench-learn bench-regscale bench-policy bench-fill diagrams clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-22s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/airlock
	$(GO) build -o $(BIN) ./cmd/airlock

image: ## OCI image of airlock (linux/amd64, linux/arm64) as an OCI layout in dist/image; push: go run ./scripts/mkimage push --to HOST/REPO:TAG
	nice -n 19 $(GO) run ./scripts/mkimage build --out dist/image

deps: ## install missing Debian packages and the pinned storage emulators (Azurite, versitygw) for the suites (root)
	scripts/deps.sh
	scripts/tools.sh

test: deps ## everything CI runs: unit, conformance, e2e, e2e on object storage (keeps going, fails at the end)
	AIRLOCK_REQUIRE_TOOLS=1 $(MAKE) -k test-unit conformance e2e e2e-objstore

test-unit: vet fmt-check unit race ## go vet, gofmt, go test, race on concurrent packages

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi; echo "gofmt: clean"

unit:
	$(GO) test $(UNIT_FLAGS) ./...
	@echo "unit: internal/egress again with gateway.proxyEngine goroutine"
	AIRLOCK_TEST_PROXY_ENGINE=goroutine $(GO) test $(UNIT_FLAGS) ./internal/egress

race:
	$(if $(RACE_PKGS),$(GO) test -race $(UNIT_FLAGS) $(RACE_PKGS),@echo "race: no concurrent packages yet")

conformance: build ## OCI conformance suite against airlock (auth on), content on disk, Azurite and versitygw
	AIRLOCK_BIN=$(CURDIR)/$(BIN) scripts/conformance.sh airlock
	AIRLOCK_BIN=$(CURDIR)/$(BIN) STORAGE=azblob scripts/conformance.sh airlock
	AIRLOCK_BIN=$(CURDIR)/$(BIN) STORAGE=s3 scripts/conformance.sh airlock

conformance-baseline: ## same suite against Debian docker-registry (62/12/5)
	scripts/conformance.sh docker-registry

e2e: ## e2e suite as root: real skopeo, containerd, docker-registry, unbound, netns; airlock binary
	$(GO) test -tags e2e $(E2E_FLAGS) ./test/e2e/...
	$(GO) test -tags e2e $(E2E_FLAGS) -run 'E2E' ./internal/upstream ./internal/egress ./internal/dnsserver ./internal/node ./internal/verify
	AIRLOCK_TEST_PROXY_ENGINE=goroutine $(GO) test -tags e2e $(E2E_FLAGS) -run 'E2E' ./internal/egress
	$(GO) test -tags e2e $(E2E_FLAGS) -run 'E2E' ./scripts/mkimage

e2e-objstore: build ## e2e cache and object storage tests with the content on Azurite, then on versitygw (root; runs both, fails at the end)
	@rc=0; for s in azblob s3; do echo "e2e-objstore: E2E_STORAGE=$$s"; \
	  AIRLOCK_BIN=$(CURDIR)/$(BIN) AIRLOCK_REQUIRE_TOOLS=1 E2E_STORAGE=$$s $(GO) test -tags e2e $(E2E_FLAGS) -run 'TestCache|TestObjStore' ./test/e2e/ || rc=1; \
	done; exit $$rc

fuzz: ## run every fuzz target for FUZZTIME (default 10s)
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench: bench-registry bench-cache bench-dns bench-gateway bench-storage bench-cluster ## all benchmarks (not part of test)

bench-registry: ## blob and manifest GETs: airlock vs nginx vs docker-registry
	bench/registry.sh

bench-cache: ## pull-through cache: airlock vs docker-registry proxy, cold and upstream down
	bench/cache.sh

bench-gateway: ## CONNECT tunnels: airlock vs haproxy, squid, tinyproxy (throughput, tunnels/s, idle RSS)
	bench/gateway.sh

bench-gateway-ab: ## CPU per tunnel of airlock variants (engines, resolution, GOMAXPROCS) vs haproxy, interleaved rounds
	bench/gateway-ab.sh

bench-dns: ## DNS: airlock vs unbound with dnsperf, cached, half-load p99, misses
	bench/dns.sh

bench-dns-cores: ## DNS scaling: QPS on 1 and 2 cores vs unbound and unbound-fwd, misses, 10 vs 10,000 policy rules; redraws docs/img/bench-dns-cores.svg
	flock /tmp/airlock-bench.lock env BENCH_ROUNDS=3 BENCH_DURATION=3 BENCH_MISS_NAMES=150000 bench/dns-cores.sh

bench-storage: ## registry on object storage (Azurite, versitygw): airlock vs distribution v3.1.2, warm GETs and cold pulls
	bench/storage.sh

bench-cluster: ## cold pull by 20 clients over 2 replicas (Redis fill leases) vs 1, on Azurite
	bench/cluster.sh

bench-failover: ## failover gap without a VIP: DNS and registry clients with two replica addresses, first one killed or hung
	bench/failover.sh

bench-failover-vip: ## failover gap behind a keepalived VIP (root; runs the cluster e2e): DNS, gateway CONNECT and transparent, registry
	bench/failover-vip.sh

bench-regscale: ## registry metadata at 1k-100k blobs, 100-10k repositories and tags: catalog/tag paging, GC, startup, RSS vs docker-registry
	flock /tmp/airlock-bench.lock bench/regscale.sh

bench-policy: ## policy decision cost at 10..100,000 rules, indexed vs linear; compile; reload (Go benchmarks, bench lock)
	bench/policy.sh

bench-fill: ## cold single-client pull through the cache vs a direct pull and the floor (fillref: read, sha256, write); redraws docs/img/bench-fill*.svg
	flock /tmp/airlock-bench.lock env BENCH_CHART=1 bench/fill.sh

bench-learn: ## policy learn on 100,000 and 1,000,000 synthetic decision records: wall time, records/s, max RSS (no peer)
	bench/learn.sh

diagrams: ## regenerate docs/diagrams: packages.dot from the imports, every .dot rendered to SVG (graphviz)
	$(GO) test -count=1 ./internal -run TestPackageDiagram -update-diagram >/dev/null || true
	@command -v dot >/dev/null || { echo "diagrams: needs graphviz (apt-get install graphviz)"; exit 1; }
	for f in docs/diagrams/*.dot; do dot -Tsvg "$$f" -o "$${f%.dot}.svg"; done
	$(GO) test -count=1 ./internal -run TestPackageDiagram

clean: ## remove bin/
	rm -rf bin

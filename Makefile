# bucky3 — see README.md. `make test` is the test command CI runs.
GO ?= go
# sdjournal builds the systemd_journal reader (cgo + libsystemd-dev).
TAGS ?= sdjournal

.PHONY: build deb test hostile backends check lint bench fuzz golden bench-compare clean

build:
	$(GO) build -tags '$(TAGS)' -o bin/bucky3 ./cmd/bucky3

# bin/bucky3_<version>_<arch>.deb: the binary, the hardened unit, its
# drop-ins, the sysctl file and the conffile (packaging/deb/build.sh).
deb:
	GO='$(GO)' TAGS='$(TAGS)' bash packaging/deb/build.sh bin

# The tests talk to real Prometheus, InfluxDB, VictoriaMetrics, Graphite,
# VictoriaLogs and Docker servers: backends installs them (idempotent, fast
# when warm).
test: backends
	$(GO) test -tags '$(TAGS)' -race -shuffle=on -timeout 20m ./...
	@# The zero-allocation tests are //go:build !race (the race detector
	@# allocates): they run here, without it. Their names contain "Alloc".
	$(GO) test -tags '$(TAGS)' -run 'Alloc' -count=1 ./...

backends:
	bash scripts/backends.sh install
	bash scripts/dockerd.sh install

# The hostile suite at full size (make test runs it small): the agent
# flooded by bad senders, its memory and accounting checked.
hostile: backends
	HOSTILE=full $(GO) test -tags '$(TAGS)' -run 'Hostile' -count=1 -v -timeout 60m ./cmd/bucky3

# golangci-lint is pinned and built from the module proxy into .cache/bin.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT = .cache/bin/golangci-lint-$(GOLANGCI_LINT_VERSION)

$(GOLANGCI_LINT):
	GOBIN=$(CURDIR)/.cache/bin/tmp $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv .cache/bin/tmp/golangci-lint $@

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

check: backends lint
	@# Only our files: .cache/ holds other projects' sources (bench peers).
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags '$(TAGS)' ./...
	$(GO) mod tidy -diff

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./parse ./aggregate ./io/... ./exporters/...

# Each fuzz target runs for FUZZTIME (go test allows one target per run).
FUZZTIME ?= 1m
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

golden:
	$(GO) test ./... -run Golden -update

# Head-to-head against statsd_exporter and Etsy statsd (bench/README.md);
# QUICK=1 for ~15 min. Not part of test or CI.
bench-compare:
	bash bench/compare.sh

clean:
	rm -rf bin

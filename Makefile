# tally: make run starts a node with NATS embedded (data in ./data),
# make test runs every test with the race detector.

GO            ?= go
BIN           := $(CURDIR)/bin
PROTOC_VERSION := 3.21.12
PROTOC_GEN_GO_VERSION := v1.36.12

.PHONY: run cluster test web-test web-test-run demo demo-screenshot fuzz build bench proto clean

# run builds the node and replaces the shell with it, so that Ctrl-C reaches
# the node alone: it stops gracefully and make reports no error.
run: build
	exec $(BIN)/tally-node --data ./data

# cluster runs three nodes in one cluster on loopback: clients on 4222,
# 4223 and 4224, routes on 6222-6224, data in ./data/n1..n3, each node's log
# lines prefixed with its name. Ctrl-C stops all three gracefully.
CLUSTER_ROUTES := 127.0.0.1:6222,127.0.0.1:6223,127.0.0.1:6224
cluster: build
	@trap ':' INT TERM; \
	for i in 1 2 3; do \
		$(BIN)/tally-node --name n$$i --data ./data/n$$i --listen 127.0.0.1:422$$((i + 1)) \
			--cluster 127.0.0.1:622$$((i + 1)) --routes $(CLUSTER_ROUTES) 2>&1 | sed -u "s/^/n$$i: /" & \
	done; \
	wait; wait

test:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	for os in darwin windows freebsd; do GOOS=$$os $(GO) build ./... || exit 1; done
	GOOS=windows $(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) web-test

# web-test builds the Web SDK (web/sdk) and runs its tests and the demo's
# browser test against real nodes; it installs the Node packages (npm ci)
# and Debian's chromium when they are missing. web/with-node.sh runs npm
# and node: the node on PATH when it is 20 or later, else the Node.js 20
# that web/node-runtime pins (its package-lock.json's integrity hashes
# checked), installed into web/.node; with no Node.js 20 to be had, web-test
# (and so test) fails. WEB_TESTS=skip skips the web tests, saying so.
NPM ?= npm
WITH_NODE := $(CURDIR)/web/with-node.sh
web-test: build
	@if [ "$(WEB_TESTS)" = skip ]; then \
		echo "make web-test: SKIPPED the Web SDK's and the browser's tests (WEB_TESTS=skip)"; \
	else $(MAKE) --no-print-directory web-test-run; fi

web-test-run: web/node_modules/.package-lock.json
	web/demo/install-chromium.sh
	cd web && TALLY_NODE=$(BIN)/tally-node $(WITH_NODE) $(NPM) test

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && $(WITH_NODE) $(NPM) ci --no-audit --no-fund

# demo serves the live-room demo (web/demo) on http://127.0.0.1:8080 with
# a node of its own; PORT=n picks another port.
demo: build web/node_modules/.package-lock.json
	cd web && TALLY_NODE=$(BIN)/tally-node exec $(WITH_NODE) node demo/server.js

# demo-screenshot takes docs/demo.png: the demo in two real Chromium windows
# (alice's and bob's, after their likes) on an Xvfb screen, grabbed with
# ImageMagick's import (web/demo/screenshot.js; installs Debian's xvfb,
# imagemagick and chromium when missing).
demo-screenshot: build web/node_modules/.package-lock.json
	web/demo/install-chromium.sh
	web/demo/install-screen.sh
	cd web && TALLY_NODE=$(BIN)/tally-node $(WITH_NODE) node demo/screenshot.js $(CURDIR)/docs/demo.png

# fuzz runs every fuzz target for FUZZTIME each (10s unless set); make test
# runs their seed corpora.
fuzz:
	.ci/fuzz

build:
	$(GO) build -o $(BIN)/tally-node ./cmd/node

# bench runs tally, Redis with Lua, NATS counters and the five nats-echo
# ceilings side by side in three client patterns (about 16 minutes on 2 cores;
# installs redis-server when missing) and writes docs/bench/.
bench:
	$(GO) run ./cmd/bench -out docs/bench $(BENCHFLAGS)

# proto regenerates messages/*.pb.go with pinned generators: protoc from
# Debian's protobuf-compiler (installed when missing) and protoc-gen-go.
proto: $(BIN)/protoc-gen-go
	@command -v protoc >/dev/null || { apt-get update && apt-get install -y protobuf-compiler; }
	@protoc --version | grep -q ' $(PROTOC_VERSION)$$' || \
		echo "warning: protoc is $$(protoc --version), messages/ was generated with $(PROTOC_VERSION)"
	PATH=$(BIN):$$PATH protoc --proto_path=messages --go_out=messages \
		--go_opt=paths=source_relative messages/tally.proto messages/cluster.proto

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

clean:
	rm -rf $(BIN)

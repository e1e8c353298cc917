# tally: make run starts a node with NATS embedded (data in ./data),
# make test runs every test with the race detector.

GO            ?= go
BIN           := $(CURDIR)/bin
PROTOC_VERSION := 3.21.12
PROTOC_GEN_GO_VERSION := v1.36.12

.PHONY: run cluster test fuzz build bench proto clean

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

# fuzz runs every fuzz target for FUZZTIME each (10s unless set); make test
# runs their seed corpora.
fuzz:
	.ci/fuzz

build:
	$(GO) build -o $(BIN)/tally-node ./cmd/node

# bench runs tally, Redis with Lua, NATS counters and the two nats-echo
# ceilings side by side (about 10 minutes on 2 cores; installs redis-server when
# missing) and writes docs/bench/.
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

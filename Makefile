# gluon-models: `make demo` runs the main job, `make test` the tests, `make bench` the benchmarks.
# The first call creates .venv at the repository root with the pinned requirements and builds
# the native operators into the package (pip install -e .).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export MXNET_SUBGRAPH_VERBOSE := 0

.PHONY: build test test-all demo bench graphviz clean

$(VENV)/.deps: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	touch $@

# Editable install (PEP 660) builds operators/ into gluon_models/; objects are cached in
# build/ops, so this is quick when nothing changed. setuptools only warns when an editable
# build step fails, hence the import check that follows.
build: $(VENV)/.deps
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import gluon_models, json; print('operators:', json.dumps(gluon_models.ops.info()))"

test: build
	$(PY) -m pytest -q

test-all: build
	$(PY) -m pytest -q -m "slow or not slow"

demo: build
	$(PY) tools/demo.py

bench: build
	$(PY) -m benchmarks.run

# graphviz's `dot` for tools/plot_network.py (the plot test skips without it). Needs root, or
# sudo, for apt-get; nothing else depends on it.
graphviz:
	@if command -v dot >/dev/null 2>&1; then echo "dot: $$(command -v dot)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q graphviz; \
	else echo "install graphviz (the dot program) with your package manager" >&2; exit 1; fi

clean:
	rm -rf build gluon_models/*.so *.egg-info

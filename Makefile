# gluon-models: `make demo` runs the main job, `make test` the tests, `make bench` the benchmarks.
# The first call creates .venv at the repository root with the pinned requirements and builds
# the native operators into the package (pip install -e .).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export MXNET_SUBGRAPH_VERBOSE := 0

.PHONY: build test test-all demo bench clean

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

clean:
	rm -rf build gluon_models/*.so *.egg-info

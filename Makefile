# Everything installs from nothing into .venv. torch and torchvision are pinned as a matching
# pair first, so that pip never mixes a CPU-only torch wheel with a CUDA torchvision wheel.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?= -q -m "not slow and not gpu" -n 2

.PHONY: install install-dev system-deps demo test lint bench clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_SPEC)
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml requirements/trackeval.txt
	$(PY) -m pip install -e .
	$(PY) -m pip install --no-deps -r requirements/trackeval.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.torch pyproject.toml requirements/trackeval.txt
	$(PY) -m pip install -e '.[dev]'
	$(PY) -m pip install --no-deps -r requirements/trackeval.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# apt-get installs Chromium (dashboard browser test) and PostgreSQL (store tests) only where
# missing; see scripts/system_deps.sh.
system-deps:
	scripts/system_deps.sh

demo: install
	$(VENV)/bin/fieldvision demo

test: install-dev system-deps
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: install
	$(PY) benchmarks/biomass_throughput.py
	$(PY) benchmarks/rerank_scale.py
	$(PY) benchmarks/reid_throughput.py --quick
	$(PY) benchmarks/tta_loop.py
	$(PY) benchmarks/export_speed.py --quick
	$(PY) benchmarks/flow_tracking.py
	$(PY) benchmarks/flow_store.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

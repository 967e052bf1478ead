# Quick start: `make demo` and `make test`, each doing its own set-up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean setup browser data

setup: $(STAMP)

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/h2learn demo

# The report's browser test renders it in Debian's Chromium; install it when missing
# (as root, or through sudo). Without it that one test is skipped outside CI.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get install -y -q chromium >/dev/null 2>&1; \
	  fi; true; }

# Debian's Fashion-MNIST (the full data set as gzipped IDX files): the tests that read the
# real files run where it is installed, and `h2learn reproduce` traces fmnist-conv on it.
data:
	@[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; \
	  fi; true; }

test: $(STAMP) browser data
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(PY) -m pip install -q snntorch
	$(PY) -m pip install -q --no-deps spikingjelly loguru
	$(PY) benchmarks/bench_training_step.py
	$(PY) benchmarks/bench_simulation.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

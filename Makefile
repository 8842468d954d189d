# Each target creates the virtual environment on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-quick demo bench bench-full clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# the same without the full-size forward passes (tests marked slow)
test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow"

# The demo's small step runs with jaxlib's XLA:CPU defaults, whatever the calibration of the
# full-size step chose (docs/performance.md has the measurement).
demo: $(STAMP)
	INPAINTJAX_XLA_CPU=default $(BIN)/python train.py --config configs/deepfill_v2.py:demo --workdir runs/demo
	INPAINTJAX_XLA_CPU=default $(BIN)/python eval.py --config configs/deepfill_v2.py:demo --workdir runs/demo

# Benchmarks (README "Benchmarks"): installs the bench extra (torch==2.13.0) for the side-by-side.
bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m inpaintjax.bench --reduced --torch

bench-full: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	mkdir -p runs
	$(BIN)/python -m inpaintjax.bench --torch --conv both --xla-cpu both --out runs/bench.jsonl

clean:
	rm -rf $(VENV) runs .pytest_cache

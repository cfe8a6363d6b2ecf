# `make demo`: set up .venv if needed and run the main job.
# `make test`: set up .venv if needed and run the test suite (the layers' tests a second time on
# the PyTorch path, RNNKIT_KERNEL=torch, so that both paths are tested; then the kernel's parity
# tests at every instruction-set level this CPU runs).
# `make bench`: the speed benchmarks (ratios against references in the same run).
# `make doctor`: the CPU, the kernel's build and auto's choices (`rnnkit doctor`).
# `make docs`: the documentation site (MkDocs Material + mkdocstrings) into site/, warnings as errors.
# `make check`: ruff (lint and format) on src, tests, benchmarks and examples, mypy on src.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rnnkit-installed
# The real station files used for tests and the demo, when the shared folder is there.
DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export KERAS_BACKEND := torch
ifneq ($(DATA_DIR),)
export RNNKIT_DATA_DIR ?= $(DATA_DIR)
endif

.PHONY: demo test bench setup clean doctor docs check

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,onnx,tensorboard,notebooks,sweep,docs,check]'
	$(BIN)/python -m rnnkit.doctor build
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rnnkit demo

test: $(STAMP)
	$(BIN)/python -m pytest -q
	RNNKIT_KERNEL=torch $(BIN)/python -m pytest -q tests/layers
	# the kernel's parity tests at every other instruction-set level this CPU runs (each its own build)
	for level in $$($(BIN)/python -m rnnkit.doctor levels); do \
		[ $$level = native ] || RNNKIT_KERNEL_ISA=$$level $(BIN)/python -m pytest -q tests/layers/test_kernel.py || exit 1; \
	done

doctor: $(STAMP)
	$(BIN)/rnnkit doctor

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

check: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy src

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_layers.py
	$(BIN)/python benchmarks/bench_load.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache site

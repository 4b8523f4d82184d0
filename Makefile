# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Built wheels are kept outside the clone so a second clone (or CI) reuses them.
WHEELS ?= $(HOME)/.cache/devloop/wheels
LLAMA_VERSION := 0.3.36
# Portable x86-64 build: llama.cpp's AMX kernels crash on CPUs whose kernel does not
# grant AMX tile state (seen here), so the native (-march=native) build is off.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_WHEEL_STAMP := $(WHEELS)/.llama-cpp-python-$(LLAMA_VERSION)
INSTALLED := $(VENV)/.installed
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run serve test install lint bench clean

run: install
	$(VENV)/bin/devloop

serve: install
	$(VENV)/bin/devloop serve

test: install node_modules/.package-lock.json
	$(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check devloop tests scripts
	$(VENV)/bin/lint-imports

install: $(INSTALLED)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(LLAMA_WHEEL_STAMP): | $(PY)
	mkdir -p $(WHEELS)
	@ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
		echo "Building llama-cpp-python $(LLAMA_VERSION) once (about 4-10 minutes)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PIP) wheel --no-deps --no-cache-dir llama-cpp-python==$(LLAMA_VERSION) -w $(WHEELS); }
	touch $@

# torch first, pinned: the CPU build on this machine's disk (an unpinned torch pulled in
# by llmlingua would be a CUDA build of several GB).
$(INSTALLED): pyproject.toml $(LLAMA_WHEEL_STAMP) | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install --find-links $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(PIP) install --find-links $(WHEELS) -e '.[test]'
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Benchmarks compare against LiteLLM proxy and Portkey's gateway, each in its own
# environment so neither touches the project's venv.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
PORTKEY_STAMP := .bench/node_modules/.package-lock.json

$(BENCH_STAMP):
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q 'litellm[proxy]==1.100.0' py-spy==0.4.3 pyinstrument==5.1.3
	touch $@

$(PORTKEY_STAMP): scripts/bench-node/package.json scripts/bench-node/package-lock.json
	mkdir -p .bench
	cp scripts/bench-node/package.json scripts/bench-node/package-lock.json .bench/
	npm ci --prefix .bench --no-audit --no-fund --loglevel=error
	touch $@

# BENCH_BASELINE: the devloop whose figures docs/benchmarks.md first recorded (2026-11-24),
# run interleaved with this one so "no slower than" is measured on the same load.
BENCH_BASELINE ?= a938a20

bench: install $(BENCH_STAMP) $(PORTKEY_STAMP)
	$(PY) scripts/bench_gateway.py --baseline $(BENCH_BASELINE)
	$(PY) scripts/bench_startup.py
	$(PY) scripts/bench_embedded.py
	$(PY) scripts/bench_ladder.py
	$(PY) scripts/bench_compression_rss.py --tokens 5000
	$(PY) scripts/bench_priority.py
	$(PY) scripts/bench_cache.py
	$(PY) scripts/bench_ledger.py
	$(PY) scripts/bench_targets.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache

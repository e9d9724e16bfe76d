# The README's two commands: `make demo` (the main job) and `make test`.
# Both create .venv on first use and install the locked dependency set
# (requirements/lock.txt, made by `make lock`) plus lta itself.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lta-installed
LOCK := requirements/lock.txt
HF_VENV ?= .venv-hf

.PHONY: demo test test-all install lock hf-env bench-train bench-decode \
	bench-decoder-train bench-decoder-decode

install: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lta needs Python >= 3.11; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lta.cli.pipeline

# Test files are spread over TEST_WORKERS processes (pytest-xdist); a file's
# tests share one process, so its module fixtures are built once. Files go
# out in collection order, where tests/conftest.py puts the longest first. The
# tests that run the HF peer (bench plumbing) are slow-marked: test-all.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30

test-all: $(STAMP) $(HF_VENV)/.installed
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Re-resolves the lock from pyproject.toml (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --extra test --universal \
	  --python-version 3.11 --generate-hashes -o $(LOCK)

# The HF peer (torch, transformers, peft) for bench/ and fixture scripts,
# in its own venv: lta's venv never has torch.
hf-env: $(HF_VENV)/.installed

$(HF_VENV)/.installed: requirements/hf-peer.txt
	$(PYTHON) -m venv $(HF_VENV)
	$(HF_VENV)/bin/python -m pip install --quiet -r requirements/hf-peer.txt
	touch $@

# The fair side-by-side benches (bench/README.md): lta and the HF peer in
# interleaved rounds, load recorded, loaded rounds repeated. Add
# BENCH_ARGS="--pin_cpu 1" for the 1-pinned-core variant.
BENCH_ARGS ?=
bench-train: $(STAMP) $(HF_VENV)/.installed
	$(PY) bench/bench_train.py $(BENCH_ARGS)

bench-decode: $(STAMP) $(HF_VENV)/.installed
	$(PY) bench/bench_decode.py $(BENCH_ARGS)

# The same, decoder-only: the Qwen2.5-0.5B shape, random weights that
# transformers makes, lta and HF peft / generate on them.
bench-decoder-train: $(STAMP) $(HF_VENV)/.installed
	$(PY) bench/bench_decoder_train.py $(BENCH_ARGS)

bench-decoder-decode: $(STAMP) $(HF_VENV)/.installed
	$(PY) bench/bench_decoder_decode.py $(BENCH_ARGS)

# The README's two commands: `make demo` and `make test`. Both create .venv and install the pinned set.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) setup.py | sha1sum | cut -c1-12)

.PHONY: install install-cuda12 install-cuda13 install-tpu test lint test-py312 demo demo-diffusion bench device-check clean

install: $(STAMP)

$(STAMP): $(LOCK) setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

# Lint first (ruff.toml), then the suite.
test: $(STAMP)
	$(PY) -m ruff check a2f_jax scripts tests
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check a2f_jax scripts tests

# Accelerator builds of the venv's JAX version (README: which to pick).
install-cuda12 install-cuda13 install-tpu: $(STAMP)
	$(PY) -m pip install -q "jax[$(subst install-,,$@)]==$$($(PY) -c 'import jax; print(jax.__version__)')"

# The same code on Python 3.12 with current JAX (0.11.x, as GPU images ship it): a fast subset of the suite.
# (pyenv's shim for python3.12 fails unless 3.12 is selected, so its install folder is tried first)
PYTHON312 ?= $(shell ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1 || true)
ifeq ($(PYTHON312),)
PYTHON312 := $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null)
endif
VENV312 := .venv312
LOCK312 := requirements-py312.lock
STAMP312 := $(VENV312)/.installed-$(shell cat $(LOCK312) setup.py | sha1sum | cut -c1-12)
PY312_TESTS := tests/test_ops_random.py tests/test_ops_dense.py tests/test_gru.py tests/test_gaussian_diffusion.py \
	tests/test_checkpoint.py tests/test_layers.py tests/test_audio_encoder.py tests/test_loop.py tests/test_caches.py \
	tests/test_onnx_export.py tests/test_mixed_precision.py tests/test_prefetch.py tests/test_fuzz_readers.py

$(STAMP312): $(LOCK312) setup.py
	@test -n "$(PYTHON312)" || { echo "error: python3.12 not found (set PYTHON312=/path/to/python3.12)"; exit 2; }
	test -x $(VENV312)/bin/python || $(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install -q -r $(LOCK312)
	$(VENV312)/bin/python -m pip install -q --no-deps -e .
	rm -f $(VENV312)/.installed-*
	touch $@

test-py312: $(STAMP312)
	$(VENV312)/bin/python -m pytest -q -p no:cacheprovider $(PY312_TESTS)

demo: $(STAMP)
	$(PY) scripts/demo.py --network regression

demo-diffusion: $(STAMP)
	$(PY) scripts/demo.py --network diffusion

bench: $(STAMP)
	$(PY) scripts/bench.py

# One prepared check of the machine's accelerator (README: GPUs and TPUs); JSON in bench_results/.
device-check: $(STAMP)
	$(PY) scripts/device_check.py

clean:
	rm -rf $(VENV) $(VENV312) .jax_cache .pytest_cache

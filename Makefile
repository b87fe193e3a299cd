# The README's two commands: `make demo` and `make test`. Both create .venv and install the pinned set.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) setup.py | sha1sum | cut -c1-12)

.PHONY: install test demo demo-diffusion bench clean

install: $(STAMP)

$(STAMP): $(LOCK) setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) scripts/demo.py --network regression

demo-diffusion: $(STAMP)
	$(PY) scripts/demo.py --network diffusion

bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache

# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv on a fresh machine and install forgeml into it; pip always goes
# through constraints.txt so that torch, when a later feature needs it, is the CPU wheel.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip install -c constraints.txt
export FORGEML_HOME ?= $(CURDIR)/forgeml-home

.PHONY: install demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -q -e ".[dev,neural]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/forgeml train sklearn://breast_cancer --target target --time-limit 30 --name breast-cancer

test: install
	$(PY) -m pytest -n 2 --dist loadfile -q

test-fast: install
	$(PY) -m pytest -n 2 --dist loadfile -q -m "not slow"

bench: install
	$(PY) benchmarks/bench_automl_vs_hgb.py
	$(PY) benchmarks/bench_overhead.py
	$(PY) benchmarks/bench_time_limit.py

clean:
	rm -rf $(VENV) forgeml-home .pytest_cache

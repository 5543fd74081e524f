# yarnit: `make demo` runs the end-to-end demo, `make test` the test suite.
# Both create .venv and install the project on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: install demo test chaos bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/yarnit demo --quick --days 3 --seed 0
	$(VENV)/bin/yarnit demo --days 30 --seed 0

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --durations=15 -m "not chaos"

# The heavy part of the chaos suite (tests/chaos, RELIABILITY.md targets 1-3): kill -9 at every
# fsync/rename boundary and at random moments, PostgreSQL and Redis stopped mid-run, killed loops.
chaos: $(STAMP)
	$(PY) -m pytest -q --durations=15 -m chaos tests/chaos

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .yarnit .pytest_cache build *.egg-info src/*.egg-info

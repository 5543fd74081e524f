# yarnit: `make demo` runs the end-to-end demo, `make test` the test suite.
# Both create .venv and install the project on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: install demo test chaos bench bench-docs audit security-demo clean

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

# Every benchmark with its peer (hours; BENCH="serving training" for a subset, BENCH_ARGS=--quick where
# scripts take it), then docs/benchmarks.md's generated summary; bench-docs regenerates it alone, running nothing.
# bench_replicas (and bench_backup's PostgreSQL half) need the servers: the local ones .ci/run uses, unless set
bench: export YARNIT_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
bench: export YARNIT_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { echo "bench: installing wrk (Debian package) for the throughput and soak benchmarks"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  echo "bench: could not install wrk; bench_replica_throughput and bench_serving_soak will fail"
	$(PY) benchmarks/run_all.py $(BENCH_ARGS) $(BENCH)

bench-docs: $(STAMP)
	$(PY) benchmarks/run_all.py --docs-only

# pip-audit over the installed dependencies, from its own venv; fails only on a vulnerability that has a fixed
# version (policy and the ignore list: .ci/audit.py); no network means "NOT AUDITED", never a failure
audit: $(STAMP)
	$(PYTHON) .ci/audit.py --project-python $(PY) --venv .venv-audit

# personal data never in logs, on a 10-day operate month (minutes of simulation, so not in `make test`)
security-demo: $(STAMP)
	YARNIT_SECURITY_DEMO=1 $(PY) -m pytest -q -p no:cacheprovider tests/security/test_pii_in_logs.py

clean:
	rm -rf $(VENV) .venv-audit .yarnit .pytest_cache build *.egg-info src/*.egg-info

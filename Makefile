# The two commands of the README: `make demo` (try it) and `make test` (test it).
# Both work as root on a fresh Debian 12 machine; `make test` installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test check lint typecheck unit testbed testbed-down bench clean

demo: $(VENV)/.base
	$(VENV)/bin/vfleet demo

test: testbed-apt $(VENV)/.test testbed
	VFLEET_REQUIRE_BACKENDS=1 $(PY) -m pytest -ra
	$(MAKE) --no-print-directory lint

# The suite without the real backends (they are skipped): quick feedback while coding.
unit: $(VENV)/.test
	$(PY) -m pytest -q

lint: $(VENV)/.test
	$(VENV)/bin/ruff check vfleet tests bench
	$(VENV)/bin/mypy

testbed-apt:
	testbed/setup-apt.sh

testbed: testbed-apt
	testbed/up.sh

testbed-down:
	testbed/down.sh

bench: $(VENV)/.test testbed
	$(PY) bench/status_scale.py

$(VENV)/.python:
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv)
	$(PYTHON) -m venv $(VENV)
	touch $@

$(VENV)/.base: $(VENV)/.python pyproject.toml
	$(PIP) install -e .
	touch $@

# libvirt-python builds from source against libvirt-dev (installed by testbed-apt).
$(VENV)/.test: $(VENV)/.python pyproject.toml
	$(PIP) install -e '.[test]'
	touch $@ $(VENV)/.base

clean:
	rm -rf $(VENV) .testbed .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README: `make demo` (try it) and `make test` (test it).
# Both work as root on a fresh Debian 12 machine; `make test` installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint unit testbed testbed-apt testbed-down xen-fixtures bench clean

demo: $(VENV)/.base
	$(VENV)/bin/vfleet demo

test: testbed-apt $(VENV)/.test testbed
	VFLEET_REQUIRE_BACKENDS=1 $(PY) -m pytest -ra
	$(MAKE) --no-print-directory lint

# Quick feedback while coding: whatever backends are up are used, missing ones are
# skipped, and the real Xen host (a 2-4 minute boot) is left out.
unit: $(VENV)/.test
	VFLEET_SKIP_XEN=1 $(PY) -m pytest -q

lint: $(VENV)/.test
	$(VENV)/bin/ruff check vfleet tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

testbed-apt:
	testbed/setup-apt.sh

testbed: testbed-apt
	testbed/up.sh

testbed-down:
	testbed/down.sh
	testbed/xen-down.sh

# Re-record tests/fixtures/xen/ from the real Xen dom0 (boots it if needed).
xen-fixtures:
	testbed/xen-up.sh
	testbed/xen-fixtures.sh

bench: $(VENV)/.test testbed
	$(PY) bench/status_scale.py
	$(PY) bench/bulk_actions.py
	$(PY) bench/tui_table.py
	$(PY) bench/terminal_bytes.py
	$(PY) bench/sanitize.py
	$(PY) bench/audit_append.py
	$(PY) bench/engine_recovery.py
	$(PY) bench/faults.py
	$(PY) bench/export.py
	$(PY) bench/prom_source.py
	$(PY) bench/history.py
	$(PY) bench/startup.py
	$(PY) bench/scale.py
	$(PY) bench/snapshot_facts.py

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

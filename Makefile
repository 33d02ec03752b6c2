# The two set-up commands of the README: `make demo` and `make test`. Both create the virtual
# environment on first use; every pip call uses constraints-cpu.txt so torch stays the CPU build.
PYTHON ?= python3
VENV := .venv
export PIP_CONSTRAINT := $(CURDIR)/constraints-cpu.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test setup clean

$(VENV)/.installed: setup.cfg pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/demo --output demo_output

# Two workers (pytest-xdist) for the two cores of CI, one torch thread each; the slow tests start
# first, longest first (tests/conftest.py).
test: setup
	$(VENV)/bin/python -m pytest -q -n 2 --durations=15

clean:
	rm -rf $(VENV) demo_output

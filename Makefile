# Two commands: `make run` starts the whole stack, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test lint prometheus clean

# The chaos tests run a real Prometheus: Debian's package, installed when it is missing. Its
# service is kept from starting (a policy-rc.d for the length of the install, where there is
# none), so no system Prometheus is left on :9090. apt-get update runs only if the install fails.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HAS_PROMETHEUS ?= command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]
define INSTALL_PROMETHEUS
echo "installing Prometheus (Debian package prometheus) for the chaos tests"; \
policy=/usr/sbin/policy-rc.d; added=; \
if [ ! -e $$policy ]; then \
	printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null && $(SUDO) chmod 755 $$policy && added=1; \
fi; \
get() { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; \
get || { $(SUDO) apt-get update -qq >/dev/null && get; }; status=$$?; \
[ -z "$$added" ] || $(SUDO) rm -f $$policy; \
exit $$status
endef

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/crucible dev --demo

lint: install-test
	$(BIN)/ruff check crucible tests bench examples worker.py
	$(BIN)/ruff format --check crucible tests bench examples worker.py
	$(BIN)/mypy

prometheus:
	@$(HAS_PROMETHEUS) || { $(INSTALL_PROMETHEUS); }

test: lint prometheus
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

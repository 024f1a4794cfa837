# The two set-up commands are `make run` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-packages run test lint format bench scenario clean

install: $(STAMP) system-packages

# Re-installs only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# The servers the local stack runs (make run, make test): PostgreSQL, Redis and RabbitMQ from
# Debian's packages. Missing ones are installed when we are root with apt-get, without
# starting the system's own copies (policy-rc.d); otherwise they are named and make stops.
system-packages:
	@missing=""; \
	{ [ -n "$$PG_BIN" ] || command -v pg_config >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
		|| missing="$$missing postgresql"; \
	{ [ -n "$$REDIS_SERVER" ] || command -v redis-server >/dev/null; } || missing="$$missing redis-server"; \
	{ [ -n "$$RABBITMQ_SERVER" ] || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null; } \
		|| missing="$$missing rabbitmq-server"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "missing system packages:$$missing (install them, or set PG_BIN, REDIS_SERVER, RABBITMQ_SERVER)" >&2; exit 1; \
	fi; \
	echo "installing$$missing"; \
	guard=""; [ -e /usr/sbin/policy-rc.d ] || { guard=/usr/sbin/policy-rc.d; \
		printf '#!/bin/sh\nexit 101\n' > $$guard && chmod +x $$guard; }; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	status=$$?; [ -z "$$guard" ] || rm -f $$guard; exit $$status

run: install
	$(BIN)/python -m devstack serve

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every part, or some: make bench [PARTS="http data"] [QUICK=1: the smoke test] [CHECK=1: exit 1
# on a missed target]. Tables on stdout; reports/bench/: JSON, a chart per part, index.html.
bench: install
	$(BIN)/python -m loadtests bench $(PARTS) $(if $(filter 1 yes true,$(QUICK)),--quick) \
		$(if $(filter 1 yes true,$(CHECK)),--check)

# One load-plus-fault scenario: make scenario NAME=upstream-outage [SCALE=0.3]
scenario: install
	@test -n "$(NAME)" || { echo "usage: make scenario NAME=<name> [SCALE=F]; names:"; \
		$(BIN)/python -m loadtests scenario list; exit 2; }
	$(BIN)/python -m loadtests scenario run $(NAME) --scale $(or $(SCALE),1)

clean:
	rm -rf $(VENV) .stack reports .pytest_cache .ruff_cache .mypy_cache

# The two set-up commands are `make run` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# The locks: every package at one version, with its hashes, compiled from pyproject.toml's
# ranges by `make lock`. The service's image installs the first, make install the second.
SERVICE_LOCK := requirements/service.txt
DEV_LOCK     := requirements/dev.txt

.PHONY: install system-packages lock run test lint format image bench scenario clean

install: $(STAMP) system-packages

# Re-installs only when pyproject.toml or the dev lock changed since the last install. The
# lock holds every dependency, hashed (pip refuses a file whose hash differs, or a package
# the lock does not pin); then the project itself, editable, with nothing more.
$(STAMP): pyproject.toml $(DEV_LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes -r $(DEV_LOCK)
	$(PIP) install --quiet --no-deps -e .
	@touch $(STAMP)

# Compiles the locks again from pyproject.toml (after a range or a dependency changed there;
# commit all three). A version already locked stays while its range allows it; UPGRADE=1
# takes the newest of every package, UPGRADE="django redis" of those named. For CPython 3.11
# on x86-64 Linux (the image's and CI's), whatever runs the command. The service lock is
# constrained by the dev lock: the image ships the versions the tests ran.
LOCK = $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --no-strip-markers \
	--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	--custom-compile-command 'make lock' \
	$(if $(filter 1 yes true,$(UPGRADE)),--upgrade,$(UPGRADE:%=--upgrade-package %))

lock: $(BIN)/uv
	@mkdir -p $(dir $(DEV_LOCK))
	$(LOCK) --extra dev --output-file $(DEV_LOCK)
	$(LOCK) --extra service --constraint $(DEV_LOCK) --output-file $(SERVICE_LOCK)

# uv alone, at the version the dev lock pins, so that a lock broken by a merge can still be
# compiled again (make install would refuse it).
$(BIN)/uv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$$(grep -m1 -o '^uv==[^ ]*' $(DEV_LOCK) 2>/dev/null || echo uv)"

# The servers the local stack runs (make run, make test): PostgreSQL, Redis, RabbitMQ, etcd
# (Patroni's store, for STACK_HA=patroni) and HAProxy (STACK_INSTANCES) from Debian's
# packages. Missing ones are installed when we are root with apt-get, without starting the
# system's own copies (policy-rc.d); otherwise they are named and make stops.
system-packages:
	@missing=""; \
	{ [ -n "$$PG_BIN" ] || command -v pg_config >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
		|| missing="$$missing postgresql"; \
	{ [ -n "$$REDIS_SERVER" ] || command -v redis-server >/dev/null; } || missing="$$missing redis-server"; \
	{ [ -n "$$RABBITMQ_SERVER" ] || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null; } \
		|| missing="$$missing rabbitmq-server"; \
	{ [ -n "$$ETCD_BIN" ] || command -v etcd >/dev/null; } || missing="$$missing etcd-server"; \
	{ [ -n "$$HAPROXY" ] || command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; } || missing="$$missing haproxy"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "missing system packages:$$missing (install them, or set PG_BIN, REDIS_SERVER, RABBITMQ_SERVER, ETCD_BIN, HAPROXY)" >&2; exit 1; \
	fi; \
	echo "installing$$missing"; \
	guard=""; [ -e /usr/sbin/policy-rc.d ] || { guard=/usr/sbin/policy-rc.d; \
		printf '#!/bin/sh\nexit 101\n' > $$guard && chmod +x $$guard; }; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	status=$$?; [ -z "$$guard" ] || rm -f $$guard; exit $$status

run: install
	$(BIN)/python -m devstack serve

# Two pytest-xdist processes: one runs the tests that mostly wait beside the scenario lanes,
# the other every other module (tests/fix_scenarios.py). TEST_WORKERS=0 runs it in one.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The service's image, resilient-django:local, on a base made from Debian's packages (no
# image registry needed); prints its size. A dockerd of its own is started for the build
# and stopped after it, unless DOCKER_HOST names an engine. Caches outside the checkout, in
# IMAGE_CACHE_DIR (/var/cache/resilient-django): see docs/image.md.
image: install
	$(BIN)/python -m devstack.image

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

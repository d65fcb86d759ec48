# The two set-up commands (README): `make run` and `make test`. Everything either needs comes from
# the package registries (PyPI, npm, Debian) through this file.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test soak lint typecheck unit bench bench-quick bench-tools debian-tools s3-tools clean

run: $(VENV)/.installed
	$(VENV)/bin/cargohold up

test: $(VENV)/.installed-test node_modules/.installed debian-tools s3-tools
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest

# tests/system/test_load.py for 5 minutes instead of 20 s (200 locust users against the real server); it prints
# p50/p99 and throughput. SOAK_SECONDS=N for another length.
SOAK_SECONDS ?= 300
soak: $(VENV)/.installed-test
	CARGOHOLD_LOAD_SECONDS=$(SOAK_SECONDS) $(PY) -m pytest tests/system/test_load.py -p no:cacheprovider

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests bench

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

# Every benchmark under bench/, one after the other; their figures go into docs/PERFORMANCE.md (the generated
# block only). bench-quick: each with its small options, a few minutes in all.
bench: $(VENV)/.installed-test node_modules/.installed debian-tools bench-tools
	$(PY) bench/report.py

bench-quick: $(VENV)/.installed-test node_modules/.installed debian-tools bench-tools
	$(PY) bench/report.py --quick

# What bench/cache.py and bench/migrate.py compare against, kept out of the project's venv: wrk, nginx
# and rclone from Debian, and thumbor (its pins conflict with the project's) in a venv of its own under .bench/;
# py-spy (the benchmarks' --py-spy profiles) in another.
THUMBOR_VENV := .bench/thumbor-venv
PYSPY_VENV := .bench/py-spy-venv

bench-tools: $(THUMBOR_VENV)/.installed $(PYSPY_VENV)/.installed
	@if ! command -v wrk >/dev/null || ! command -v rclone >/dev/null || \
		! { command -v nginx >/dev/null || test -x /usr/sbin/nginx; }; then \
		echo "installing wrk, rclone and nginx-light from Debian"; \
		apt-get update -qq && apt-get install -y -qq wrk rclone nginx-light >/dev/null; fi
	@$(THUMBOR_VENV)/bin/python -c 'import importlib.metadata as m; print("thumbor", m.version("thumbor"))'

$(PYSPY_VENV)/.installed:
	$(PYTHON) -m venv $(PYSPY_VENV)
	$(PYSPY_VENV)/bin/python -m pip --disable-pip-version-check -q install py-spy
	touch $@

$(THUMBOR_VENV)/.installed:
	$(PYTHON) -m venv $(THUMBOR_VENV)
	$(THUMBOR_VENV)/bin/python -m pip --disable-pip-version-check -q install thumbor
	touch $@

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "cargohold needs Python 3.11 or newer: run make with PYTHON=python3.11 (or newer)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[test]'
	touch $(VENV)/.installed $@

# Azurite (the Azure Blob emulator) comes from the npm registry, pinned by package-lock.json.
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "installing Node.js and npm from Debian"; \
		apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Servers the tests start themselves, from Debian: Chromium for the web UI tests (driven by Playwright;
# never `playwright install`, which downloads), nginx for the front of the replicas, PostgreSQL for the
# scale-out catalog. Only what is missing is installed.
debian-tools:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx-light"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then echo "installing from Debian:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# The S3 endpoint's conformance suite (Ceph's s3-tests, third_party/s3-tests: ORIGIN.md says from where)
# and the S3 clients its tests drive that pin their own botocore (s3fs), each in a venv of its own under .s3/ so
# that their pins never constrain the project's; rclone from Debian.
S3TESTS_DIR ?= third_party/s3-tests
S3TESTS_VENV := .s3/s3tests-venv
S3CLIENTS_VENV := .s3/clients-venv

s3-tools: $(S3CLIENTS_VENV)/.installed
	@command -v rclone >/dev/null || { echo "installing rclone from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null; }
	@if [ -f "$(S3TESTS_DIR)/requirements.txt" ]; then $(MAKE) -s $(S3TESTS_VENV)/.installed; \
		else echo "no S3 conformance suite at $(S3TESTS_DIR): tests/s3/test_conformance.py will skip (set S3TESTS_DIR)"; fi

$(S3TESTS_VENV)/.installed: $(S3TESTS_DIR)/requirements.txt
	$(PYTHON) -m venv $(S3TESTS_VENV)
	$(S3TESTS_VENV)/bin/python -m pip --disable-pip-version-check -q install -r $(S3TESTS_DIR)/requirements.txt pytest
	touch $@

$(S3CLIENTS_VENV)/.installed:
	$(PYTHON) -m venv $(S3CLIENTS_VENV)
	$(S3CLIENTS_VENV)/bin/python -m pip --disable-pip-version-check -q install s3fs pytest httpx
	touch $@

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .s3

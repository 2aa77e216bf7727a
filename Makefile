# The two commands of the README: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.dev-installed-stamp
PYTEST_ARGS ?=

.PHONY: install install-dev run test unit integration bench eval loadtest lint clean

# The product alone (what `make run` needs): no test, bench or lint tools.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

# The dev extra on top (tests, benchmarks, load test, linters).
$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

## Run the whole pipeline on embedded defaults (local broker + SQLite in ./data) until Ctrl-C.
run: $(STAMP)
	$(BIN)/feedback up

## The full test suite (unit + integration against real services).
test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(DEV_STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: $(DEV_STAMP)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

## Throughput and latency benchmark with a passthrough baseline (see README); code in tests/bench/.
bench: $(DEV_STAMP)
	$(BIN)/python -m tests.bench bench

## Sentiment evaluation on human-labelled data shipped in public packages (docs/evaluation.md).
## Downloads them into $(EVAL_CACHE) (not committed); TUNE=1 refits the ensemble on the tune split first.
EVAL_CACHE ?= $(or $(TMPDIR),/tmp)/feedback-eval-data
eval: $(STAMP)
	$(BIN)/python -m processors.eval_run --cache $(EVAL_CACHE) --json $(EVAL_CACHE)/results.json $(if $(TUNE),--tune)

## Five minutes of sustained HTTP load (wrk) while the pipeline drains into PostgreSQL.
loadtest: $(DEV_STAMP)
	$(BIN)/python -m tests.bench loadtest --duration $${LOADTEST_SECONDS:-300}

lint: $(DEV_STAMP)
	$(BIN)/ruff check pipeline connectors processors sinks tests
	$(BIN)/mypy pipeline connectors processors sinks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.dev-installed-stamp
PYTEST_ARGS ?=

.PHONY: install install-dev run test test-kafka lock audit unit integration bench eval alert-eval loadtest lint clean

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

## The full test suite (unit + integration against real services): everything on the embedded broker,
## then the delivery tests on Apache Kafka 4.x (and the failover test on a three-broker cluster), then a
## smoke leg on Apache Kafka 3.9. Java 17 + Maven resolve Kafka once (python -m pipeline.kafka_broker fetch).
KAFKA_TESTS ?= tests/integration/test_spine.py tests/integration/test_chaos.py tests/integration/test_scale_out.py \
	tests/integration/test_faults.py tests/integration/test_signals_pipeline.py tests/integration/test_alert_sink.py \
	tests/integration/test_tickets_poller.py tests/integration/test_email_imap.py tests/integration/test_backfill.py \
	tests/integration/test_kafka_failover.py \
	tests/integration/test_up.py::test_up_on_apache_kafka_keeps_its_data_across_restarts
KAFKA_COMPAT_VERSION ?= 3.9.1
## The two legs run side by side (most of the suite waits on windows, timers and restarts rather than on the
## CPU); the Kafka leg's output is printed when both are done, and either failing fails the target.
KAFKA_LEG_LOG ?= $(or $(TMPDIR),/tmp)/feedback-kafka-leg.log
test: $(DEV_STAMP)
	@FEEDBACK_TEST_WAREHOUSES=postgresql $(BIN)/python -m pytest --broker=kafka $(KAFKA_TESTS) $(PYTEST_ARGS) \
		> $(KAFKA_LEG_LOG) 2>&1 & kafka=$$!; \
	$(BIN)/python -m pytest $(PYTEST_ARGS); tansu=$$?; \
	wait $$kafka; kafka_rc=$$?; \
	echo "---- the Apache Kafka leg ----"; cat $(KAFKA_LEG_LOG); \
	echo "embedded-broker leg: exit $$tansu; Apache Kafka leg: exit $$kafka_rc"; \
	test $$tansu -eq 0 && test $$kafka_rc -eq 0
	FEEDBACK_TEST_WAREHOUSES=postgresql $(BIN)/python -m pytest --broker=kafka --kafka-version=$(KAFKA_COMPAT_VERSION) \
		tests/integration/test_spine.py $(PYTEST_ARGS)

## One leg only: the integration tests on Apache Kafka (BROKER_TESTS to choose the files).
test-kafka: $(DEV_STAMP)
	$(BIN)/python -m pytest --broker=kafka $(or $(BROKER_TESTS),$(KAFKA_TESTS)) $(PYTEST_ARGS)

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

## Score signals' detection delay and false alarms by volume (docs/alerts.md); 22 min on a loaded 2-core machine.
alert-eval: $(DEV_STAMP)
	$(BIN)/python -m tests.bench.score_backtest --seeds 10 --months 4

## Five minutes of sustained HTTP load (wrk) while the pipeline drains into PostgreSQL.
loadtest: $(DEV_STAMP)
	$(BIN)/python -m tests.bench loadtest --duration $${LOADTEST_SECONDS:-300}

## ruff, mypy, and the import rules of .importlinter (kernel <- components; components independent; no cycles).
lint: $(DEV_STAMP)
	$(BIN)/ruff check pipeline connectors processors sinks tests
	$(BIN)/mypy pipeline connectors processors sinks
	$(BIN)/lint-imports

## The runtime dependencies pinned with their hashes (pip-tools), and a vulnerability audit of that lock
## file (pip-audit against PyPI's advisory data: needs that service reachable; see docs/security.md).
lock: $(DEV_STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-find-links \
		--output-file=requirements.lock pyproject.toml

audit: $(DEV_STAMP)
	$(BIN)/pip-audit --strict --disable-pip --require-hashes -r requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

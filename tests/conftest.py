"""Shared test helpers. Under CI=true a missing service fails the test instead of skipping it."""

from __future__ import annotations

import os

import pytest

#: The customer-hash key of every test (FEEDBACK_CUSTOMER_HASH_KEY, customer_hash_key=): at least 32 bytes and
#: not a placeholder, as pipeline.keys requires. One constant, so no test invents a weak key of its own.
TEST_CUSTOMER_KEY = "5c0e8a3f71d94b26e0a7c3f9d1b58e42a6f0c2d7b9e13a85c4f6d0e2b7a91c38"


def require(condition: bool, what: str) -> None:
    """Fail (CI) or skip (a developer's machine) when a required service or tool is missing."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required service missing: {what}", pytrace=False)
    pytest.skip(f"service missing: {what}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("feedback", "the broker the integration tests run against")
    group.addoption(
        "--broker", choices=("tansu", "kafka"), default=os.environ.get("FEEDBACK_TEST_BROKER", "tansu"),
        help="tansu: the embedded broker (default); kafka: Apache Kafka from Maven Central (Java 17)",
    )
    group.addoption(
        "--kafka-version", default=os.environ.get("FEEDBACK_TEST_KAFKA_VERSION", ""),
        help="Apache Kafka version for --broker=kafka (default: pipeline.kafka_broker.DEFAULT_VERSION)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tansu_only: exercises the embedded broker itself (its restart forgets "
                                       "every topic); not run with --broker=kafka")
    config.addinivalue_line("markers", "kafka_only: needs Apache Kafka (a cluster, failover); not run on tansu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = config.getoption("--broker")
    for item in items:
        if chosen == "kafka" and item.get_closest_marker("tansu_only"):
            item.add_marker(pytest.mark.skip(reason="embedded-broker behaviour (runs in the tansu leg)"))
        if chosen == "tansu" and item.get_closest_marker("kafka_only"):
            item.add_marker(pytest.mark.skip(reason="needs Apache Kafka (runs in the kafka leg)"))


@pytest.fixture(scope="session", autouse=True)
def _private_user_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`feedback up` records its data location in the user's config folder: the tests use their own, so
    they neither read nor overwrite the developer's (every child process inherits the variable)."""
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))

"""The state store on SQLite and PostgreSQL, and migration 0011 keeping the e-mail checkpoints."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, inspect, text

from pipeline.state import SqlStateStore
from sinks.warehouse.db import make_engine, migrate

# the fixture fresh_engine: an empty SQLite file or a new PostgreSQL schema
from tests.integration.test_alembic_check import fresh_engine  # noqa: F401

pytestmark = pytest.mark.integration


def test_save_is_atomic_per_call_and_survives_a_new_engine(fresh_engine: Engine) -> None:  # noqa: F811
    engine = fresh_engine
    store = SqlStateStore(engine)
    store.setup()
    store.setup()  # idempotent
    store.save("zendesk:acme", {"cursor": {"cursor": "c1", "updated_at": 1.5}})
    store.save("email:a@x", {"INBOX": {"uidvalidity": 7, "last_uid": 3}, "Support": {"uidvalidity": 9, "last_uid": 1}})
    store.save("email:a@x", {"INBOX": {"uidvalidity": 7, "last_uid": 10}})  # an upsert, not a second row
    again = SqlStateStore(make_engine(engine.url.render_as_string(hide_password=False)))
    assert again.get("zendesk:acme", "cursor") == {"cursor": "c1", "updated_at": 1.5}
    assert again.items("email:a@x") == {"INBOX": {"uidvalidity": 7, "last_uid": 10},
                                        "Support": {"uidvalidity": 9, "last_uid": 1}}
    assert again.get("email:a@x", "Archive") is None
    again.delete("email:a@x", "Support")
    assert set(again.items("email:a@x")) == {"INBOX"}
    again.engine.dispose()


def test_concurrent_setups_and_saves_do_not_fail(fresh_engine: Engine) -> None:  # noqa: F811
    engine = fresh_engine
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            store = SqlStateStore(engine)
            store.setup()
            for i in range(20):
                store.save(f"ns{n}", {"cursor": {"i": i}})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert [SqlStateStore(engine).get(f"ns{n}", "cursor") for n in range(4)] == [{"i": 19}] * 4


def test_migration_0011_moves_the_email_checkpoints_into_the_state_store(fresh_engine: Engine) -> None:  # noqa: F811
    engine = fresh_engine
    migrate(engine, "0002_email")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO email_checkpoints (account, folder, uidvalidity, last_uid, updated_at) "
                          "VALUES ('support@example.com', 'INBOX', 1700000000, 4242, CURRENT_TIMESTAMP), "
                          "('support@example.com', 'Escalations', 12, 7, CURRENT_TIMESTAMP)"))
    # a source started first and created the table (its own cursor must survive the migration)
    SqlStateStore(engine).setup()
    SqlStateStore(engine).save("zendesk:acme", {"cursor": {"cursor": "c9"}})
    migrate(engine)
    store = SqlStateStore(engine)
    assert store.items("email:support@example.com") == {
        "INBOX": {"uidvalidity": 1700000000, "last_uid": 4242}, "Escalations": {"uidvalidity": 12, "last_uid": 7}}
    assert store.get("zendesk:acme", "cursor") == {"cursor": "c9"}
    assert inspect(engine).has_table("email_checkpoints")  # kept for a downgrade
    migrate(engine)  # idempotent
    assert len(store.items("email:support@example.com")) == 2

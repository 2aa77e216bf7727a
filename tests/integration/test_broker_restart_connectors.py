"""The embedded broker restarts (empty) under a running e-mail connector: the connector keeps its
checkpoint, retries until the broker is back, and nothing is lost or stored twice."""

from __future__ import annotations

import pytest

from tests.bench import email_samples as samples
from tests.bench.email_samples import wire
from tests.integration import dovecot as dv
from tests.integration.conftest import start_broker, stop_broker
from tests.integration.harness import Pipeline, wait_for
from tests.integration.test_email_imap import Connector

pytestmark = [pytest.mark.integration, pytest.mark.tansu_only]


def test_email_connector_resumes_from_its_checkpoint_after_a_broker_restart(
        restartable: tuple[Pipeline, int], dovecot: dv.Dovecot) -> None:
    p, port = restartable
    user = dovecot.add_user("brokerrestart")
    before = [wire(samples.plain(f"before the restart {i}", msgid=f"<before-{i}@restart.example>"))
              for i in range(20)]
    dovecot.append(user, before)
    connector = Connector(p, dovecot, user).start()
    try:
        wait_for(lambda: p.count("source_ref LIKE 'before-%@restart.example'") == 20, 90, what="mail before")
        checkpoint = connector.checkpoint()
        assert checkpoint is not None and checkpoint[1] >= 20

        stop_broker(p)
        after = [wire(samples.plain(f"after the restart {i}", msgid=f"<after-{i}@restart.example>"))
                 for i in range(20)]
        dovecot.append(user, after)  # arrives while the broker is down
        wait_for(lambda: "Traceback" in connector.log() or connector.log().count("retry") >= 1
                 or connector.metric("feedback_email_connection_errors_total") >= 1, 60,
                 what="the connector noticing the broker is gone")
        assert connector.checkpoint() == checkpoint, "the checkpoint must not move without broker acks"
        start_broker(p, port)

        wait_for(lambda: p.count("source_ref LIKE 'after-%@restart.example'") == 20, 120, what="mail after")
        assert p.count("source_ref LIKE '%@restart.example'") == 40
        assert connector.proc is not None and connector.proc.poll() is None, connector.log()
        final = connector.checkpoint()
        assert final is not None and final[1] >= 40
    finally:
        connector.stop()

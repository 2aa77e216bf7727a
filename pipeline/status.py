"""``feedback status``: every component's health, readiness, consumer lag and errors, the broker, the data.

It asks the endpoints every component already serves (``/healthz``, ``/readyz``, ``/metrics``), so the same
command works against ``feedback up`` on this machine (the ports come from the settings, as ``feedback up``
assigns them) and against a remote deployment (``--endpoint NAME=URL``, repeatable, replaces the local list).

Guarantees: it never starts, creates or changes anything; a component that does not answer is reported as
``down`` (never an exception); the result is a plain dict list (``--json``) and the exit code is 1 when any
listed component or the broker is not ready.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import ProcessorSettings, SinkSettings, UpSettings, load
from pipeline.signal_config import AlertSettings

TIMEOUT = 3.0
#: counters whose sum is shown as a component's errors (what its operator would look at first)
ERROR_SUFFIXES = ("_errors_total", "_failures_total", "_dead_letters_total", "_rejected_total")


@dataclass
class ComponentStatus:
    """What one component's endpoints said."""

    name: str
    url: str
    healthy: bool = False
    ready: bool = False
    lag: float | None = None
    errors: float | None = None
    error_counters: dict[str, float] = field(default_factory=dict)
    detail: str = ""


def local_endpoints(settings: UpSettings) -> dict[str, str]:
    """The endpoints of a `feedback up` on this machine with these settings (worker n on port + 100 n)."""
    processor = load(ProcessorSettings).metrics_port
    # with FEEDBACK_HTTP_INTERNAL_PORT the HTTP service answers /metrics there only (/readyz on both)
    found = {"http": f"http://127.0.0.1:{settings.http_internal_port or settings.http_port}",
             "sink": f"http://127.0.0.1:{load(SinkSettings).metrics_port}",
             "alerts": f"http://127.0.0.1:{load(AlertSettings).metrics_port}"}
    for n in range(settings.processor_worker_count):
        found["processor" if n == 0 else f"processor-{n}"] = f"http://127.0.0.1:{processor + 100 * n}"
    return found


def _metrics(body: str, status: ComponentStatus) -> None:
    lag = 0.0
    seen_lag = False
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "feedback_consumer_lag" and not math.isnan(sample.value):
                lag += sample.value
                seen_lag = True
            elif sample.name.startswith("feedback_") and sample.name.endswith(ERROR_SUFFIXES) and sample.value:
                status.error_counters[sample.name] = status.error_counters.get(sample.name, 0.0) + sample.value
    status.lag = lag if seen_lag else None
    status.errors = sum(status.error_counters.values())


def probe(name: str, url: str, client: httpx.Client) -> ComponentStatus:
    status = ComponentStatus(name, url)
    try:
        status.healthy = client.get(f"{url}/healthz").status_code == 200
        ready = client.get(f"{url}/readyz")
        status.ready = ready.status_code == 200
        if not status.ready:
            status.detail = ready.text[:200].strip()
        metrics = client.get(f"{url}/metrics")
        if metrics.status_code == 200:
            _metrics(metrics.text, status)
    except httpx.HTTPError as exc:
        status.detail = f"down ({type(exc).__name__})"
    return status


def broker_status(settings: UpSettings) -> dict[str, Any]:
    """Whether the bootstrap servers answer, and how many brokers the cluster lists."""
    from kafka.admin import KafkaAdminClient

    from pipeline.broker import port_open

    hosts = [h.strip().rpartition(":") for h in settings.bootstrap.split(",") if h.strip()]
    reachable = [f"{h}:{p}" for h, _, p in hosts if p.isdigit() and port_open(h, int(p))]
    result: dict[str, Any] = {"bootstrap": settings.bootstrap, "reachable": reachable, "brokers": None,
                              "ready": False}
    if not reachable:
        return result
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=5000,
                                 **settings.kafka_client_options())
        try:
            result["brokers"] = len(admin.describe_cluster().get("brokers", []))
        finally:
            admin.close()
        result["ready"] = bool(result["brokers"])
    except Exception as exc:  # any client failure is "not ready", with its words
        result["detail"] = str(exc)[:200]
    return result


def collect(settings: UpSettings, endpoints: dict[str, str] | None = None) -> dict[str, Any]:
    """The whole status: components, broker, and where the data lives."""
    targets = endpoints or local_endpoints(settings)
    with httpx.Client(timeout=TIMEOUT) as client:
        components = [probe(name, url.rstrip("/"), client) for name, url in targets.items()]
    return {
        "components": [asdict(c) for c in components],
        "broker": broker_status(settings),
        "data_dir": str(settings.data_dir),
        "warehouse": _without_password(settings.database_url),
    }


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: show nothing of it rather than a secret
        return "(unreadable URL)"


def all_ready(result: dict[str, Any]) -> bool:
    return bool(result["broker"]["ready"]) and all(c["ready"] for c in result["components"])

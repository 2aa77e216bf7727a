"""Prometheus metrics, all named ``feedback_*``; one ``/metrics`` endpoint per process."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

RECEIVED = Counter("feedback_received_total", "Inputs received by a connector.", ["source"])
ACCEPTED = Counter("feedback_accepted_total", "Records accepted and acknowledged by the broker.", ["source"])
REJECTED = Counter(
    "feedback_rejected_total", "Inputs rejected by a connector (4xx or skipped).", ["source", "reason"]
)
PUBLISHED = Counter("feedback_published_total", "Records the broker acknowledged.", ["topic"])
PUBLISH_ERRORS = Counter("feedback_publish_errors_total", "Records the broker did not take.", ["topic"])
PROCESSED = Counter("feedback_processed_total", "Records enriched by the processor.", ["source"])
DUPLICATES = Counter("feedback_duplicates_total", "Exact re-deliveries dropped by the processor.")
DEAD_LETTERED = Counter(
    "feedback_dead_lettered_total", "Records sent to the dead-letter topic.", ["stage", "reason"]
)
WRITTEN = Counter("feedback_written_total", "Rows upserted into the warehouse.", ["table"])
SINK_ERRORS = Counter("feedback_sink_errors_total", "Warehouse write failures (retried).", ["kind"])
BATCH_SECONDS = Histogram(
    "feedback_batch_seconds", "Time to process one batch.", ["stage"], buckets=LATENCY_BUCKETS
)
BATCH_SIZE = Histogram(
    "feedback_batch_size", "Records per batch.", ["stage"], buckets=(1, 10, 50, 100, 250, 500, 1000, 5000)
)
END_TO_END = Histogram(
    "feedback_end_to_end_seconds",
    "From receipt by the pipeline (received_at) to the committed warehouse write.",
    buckets=LATENCY_BUCKETS,
)
EVENT_TO_WRITE = Histogram(
    "feedback_event_to_write_seconds",
    "From the customer's event_time to the committed warehouse write (large for backfills).",
    buckets=(*LATENCY_BUCKETS, 3600, 86400, 7 * 86400),
)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics for a process without its own HTTP server."""
    start_http_server(port, addr=host)

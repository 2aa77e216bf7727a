"""Backfill: historic survey exports (CSV, JSONL, XLSX) and fixed dead letters, sent through Kafka.

``feedback import FILE`` maps each row to a :class:`~pipeline.schema.FeedbackRecord` and publishes it
on ``feedback.raw`` with the shared publisher, exactly like a live connector; ``feedback replay
--from-dlq`` re-sends dead letters whose payload (or the operator's fix) now validates.
"""

"""Core of the feedback pipeline: record schema, settings, topics, broker, CLI, metrics, logging."""

__version__ = "0.1.0"

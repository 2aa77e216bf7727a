"""Sinks: the SQL warehouse and the alert channels."""

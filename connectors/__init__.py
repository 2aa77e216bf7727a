"""Connectors: each turns outside input into FeedbackRecords and hands them to the shared publisher."""

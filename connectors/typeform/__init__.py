"""Typeform: survey responses from Typeform's webhooks (``POST /webhooks/typeform``)."""

"""Support-ticket connectors: Zendesk, Freshdesk, Jira Service Management and a generic format.

Webhook routes (:mod:`connectors.tickets.webhooks`) on the HTTP service, the Zendesk
incremental-export poller (:mod:`connectors.tickets.poller`), and per-system payload mappers that
all produce the same ticket records (:mod:`connectors.tickets.model`).
"""

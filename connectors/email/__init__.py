"""E-mail connector: IMAP mailbox folders and mbox/.eml archives -> ``feedback.raw``.

``parse`` turns one raw message into a record, a skip or a dead letter; ``ingest`` publishes
batches (waiting for the broker's acks); ``imap`` is ``feedback connector email``; ``mbox`` is
``feedback import-mbox``; ``checkpoint`` keeps UIDVALIDITY/UID per folder in the warehouse DB.
"""

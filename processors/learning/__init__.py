"""Training models from the organisation's own feedback: weak labels from scores, analyst
corrections, the held-out gate, the ``models`` table and the commands.

The runtime half, which the stream processor imports, lives outside this package
(:mod:`processors.linear_text`, :mod:`processors.model_store`, :mod:`processors.sentiment_trained`):
nothing the enrichment imports imports this package, so training code never sits in an import cycle
with it.
"""

"""Models learnt from the organisation's own feedback: weak labels from scores, analyst corrections,
training with a held-out gate, versioned model files and the active-model pointer the processor watches.

Runtime code (what the stream processor imports) is :mod:`processors.learning.linear` and
:mod:`processors.learning.store`; training and evaluation live in the other modules and are never
imported by the enrichment.
"""

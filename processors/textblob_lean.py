"""TextBlob, imported without the SciPy and scikit-learn modules NLTK would load along with it.

``import textblob`` imports NLTK, and NLTK's package import tries SciPy (for one association measure,
Fisher's exact test) and scikit-learn (for its scikit-learn classifier wrapper) and keeps them when
they are installed. The pipeline uses neither through NLTK; it uses TextBlob's pattern lexicon only.
Loaded, they made up about 90 of the 117 MB that importing TextBlob added to a process (measured with
psutil on Python 3.11, NLTK 3.9, SciPy and scikit-learn installed), a third of a processor's memory.

So TextBlob is imported with those two packages unimportable *for the duration of that import* when
nothing has imported them yet; NLTK then takes its own ``ImportError`` fallbacks (both imports are
optional in NLTK). Afterwards they import normally: the optional category model and the evaluation
import scikit-learn themselves when they need it. A process that imported them first is unaffected.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

#: Packages NLTK imports only for features the pipeline does not use.
NLTK_OPTIONAL = ("scipy", "sklearn")


@contextmanager
def unimportable(*names: str) -> Iterator[None]:
    """Within the block, ``import name`` (and its submodules) raises ModuleNotFoundError for each of
    ``names`` not imported yet; after it, they import as usual."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not importable"
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


with unimportable(*NLTK_OPTIONAL):
    import textblob.en
    from textblob import TextBlob
    from textblob._text import PUNCTUATION

__all__ = ["PUNCTUATION", "TextBlob", "textblob"]

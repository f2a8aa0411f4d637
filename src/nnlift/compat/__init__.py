"""Drop-in APIs of the projects nnlift learned from, on nnlift's engines.

- :mod:`nnlift.compat.nnn`: nnn-retrieval's ``NNNRetriever``, ``NNNRanker``,
  ``DNRanker`` and ``BaseRanker``, with their signatures and ``(scores, indices)``
  results.
- :mod:`nnlift.compat.neighborblend`: neighborblend's three functions.

See docs/migrating.md for each seed's call, nnlift's own equivalent and what changes.
"""

from . import neighborblend, nnn

__all__ = ["nnn", "neighborblend"]

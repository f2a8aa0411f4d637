"""neighborblend's API (``neighborhood_search``, ``blend_neighborhood``, ``iterative_neighborhood_blending``).

The one implementation lives in :mod:`nnlift.blend.compat`; this module gives it
the place a user coming from neighborblend looks for.
"""

from ..blend.compat import blend_neighborhood, iterative_neighborhood_blending, neighborhood_search

__all__ = ["neighborhood_search", "blend_neighborhood", "iterative_neighborhood_blending"]

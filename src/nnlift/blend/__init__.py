"""Neighbourhood blending, database-side augmentation (DBA) and alpha query expansion (αQE).

The three functions of PyPI ``neighborblend`` keep their names and meaning
(``neighborhood_search``, ``blend_neighborhood``,
``iterative_neighborhood_blending``) without its defects: they never change
the caller's array, accept any real dtype and layout, refuse thresholds that
would zero every row, never use padding as an index and break ties at the k
cut by the lower id. :class:`NeighborhoodBlender` does the same work on a
sparse graph, ``X' = normalize(W·X)``, on the self-join of any index: the
exact symmetric one by default, or an approximate one whose recall a
``Checked`` wrapper measures.

One concept a module: ``graph`` (thresholds and the neighbour graph), ``weights`` (the weighted sum), ``compat`` (the neighborblend API),
``blender`` (the estimator), ``thresholds`` (choosing them from the data) and ``dba`` (DBA and αQE).
"""

from .blender import NeighborhoodBlender
from .compat import blend_neighborhood, iterative_neighborhood_blending, neighborhood_search
from .dba import DatabaseAugmentation, alpha_query_expansion
from .graph import default_lists, neighbor_graph
from .thresholds import ThresholdProfile, auto_threshold, neighbor_profile

__all__ = [
    "neighborhood_search",
    "blend_neighborhood",
    "iterative_neighborhood_blending",
    "NeighborhoodBlender",
    "DatabaseAugmentation",
    "alpha_query_expansion",
    "neighbor_graph",
    "default_lists",
    "neighbor_profile",
    "auto_threshold",
    "ThresholdProfile",
]

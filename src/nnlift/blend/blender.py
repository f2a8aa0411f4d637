"""``NeighborhoodBlender``: iterative blending as an estimator on a sparse graph, exact or approximate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._artifact import ArtifactError
from .._base import Estimator, check_is_fitted
from .._check import check_array, check_finite_scalar, check_k, check_positive_int, normalize_rows, row_norms
from ..index.base import BaseIndex, build_index
from ..index.exact import ExactIndex
from ..index.checked import shorthand
from .graph import check_thresholds, default_lists, neighbor_graph, unit_rows
from .thresholds import auto_threshold, keep_above, other_similarities
from .weights import blend_rows

__all__ = ["NeighborhoodBlender"]


class NeighborhoodBlender(Estimator):
    """Iterative neighbourhood blending on a sparse graph: per threshold, ``X ← normalize(W·X)``.

    ``W`` holds, for each row, itself and its top-(k−1) other rows whose
    cosine similarity exceeds the threshold, weighted by that similarity.

    Parameters
    ----------
    thresholds : sequence of float or "auto"
        One blending pass per threshold, each < 1. An ``"auto"`` pass picks
        its threshold from that pass's similarities so that rows keep
        ``keep`` neighbours on average (:func:`~nnlift.blend.auto_threshold`).
    k : int
        Neighbours per row, the row itself included.
    keep : float, optional
        Neighbours an ``"auto"`` pass keeps per row on average, itself
        included; default ``k / 2``.
    index : BaseIndex, optional
        Index template for each pass's self-join and for ``transform``;
        default ``ExactIndex()`` (the exact symmetric self-join). Wrap an
        approximate one in :class:`~nnlift.Checked` to measure each pass's
        recall and act on it; each pass's IVF k-means starts from the previous
        pass's centroids (blending moves rows little).
    approximate : bool
        Shorthand for ``index=Checked(IVFIndex(n_lists=2√n))``: lists half the
        size of an IVF index's default, which gave higher recall in less time
        for blending's self-joins (see :func:`~nnlift.blend.default_lists`).
    progress : bool
        Show a progress bar per pass.

    Attributes
    ----------
    graph_ : scipy.sparse.csr_matrix
        The last pass's weighted neighbour graph.
    neighbors_ : Neighbors
        The last pass's neighbour lists (self included).
    thresholds_ : numpy.ndarray
        The threshold each pass used (``"auto"`` ones as chosen).
    checks_ : list of dict
        What a ``Checked`` index measured, one record per pass (``pass``, ``recall``, ``standard_error``, ``action``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emb = rng.normal(size=(100, 8))
    >>> out = NeighborhoodBlender(thresholds=(0.5,), k=5).fit_transform(emb)
    >>> out.shape, bool(np.allclose(np.linalg.norm(out, axis=1), 1))
    ((100, 8), True)
    """

    _artifact_arrays = ("stages_",)
    _optional_arrays = ("thresholds_",)

    def __init__(
        self,
        thresholds: Sequence[float | str] = (0.9, 0.8),
        k: int = 10,
        index: BaseIndex | None = None,
        approximate: bool = False,
        progress: bool = True,
        keep: float | None = None,
    ) -> None:
        self.thresholds = thresholds
        self.keep = keep
        self.k = k
        self.index = index
        self.approximate = approximate
        self.progress = progress

    def _template(self, n: int) -> BaseIndex | None:
        """The index template in use; ``approximate=True`` lists ``n`` rows in ``2√n`` lists."""
        return shorthand(self.approximate, self.index, "NeighborhoodBlender", n_lists=default_lists(n))

    def fit(self, emb: Any, y: Any = None) -> NeighborhoodBlender:
        self.fit_transform(emb)
        return self

    def fit_transform(self, emb: Any, y: Any = None) -> np.ndarray:
        """Blend ``emb`` (a normalised copy) and return the blended unit rows."""
        thresholds = check_thresholds(self.thresholds, allow_auto=True)
        unit = unit_rows(emb)
        k = check_k(self.k, unit.shape[0], name="k", what="rows")
        keep = check_finite_scalar(k / 2 if self.keep is None else self.keep, "keep", low=1.0, high=float(k))
        chosen = []
        template = self._template(unit.shape[0])
        # Each pass's input is kept for transform; passes blend straight into this buffer.
        stages = np.empty((len(thresholds), *unit.shape), dtype=np.float32)
        stages[0] = unit
        current = stages[0]
        self.checks_ = []
        previous = None
        for step, threshold in enumerate(thresholds):
            automatic = threshold == "auto"
            found, previous = neighbor_graph(
                current, k, None if automatic else threshold, index=template, like=previous, progress=self.progress
            )
            if automatic:
                threshold = auto_threshold(other_similarities(found), keep)
                found = keep_above(found, threshold)
            chosen.append(threshold)
            self.checks_ += [{"pass": step, **record} for record in getattr(previous, "checks_", [])]
            graph = found.to_csr(n_columns=current.shape[0])
            current = blend_rows(current, graph, stages[step + 1] if step + 1 < len(stages) else None)
        self.stages_, self.thresholds_ = stages, np.array(chosen, dtype=np.float64)
        self.neighbors_, self.graph_ = found, graph
        return current

    def transform(self, emb: Any) -> np.ndarray:
        """Blend new rows: each pass mixes a row with itself and its neighbours among the fitted rows at that pass."""
        check_is_fitted(self, "stages_")
        chosen = getattr(self, "thresholds_", None)
        thresholds = check_thresholds(self.thresholds if chosen is None else chosen.tolist())
        current = normalize_rows(check_array(emb, "emb", width=self.stages_.shape[2]), "emb")
        k = check_positive_int(self.k, "k")
        template = self._template(self.stages_.shape[1])
        template = ExactIndex(progress=False) if template is None else template
        for stage, threshold in zip(self.stages_, thresholds):
            others = min(k - 1, stage.shape[0])
            mixed = current.copy()
            if others > 0:
                found = build_index(template, stage).search_arrays(current, others, threshold=threshold)
                valid = found.ids >= 0
                weights = np.where(valid, found.scores, 0.0).astype(np.float32)
                mixed = current * np.einsum("ij,ij->i", current, current)[:, None]
                mixed = mixed + np.einsum("qk,qkd->qd", weights, stage[np.where(valid, found.ids, 0)])
            norms = row_norms(mixed)[:, None]
            current = np.ascontiguousarray(mixed / np.where(norms > 1e-12, norms, 1.0), dtype=np.float32)
        return current

    def _restore_extra(self, extra, arrays) -> None:
        checks = extra.get("checks", [])
        if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
            raise ArtifactError("NeighborhoodBlender artifact: extra.checks must be a list of records")
        self.checks_ = checks

    def _artifact_extra(self) -> dict:
        return {"checks": list(getattr(self, "checks_", []))}

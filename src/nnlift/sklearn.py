"""scikit-learn: corrected neighbours as a ``KNeighborsTransformer``, ready for a ``Pipeline``.

``CorrectedKNeighborsTransformer`` follows the contract of
``sklearn.neighbors.KNeighborsTransformer``: ``fit(X)`` learns, ``transform(X)``
returns a sparse CSR graph of shape ``(n_queries, n_fit)`` holding each row's
neighbours and their distances. In ``mode="distance"`` it holds
``n_neighbors + 1`` entries per row (sklearn counts a training sample as its
own neighbour); in ``mode="connectivity"``, ``n_neighbors`` ones. The
neighbours are those of an nnlift correction, so every estimator that takes
``metric="precomputed"`` (``KNeighborsClassifier``, ``Isomap``, ``TSNE``,
``DBSCAN``, ``SpectralClustering``) sees hubness-reduced neighbourhoods.

Corrected scores are similarities; the graph stores distances that rank in
the opposite order:

- local scaling and mutual proximity: ``1 − score`` (their papers' distances);
- NICDM: ``−score`` (its distance ``d/√(μ_x μ_y)``);
- any other correction (NNN, CSLS, DN, ...): ``C − score``, where ``C`` is the
  largest score the correction can give unit vectors, ``scale · (1 − min bias)``,
  fixed at fit, so one constant serves every query. Where a per-query term
  could still lift a score above it, the distance is clipped at 0.

This module needs scikit-learn (``pip install scikit-learn``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from ._optional import require
from .correct.base import Correction
from .correct.rerank import LocalScaling, MutualProximity

__all__ = ["CorrectedKNeighborsTransformer"]

_sklearn_base = require("sklearn.base", "nnlift.sklearn")


class CorrectedKNeighborsTransformer(_sklearn_base.TransformerMixin, _sklearn_base.BaseEstimator):
    """A k-neighbours graph from a score correction, as ``sklearn.neighbors.KNeighborsTransformer`` gives.

    Parameters
    ----------
    correction : nnlift correction, optional
        Cloned and fitted on ``X`` (with ``bank`` when it needs one); default
        ``LocalScaling(k=10)``, which needs no bank. Its ``k`` is lowered to
        ``n_samples − 1`` on smaller inputs.
    n_neighbors : int
        Neighbours per row (one more in ``mode="distance"``, as sklearn).
    mode : {"distance", "connectivity"}
    bank : array-like of shape (n_bank, n_features), optional
        Reference queries for a bank-based correction (NNN, CSLS, ...).

    Attributes
    ----------
    correction_ : Correction
        The fitted correction.
    n_samples_fit_ : int
    n_features_in_ : int
    offset_ : float
        ``C`` in the distance ``C − score`` (module docstring); 1 for local scaling and mutual proximity.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(60, 8)), np.repeat([0, 1, 2], 20)
    >>> X[y == 1] += 3
    >>> pipeline = make_pipeline(CorrectedKNeighborsTransformer(n_neighbors=5),
    ...                          KNeighborsClassifier(n_neighbors=5, metric="precomputed"))
    >>> float(pipeline.fit(X, y).score(X, y)) > 0.6
    True
    """

    def __init__(
        self,
        correction: Correction | None = None,
        n_neighbors: int = 5,
        mode: str = "distance",
        bank: Any = None,
    ) -> None:
        self.correction = correction
        self.n_neighbors = n_neighbors
        self.mode = mode
        self.bank = bank

    def fit(self, X: Any, y: Any = None) -> CorrectedKNeighborsTransformer:
        """Fit the correction on ``X`` (``y`` is ignored)."""
        validation = require("sklearn.utils.validation", "nnlift.sklearn")
        X = validation.validate_data(self, X, dtype=[np.float32, np.float64], ensure_min_samples=2)
        self._check_params(len(X))
        correction = LocalScaling(k=10) if self.correction is None else self.correction
        if not isinstance(correction, Correction):
            raise TypeError(f"correction must be an nnlift correction such as LocalScaling(); got {correction!r}")
        correction = _sklearn_base.clone(correction)
        if hasattr(correction, "k") and isinstance(correction, (LocalScaling, MutualProximity)):
            correction.set_params(k=min(correction.k, len(X) - 1))
        bank = None if self.bank is None else np.asarray(self.bank, dtype=np.float32)
        if correction.needs_bank and bank is None:
            raise ValueError(f"{type(correction).__name__} needs a bank of reference queries: pass bank=")
        self.correction_ = correction.fit(X.astype(np.float32), bank)
        self.n_samples_fit_ = len(X)
        self.offset_ = self._offset()
        return self

    def transform(self, X: Any) -> csr_matrix:
        """The sparse graph of each row's corrected neighbours among the fitted rows."""
        validation = require("sklearn.utils.validation", "nnlift.sklearn")
        validation.check_is_fitted(self, "correction_")
        X = validation.validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        width = self.n_neighbors + 1 if self.mode == "distance" else self.n_neighbors
        if width > self.n_samples_fit_:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} needs {width} fitted samples in mode={self.mode!r}; "
                f"only {self.n_samples_fit_} were fitted"
            )
        found = self.correction_.search(X.astype(np.float32), k=width, progress=False)
        # Built from row pointers, each row in rank order: distances ascend, as sklearn's precomputed graphs expect.
        pointers = np.arange(0, len(X) * width + 1, width)
        if self.mode == "distance":
            values = self._distances(found.scores).ravel()
        else:
            values = np.ones(len(X) * width)
        return csr_matrix((values, found.ids.ravel(), pointers), shape=(len(X), self.n_samples_fit_))

    def fit_transform(self, X: Any, y: Any = None) -> csr_matrix:
        """``fit(X).transform(X)``: each fitted row's neighbours, itself included (as sklearn's transformer)."""
        return self.fit(X, y).transform(X)

    # -- helpers ---------------------------------------------------------------
    def _check_params(self, n_samples: int) -> None:
        if isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, (int, np.integer)):
            raise TypeError(f"n_neighbors must be an integer; got {self.n_neighbors!r}")
        if self.n_neighbors < 1:
            raise ValueError(f"n_neighbors must be >= 1; got {self.n_neighbors}")
        if self.mode not in ("distance", "connectivity"):
            raise ValueError(f"mode must be 'distance' or 'connectivity'; got {self.mode!r}")

    def _offset(self) -> float:
        correction = self.correction_
        if isinstance(correction, (LocalScaling, MutualProximity)):
            return 0.0 if getattr(correction, "variant", "ls") == "nicdm" else 1.0
        bias = correction._search_bias()
        lowest = 0.0 if bias is None or len(bias) == 0 else float(np.min(bias))
        return float(correction.scale) * (1.0 - lowest)

    def _distances(self, scores: np.ndarray) -> np.ndarray:
        return np.maximum(self.offset_ - scores.astype(np.float64), 0.0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.requires_fit = True
        return tags

"""Database-side augmentation as a correction: DBA or neighbourhood blending, alone or before another correction."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._artifact import ArtifactError
from .._base import check_is_fitted, clone
from .base import Baseline, Correction, WrapsCorrection

__all__ = ["AugmentedDatabase"]


class AugmentedDatabase(WrapsCorrection):
    """Replace the database by its augmented vectors, then apply ``correction`` (raw cosine by default).

    Parameters
    ----------
    augmentation : estimator with ``fit_transform``
        ``DatabaseAugmentation`` (default) or ``NeighborhoodBlender``.
    correction : Correction, optional
        Applied to the augmented database (for example ``NNN()`` for DBA+NNN).

    Examples
    --------
    >>> import numpy as np
    >>> from nnlift import NNN
    >>> rng = np.random.default_rng(0)
    >>> model = AugmentedDatabase(correction=NNN(k=4)).fit(rng.normal(size=(50, 8)), rng.normal(size=(30, 8)))
    >>> model.search(rng.normal(size=(2, 8)), k=3).ids.shape
    (2, 3)
    """

    def __init__(self, augmentation: Any = None, correction: Correction | None = None) -> None:
        self.augmentation = augmentation
        self.correction = correction

    @property
    def needs_bank(self) -> bool:  # type: ignore[override]
        return self.correction is not None and self.correction.needs_bank

    def fit(self, database: Any, bank: Any = None, **kwargs: Any) -> AugmentedDatabase:
        from ..blend import DatabaseAugmentation

        augmentation = clone(self.augmentation) if self.augmentation is not None else DatabaseAugmentation()
        if hasattr(augmentation, "progress"):
            augmentation.set_params(progress=False)
        augmented = augmentation.fit_transform(database)
        inner = clone(self.correction) if self.correction is not None else Baseline()
        self.correction_ = inner.fit(augmented, bank, **kwargs)
        self.augmentation_ = augmentation
        self.database_ = self.correction_.database_
        return self

    def _prepare_queries(self, queries: Any) -> np.ndarray:
        check_is_fitted(self, "correction_")
        return self.correction_._prepare_queries(queries)

    def _artifact_parts(self) -> dict[str, Any]:
        return {**super()._artifact_parts(), "augmentation": self.augmentation_}

    def _restore_parts(self, parts: dict[str, Any]) -> None:
        if not hasattr(parts.get("augmentation"), "fit_transform"):
            raise ArtifactError("AugmentedDatabase artifact: its part 'augmentation' must be a fitted augmentation")
        super()._restore_parts(parts)
        self.augmentation_ = parts["augmentation"]

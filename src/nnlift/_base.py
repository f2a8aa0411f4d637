"""Estimator conventions shared by every method (scikit-learn style)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._artifact import read_artifact, save_artifact

__all__ = ["Estimator", "NotFittedError", "check_is_fitted"]


class NotFittedError(RuntimeError):
    """A method that needs learned state was called before ``fit``."""


class Estimator:
    """``__init__`` stores hyper-parameters; ``fit`` learns state ending in ``_``.

    Subclasses list the learned arrays to persist in ``_artifact_arrays`` and
    may add JSON state through ``_artifact_extra``/``_restore_extra``.
    """

    _artifact_arrays: tuple[str, ...] = ()

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as a dict (nested estimators included when ``deep``)."""
        params = {name: getattr(self, name) for name in self._param_names()}
        if deep:
            for name, value in list(params.items()):
                if isinstance(value, Estimator):
                    for sub, sub_value in value.get_params(deep=True).items():
                        params[f"{name}__{sub}"] = sub_value
        return params

    def set_params(self, **params: Any) -> Estimator:
        """Set hyper-parameters; ``step__param`` reaches nested estimators."""
        valid = self._param_names()
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; valid: {valid}")
            if sub:
                nested = getattr(self, name)
                if nested is None:
                    raise ValueError(f"{type(self).__name__}.{name} is None; set it before setting {key!r}")
                nested.set_params(**{sub: value})
            else:
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        signature = inspect.signature(type(self).__init__)
        shown = []
        for name in self._param_names():
            value = getattr(self, name, None)
            default = signature.parameters[name].default
            if default is inspect.Parameter.empty or not _same(value, default):
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- persistence ----------------------------------------------------
    def _artifact_extra(self) -> dict[str, Any]:
        return {}

    def _restore_extra(self, extra: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        return None

    def _json_params(self) -> dict[str, Any]:
        params = {}
        for name, value in self.get_params(deep=False).items():
            if isinstance(value, tuple):
                value = list(value)
            if value is None or isinstance(value, (bool, int, float, str, list, dict)):
                params[name] = value
            else:
                raise TypeError(
                    f"{type(self).__name__}.{name}={value!r} cannot be saved; only plain parameters are supported"
                )
        return params

    def save(self, path: str | os.PathLike) -> Path:
        """Save parameters and learned state as an nnlift artifact directory."""
        check_is_fitted(self)
        arrays = {name: getattr(self, name) for name in self._artifact_arrays}
        return save_artifact(path, self, self._json_params(), arrays, self._artifact_extra())

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict[str, np.ndarray]) -> Estimator:
        signature = inspect.signature(cls.__init__)
        params = {}
        for name, value in manifest["params"].items():
            default = signature.parameters[name].default if name in signature.parameters else None
            params[name] = tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
        obj = cls(**params)
        for name in cls._artifact_arrays:
            setattr(obj, name, arrays[name])
        obj._restore_extra(manifest.get("extra", {}), arrays)
        return obj

    @classmethod
    def load(cls, path: str | os.PathLike) -> Estimator:
        """Load an artifact saved by :meth:`save`."""
        manifest, arrays = read_artifact(path, expected_class=cls)
        return cls._from_artifact(manifest, arrays)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) if not isinstance(a, np.ndarray) else False
    except Exception:
        return False


def check_is_fitted(estimator: Estimator, attribute: str | None = None) -> None:
    """Raise :class:`NotFittedError` unless ``fit`` has run."""
    names = [attribute] if attribute else list(estimator._artifact_arrays)
    if not names:
        names = [n for n in vars(estimator) if n.endswith("_") and not n.startswith("_")]
        fitted = bool(names)
    else:
        fitted = all(getattr(estimator, n, None) is not None for n in names)
    if not fitted:
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet; call fit(...) first")


def clone(estimator: Estimator, **overrides: Any) -> Estimator:
    """A new, unfitted estimator with the same hyper-parameters (and ``overrides``)."""
    params = estimator.get_params(deep=False)
    params.update(overrides)
    return type(estimator)(**params)

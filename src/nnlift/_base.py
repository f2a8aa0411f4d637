"""Estimator conventions shared by every method (scikit-learn style)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._artifact import ArtifactError, Contents, init_parameters, load_artifact, require_arrays
from ._artifact import save as save_object
from .errors import InputError, InputTypeError, NnliftError

__all__ = ["Estimator", "NotFittedError", "check_is_fitted"]


class NotFittedError(NnliftError, RuntimeError):
    """A method that needs learned state was called before ``fit``."""


class Estimator:
    """``__init__`` stores hyper-parameters; ``fit`` learns state ending in ``_``.

    Subclasses list the learned arrays to persist in ``_artifact_arrays`` and
    may add JSON state through ``_artifact_extra``/``_restore_extra``.
    """

    _artifact_arrays: tuple[str, ...] = ()

    @classmethod
    def _param_names(cls) -> list[str]:
        return list(init_parameters(cls))

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
                raise InputError(f"{type(self).__name__} has no parameter {name!r}; valid: {valid}")
            if sub:
                nested = getattr(self, name)
                if nested is None:
                    raise InputError(f"{type(self).__name__}.{name} is None; set it before setting {key!r}")
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
    # A subclass lists its learned arrays in ``_artifact_arrays`` (and arrays it
    # may lack in ``_optional_arrays``), adds JSON state through
    # ``_artifact_extra``/``_restore_extra``, fitted sub-models through
    # ``_artifact_parts``/``_restore_parts``, and checks restored state in
    # ``_check_state``. Estimator-valued parameters (templates such as
    # ``WithDN(correction=NNN())``) are saved as nested artifacts.
    _optional_arrays: tuple[str, ...] = ()

    def _artifact_extra(self) -> dict[str, Any]:
        return {}

    def _restore_extra(self, extra: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        return None

    def _artifact_parts(self) -> dict[str, Any]:
        return {}

    def _restore_parts(self, parts: dict[str, Any]) -> None:
        return None

    def _check_state(self) -> None:
        """Raise ``ArtifactError`` when restored arrays do not fit together (shapes, dtypes, finiteness)."""
        return None

    def _is_fitted(self) -> bool:
        try:
            check_is_fitted(self)
        except NotFittedError:
            return False
        return True

    def _artifact(self) -> Contents:
        params, parts = {}, {}
        for name, value in self.get_params(deep=False).items():
            if hasattr(value, "_artifact"):
                parts[f"param_{name}"] = value
                value = None
            elif isinstance(value, tuple):
                value = list(value)
            if value is not None and not isinstance(value, (bool, int, float, str, list, dict)):
                raise InputTypeError(
                    f"{type(self).__name__}.{name}={value!r} cannot be saved; only plain parameters and nnlift "
                    "estimators or indexes are supported"
                )
            params[name] = value
        fitted = self._is_fitted()
        arrays, extra = {}, {"fitted": fitted}
        if fitted:
            arrays = {name: getattr(self, name) for name in self._artifact_arrays}
            arrays.update({name: getattr(self, name) for name in self._optional_arrays if hasattr(self, name)})
            extra.update(self._artifact_extra())
            parts.update(self._artifact_parts())
        return Contents(params, arrays, extra, parts)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save parameters and learned state as an nnlift artifact folder (reopen with ``nnlift.load``).

        The save is atomic. It refuses to replace anything that is not an
        nnlift artifact, and replaces an existing artifact only with
        ``overwrite=True``.
        """
        check_is_fitted(self)
        return save_object(self, path, overwrite=overwrite)

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict[str, np.ndarray], parts: dict[str, Any]) -> Estimator:
        signature = inspect.signature(cls.__init__)
        params = {}
        for name, value in manifest["params"].items():
            if f"param_{name}" in parts:
                value = parts.pop(f"param_{name}")
            default = signature.parameters[name].default
            params[name] = tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
        obj = cls(**params)
        extra = manifest["extra"]
        if not isinstance(extra.get("fitted"), bool):
            raise ArtifactError(f"{cls.__name__} artifact: extra.fitted must be true or false")
        if extra["fitted"]:
            require_arrays(arrays, cls._artifact_arrays, cls._optional_arrays, owner=cls.__name__)
            for name, array in arrays.items():
                setattr(obj, name, array)
            obj._restore_extra(extra, arrays)
            obj._restore_parts(parts)
            obj._check_state()
        elif arrays:
            raise ArtifactError(f"{cls.__name__} artifact is marked unfitted but holds arrays {sorted(arrays)}")
        return obj

    @classmethod
    def load(cls, path: str | os.PathLike) -> Estimator:
        """Load an artifact saved by :meth:`save` (``nnlift.load`` works too)."""
        return load_artifact(path, expected_class=cls)


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

"""Validation and conversion of every public input.

Public functions call these helpers once, at the boundary; internal code then
trusts float32, C-contiguous, finite arrays. Nothing here ever writes into the
caller's array: conversions copy whenever the dtype, layout or values change.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from .errors import InputError, InputTypeError

__all__ = [
    "check_array",
    "check_pair",
    "check_k",
    "check_ids",
    "check_metric",
    "check_finite_scalar",
    "check_positive_int",
    "normalize_rows",
    "METRICS",
]

METRICS = ("cosine", "ip")


def _to_numpy(value: Any, name: str) -> np.ndarray:
    """Turn an array-like (list, numpy array, CPU torch tensor) into a numpy array."""
    module = type(value).__module__
    if module.startswith("torch"):
        if getattr(value, "is_cuda", False) or str(getattr(value, "device", "cpu")) != "cpu":
            raise InputTypeError(f"{name} is a torch tensor on {value.device}; move it to the CPU first (.cpu())")
        value = value.detach().numpy()
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputTypeError(f"{name} must be a 2-D array-like of real numbers; could not convert it: {exc}") from None


def check_array(
    value: Any,
    name: str,
    *,
    ndim: int = 2,
    width: int | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Return ``value`` as a finite float32 C-contiguous array.

    Parameters
    ----------
    value : array-like
        Lists, numpy arrays of any real dtype or CPU torch tensors.
    name : str
        The argument's name, used in error messages.
    ndim : int
        Required number of dimensions (1 or 2).
    width : int, optional
        Required number of columns for 2-D input.
    allow_empty : bool
        Whether zero rows are accepted.

    Returns
    -------
    numpy.ndarray
        A float32 C-contiguous array. It is a new array unless ``value`` was
        already float32, C-contiguous and finite, in which case it may be the
        caller's array itself: callers must not write into the result.

    Examples
    --------
    >>> check_array([[1, 2], [3, 4]], "database").dtype
    dtype('float32')
    """
    array = _to_numpy(value, name)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
    ):
        raise InputTypeError(f"{name} must hold real numbers; got dtype {array.dtype}")
    if array.ndim != ndim:
        shape_word = "(n_rows, n_features)" if ndim == 2 else "(n,)"
        raise InputError(
            f"{name} must be {ndim}-D with shape {shape_word}; got {array.ndim}-D with shape {array.shape}"
        )
    if not allow_empty and array.shape[0] == 0:
        raise InputError(f"{name} is empty (shape {array.shape}); at least one row is required")
    if ndim == 2 and array.shape[1] == 0:
        raise InputError(f"{name} has zero columns (shape {array.shape})")
    if width is not None and ndim == 2 and array.shape[1] != width:
        raise InputError(f"{name} must have {width} columns to match the other inputs; got shape {array.shape}")
    if array.size:
        finite = np.isfinite(array)
        if not finite.all():
            bad_rows = np.flatnonzero(~finite.all(axis=-1)) if ndim == 2 else np.flatnonzero(~finite)
            raise InputError(f"{name} has NaN or inf values in {len(bad_rows)} row(s), first at row {int(bad_rows[0])}")
        if array.dtype.itemsize > 4:
            peak = float(np.max(np.abs(array)))
            if peak > float(np.finfo(np.float32).max):  # it would become inf silently
                raise InputError(f"{name} has values outside float32's range (largest |value| {peak:g})")
    array = np.ascontiguousarray(array, dtype=np.float32)
    return array


def row_norms(array: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row of a 2-D float array (one fused pass; ``np.linalg.norm`` makes a squared copy).

    Rows whose float32 squares overflow or underflow (entries beyond about
    1e19 or below about 1e-19) are measured again after scaling by their
    largest entry, so every non-zero row gets its true, non-zero norm.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", array, array))
    suspect = np.flatnonzero(~np.isfinite(norms) | (norms < 1e-18))
    if len(suspect):
        rows = array[suspect].astype(np.float64)
        peak = np.abs(rows).max(axis=1)
        scaled = rows / np.where(peak > 0, peak, 1.0)[:, None]
        exact = peak * np.sqrt(np.einsum("ij,ij->i", scaled, scaled))
        norms = norms.astype(np.float64)  # float64 holds norms beyond float32's range
        norms[suspect] = exact
    return norms


def normalize_rows(array: np.ndarray, name: str) -> np.ndarray:
    """Return unit-norm rows of a float32 2-D array (a copy unless already unit); all-zero rows are an error.

    Any non-zero row, however large or small its entries (1e20, 1e-30), is
    scaled to its direction; only exact zeros have none.
    """
    norms = row_norms(array)
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        raise InputError(
            f"{name} has {len(zero)} all-zero row(s), first at row {int(zero[0])}; "
            "cosine similarity is undefined for them (use metric='ip' or drop them)"
        )
    if np.abs(norms - 1.0).max() <= 1e-6:
        # Already unit rows: reuse them (callers never write into validated arrays).
        return array
    if norms.dtype == np.float64:  # extreme rows: divide in float64 so nothing overflows or flushes to zero
        return np.ascontiguousarray(array / norms[:, None], dtype=np.float32)
    out = array / norms[:, None]
    return np.ascontiguousarray(out, dtype=np.float32)


def check_metric(metric: Any) -> str:
    """Validate a metric name: ``"cosine"`` (normalised copy) or ``"ip"`` (raw inner product)."""
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}; got {metric!r}")
    return metric


def check_pair(
    queries: Any,
    database: Any,
    metric: str = "cosine",
    *,
    names: tuple[str, str] = ("queries", "database"),
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two 2-D inputs of equal width and apply the metric's normalisation."""
    metric = check_metric(metric)
    database_array = check_array(database, names[1])
    queries_array = check_array(queries, names[0], width=database_array.shape[1])
    if metric == "cosine":
        database_array = normalize_rows(database_array, names[1])
        queries_array = normalize_rows(queries_array, names[0])
    return queries_array, database_array


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Validate an integer parameter that must be at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_k(k: Any, limit: int, *, name: str = "k", what: str = "database rows") -> int:
    """Validate ``k`` against the number of items it selects from."""
    k = check_positive_int(k, name)
    if k > limit:
        raise InputError(f"{name}={k} is larger than possible: only {limit} {what} are available")
    return k


def check_row_numbers(rows: Any, n: int, name: str = "rows") -> np.ndarray:
    """Validate row numbers into ``n`` rows: integers in [0, n), each once; returns them ascending (int64).

    Examples
    --------
    >>> check_row_numbers([4, 1], 5).tolist()
    [1, 4]
    >>> check_row_numbers([1, 1], 5)
    Traceback (most recent call last):
    ...
    nnlift.errors.InputError: rows repeats row 1; give each row once
    """
    values = np.asarray([rows] if isinstance(rows, numbers.Integral) else rows)
    if values.size == 0:
        return np.empty(0, dtype=np.int64)
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise InputTypeError(f"{name} must be a 1-D sequence of integer row numbers; got {values.dtype} {values.shape}")
    if values.min() < 0 or values.max() >= n:
        bad = values[(values < 0) | (values >= n)]
        raise InputError(f"{name} must be row numbers in [0, {n}); got {bad[:3].tolist()}")
    ordered = np.sort(values.astype(np.int64))
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated):
        raise InputError(f"{name} repeats row {int(repeated[0])}; give each row once")
    return ordered


def check_finite_scalar(value: Any, name: str, *, low: float | None = None, high: float | None = None) -> float:
    """Validate a finite real number, optionally within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite; got {value}")
    if low is not None and value < low:
        raise InputError(f"{name} must be >= {low}; got {value}")
    if high is not None and value > high:
        raise InputError(f"{name} must be <= {high}; got {value}")
    return value


def check_ids(ids: Any, n: int, name: str = "ids") -> np.ndarray:
    """Validate external ids: ``n`` unique ints (within int64) or ``n`` unique strings, never a mix.

    Returns an int64 array for integer ids and a numpy unicode array for strings.
    Ids are never changed silently: a mix of kinds (``[1, "a"]``, which numpy
    would turn into strings), booleans, floats and integers outside int64 are
    errors.

    Examples
    --------
    >>> check_ids([3, 1, 2], 3).tolist()
    [3, 1, 2]
    >>> check_ids([1, "a"], 2)
    Traceback (most recent call last):
    ...
    nnlift.errors.InputTypeError: ids must all be ints or all be strings; got a mix (int and str)
    """
    if isinstance(ids, (str, bytes)):
        raise InputTypeError(f"{name} must be a sequence of ids, not a single string")
    if isinstance(ids, np.ndarray):
        values = ids
    else:
        if not isinstance(ids, Sequence) and not hasattr(ids, "__len__"):
            ids = list(ids)
        values = list(ids) if not isinstance(ids, list) else ids
        kinds = {_id_kind(v, name) for v in values}
        if len(kinds) > 1:
            raise InputTypeError(f"{name} must all be ints or all be strings; got a mix ({' and '.join(sorted(kinds))})")
        if kinds == {"int"}:
            too_big = [v for v in values if not -(2**63) <= int(v) < 2**63]
            if too_big:
                raise InputError(f"{name} must fit in int64; {too_big[0]} does not")
            values = np.array([int(v) for v in values], dtype=np.int64)
        else:
            nul = next((i for i, v in enumerate(values) if "\x00" in v), None)
            if nul is not None:  # numpy strings drop trailing NULs: "a\x00" would silently become "a"
                raise InputError(f"{name}[{nul}]={values[nul]!r} contains a NUL character, which ids cannot hold")
            values = np.asarray(values, dtype=str) if values else np.asarray(values, dtype=np.int64)
    array = np.asarray(values)
    if array.ndim != 1:
        raise InputError(f"{name} must be 1-D; got shape {array.shape}")
    if len(array) != n:
        raise InputError(f"{name} has {len(array)} entries but there are {n} vectors")
    if array.dtype.kind == "u":
        if array.size and int(array.max()) >= 2**63:
            raise InputError(f"{name} must fit in int64; {int(array.max())} does not")
        array = array.astype(np.int64)
    elif array.dtype.kind == "i":
        array = array.astype(np.int64)
    elif array.dtype.kind == "U":
        pass
    elif array.dtype.kind == "O":
        return check_ids(array.tolist(), n, name)
    else:
        raise InputTypeError(f"{name} must be ints or strings; got dtype {array.dtype}")
    unique, counts = np.unique(array, return_counts=True)
    if len(unique) != len(array):
        dup = unique[counts > 1][:3]
        raise InputError(f"{name} has duplicates, for example {list(dup.tolist())}")
    return array


def _id_kind(value: Any, name: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be ints or strings; got the boolean {value!r}")
    if isinstance(value, (numbers.Integral, np.integer)):
        return "int"
    if isinstance(value, (str, np.str_)):
        return "str"
    raise InputTypeError(f"{name} must be ints or strings; got {type(value).__name__} {value!r}")

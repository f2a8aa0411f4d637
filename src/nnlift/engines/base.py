"""The engine contract, the float32 error bound, and the numpy engine.

An *engine* multiplies a row block of queries by a slice of the database and
writes an approximate float32 score tile. It also knows a rigorous bound ε on
the error of every score it writes, so that the kernel can certify a top-k
found with it (``kernel.canonical``).

**The float32 bound.** A dot product of length d summed in float32, in any
order and with or without FMA, satisfies |fl(a·b) − a·b| ≤ γ_d Σ|a_k b_k| with
γ_d = d·u/(1 − d·u) and u = 2⁻²⁴ (Higham, *Accuracy and Stability of Numerical
Algorithms*, §3.1). By Cauchy–Schwarz Σ|a_k b_k| ≤ ‖a‖‖b‖, so one row's
error against every database row is at most γ_d·‖a‖·max_j‖b_j‖. Blocked BLAS
kernels only reorder the sum, so the bound holds for OpenBLAS, MKL and oneDNN
float32 GEMMs alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["UNIT_FLOAT32", "gamma", "Engine", "Prepared", "NumpyEngine", "row_norms64"]

UNIT_FLOAT32 = 2.0**-24


def gamma(d: int, unit: float = UNIT_FLOAT32) -> float:
    """γ_d = d·u/(1 − d·u): the relative error bound of a length-d float sum."""
    du = d * unit
    if du >= 1:
        raise ValueError(f"a dot product of length {d} has no float error bound at unit {unit}")
    return du / (1 - du)


def row_norms64(rows: np.ndarray) -> np.ndarray:
    """Upper bounds on the rows' Euclidean norms, as float64, from one float32 pass.

    The float32 sum of squares s̃ satisfies |s̃ − s| ≤ γ_d·s (every term is
    positive), so ‖x‖ ≤ √(s̃/(1 − γ_d)); one more relative 2⁻²³ covers the
    square root's rounding. A bound is all the error analysis needs, and it
    costs a quarter of a float64 pass over a large database.
    """
    squares = np.einsum("ij,ij->i", rows, rows, dtype=np.float32).astype(np.float64)
    return np.sqrt(squares / (1 - gamma(max(rows.shape[1], 1)))) * (1 + 2.0**-23)


@dataclass
class Prepared:
    """A database made ready for one engine: its device copy and the norms its bound needs."""

    engine: "Engine"
    handle: Any  # the engine's own copy (a torch tensor, or the array itself)
    norm_max: float  # max_j ‖x_j‖ (float32 engines) or max_j ‖hi(x_j)‖ (reduced precision)
    residual_max: float  # max_j ‖x_j − hi(x_j)‖; 0 for float32

    def queries(self, block: np.ndarray) -> Any:
        return self.engine.prepare_queries(block)

    def multiply(self, query_handle: Any, c0: int, c1: int, out: np.ndarray) -> None:
        self.engine.multiply(query_handle, self.handle, c0, c1, out)

    def multiply_native(self, query_handle: Any, c0: int, c1: int) -> Any:
        """The tile in the engine's own form (engines with ``native_tiles``); valid until this thread's next one."""
        return self.engine.multiply_native(query_handle, self.handle, c0, c1)

    def error(self, block: np.ndarray) -> np.ndarray:
        """ε per query row of ``block``: a bound on |tile score − exact score| against any database row."""
        return self.engine.error_bound(block, self)


class Engine(ABC):
    """Who multiplies. Subclasses set ``name``, ``precision`` and ``device`` and implement :meth:`multiply`."""

    name = "engine"
    precision = "float32"
    device = "cpu"
    #: whether the kernel may select from the engine's own tiles (multiply_native) without a float32 copy
    native_tiles = False

    def prepare(self, database: np.ndarray) -> Prepared:
        norms = row_norms64(database)
        return Prepared(self, self.upload(database), float(norms.max(initial=0.0)), 0.0)

    def upload(self, database: np.ndarray) -> Any:
        return database

    def prepare_queries(self, block: np.ndarray) -> Any:
        return block

    @abstractmethod
    def multiply(self, queries: Any, database: Any, c0: int, c1: int, out: np.ndarray) -> None:
        """Write the approximate tile ``queries · database[c0:c1]ᵀ`` into ``out`` (float32, C-contiguous)."""

    def error_bound(self, block: np.ndarray, prepared: Prepared) -> np.ndarray:
        return gamma(block.shape[1]) * row_norms64(block) * prepared.norm_max

    def thread_setup(self) -> None:
        """Called once in each worker thread before its first multiply."""

    def fill(self, tile: Any, rows: np.ndarray, columns: np.ndarray, value: float) -> None:
        """Set ``tile[rows, columns] = value`` in a tile this engine wrote (a numpy tile here)."""
        tile[rows, columns] = value

    def __repr__(self) -> str:
        return f"<engine {self.name}: {self.precision} on {self.device}>"


class NumpyEngine(Engine):
    """numpy's float32 BLAS (OpenBLAS in the wheels): the core's engine, needing nothing else."""

    name = "numpy"

    def multiply(self, queries: np.ndarray, database: np.ndarray, c0: int, c1: int, out: np.ndarray) -> None:
        np.matmul(queries, database[c0:c1].T, out=out)


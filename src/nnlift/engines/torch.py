"""torch engines: float32 (MKL/oneDNN) and bfloat16 (oneDNN, AMX or AVX512-BF16) on the CPU, and CUDA.

The same code runs on every device: the database is uploaded once per
reduction (and cached while the caller keeps the same array), so on a GPU it
stays on the device across tiles, and each tile comes back as float32.

**The bfloat16 bound.** Write each input as a = a_hi + a_lo with a_hi = bf16(a),
and likewise b. The GEMM computes y = fl₃₂(Σ_k a_hi,k·b_hi,k), each product
exact in float32 (8-bit significands), summed in float32, and rounds y to
bfloat16 on output. Then

    a·b − a_hi·b_hi = a_hi·b_lo + a_lo·b_hi + a_lo·b_lo,

so by Cauchy–Schwarz ``|a·b − a_hi·b_hi| ≤ ‖a_hi‖‖b_lo‖ + ‖a_lo‖‖b_hi‖ +
‖a_lo‖‖b_lo‖``. The float32 accumulation adds at most γ_d‖a_hi‖‖b_hi‖
(``engines.base``), and the output rounding at most u_bf16·|y| with
u_bf16 = 2⁻⁸ and |y| ≤ (1 + γ_d)‖a_hi‖‖b_hi‖. Summing the three gives ε for
one pair; with the database's largest ‖b_hi‖ and ‖b_lo‖ it holds for a query
row against every database row. The residual norms are measured on the real
inputs, not assumed, so the bound is as tight as the data allows (about 0.004
from the inputs and 0.004 from the output rounding for unit vectors).

A float32 GEMM that a user has allowed to run in reduced precision
(``torch.set_float32_matmul_precision("medium")`` on the CPU, TF32 on CUDA)
rounds its inputs with unit 2⁻⁸ or 2⁻¹¹, so ‖a_lo‖ ≤ u‖a‖; the bound then uses
that instead of 0. On CUDA, bfloat16 GEMMs are run with reduced-precision
reductions turned off, so that the accumulation is float32 as the bound needs.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from typing import Any

import numpy as np

from .base import UNIT_FLOAT32, Engine, Prepared, gamma, row_norms64

__all__ = ["TorchEngine", "UNIT_BFLOAT16", "pair_bound"]

UNIT_BFLOAT16 = 2.0**-8
UNIT_TF32 = 2.0**-11


def pair_bound(
    hi_a: np.ndarray, lo_a: np.ndarray, hi_b: float, lo_b: float, d: int, output_unit: float
) -> np.ndarray:
    """ε for rows with split norms (hi_a, lo_a) against any row with split norms at most (hi_b, lo_b)."""
    accumulate = gamma(d, UNIT_FLOAT32)
    inputs = hi_a * lo_b + lo_a * hi_b + lo_a * lo_b
    return inputs + (accumulate + output_unit * (1 + accumulate)) * hi_a * hi_b


def _torch():
    import torch

    return torch


def _as_tensor(array: np.ndarray):
    """A tensor over ``array`` without a copy; read-only arrays too (the engines never write their inputs)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return _torch().from_numpy(array)


class TorchEngine(Engine):
    """torch matmul in ``precision`` ("float32" or "bfloat16") on ``device`` ("cpu", "cuda", "cuda:1")."""

    def __init__(self, precision: str = "float32", device: str = "cpu") -> None:
        torch = _torch()
        self.precision, self.device = precision, device
        self.dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        self.on_gpu = device.startswith("cuda")
        family = "cuda" if self.on_gpu else "torch"
        self.name = family + ("-bf16" if precision == "bfloat16" else "")
        if self.on_gpu and device not in ("cuda", "cuda:0"):
            self.name += device[4:]
        self._local = threading.local()
        # bfloat16 and GPU tiles are selected where they are (kernel.selection.tile_topk_keys_native)
        self.native_tiles = self.on_gpu or precision == "bfloat16"

    # -- data ---------------------------------------------------------------
    def upload(self, database: np.ndarray) -> Any:
        return _as_tensor(database).to(device=self.device, dtype=self.dtype).contiguous()

    def prepare(self, database: np.ndarray) -> Prepared:
        handle = self.upload(database)
        hi, lo = self._split_norms(database, handle)
        return Prepared(self, handle, float(hi.max(initial=0.0)), float(lo.max(initial=0.0)))

    def prepare_queries(self, block: np.ndarray) -> Any:
        return _as_tensor(block).to(device=self.device, dtype=self.dtype)

    def _split_norms(self, rows: np.ndarray, handle: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Bounds on ‖hi(row)‖ and ‖row − hi(row)‖ for the rounding this engine applies to its inputs.

        For bfloat16, row − bf16(row) is exact in float32 (it keeps the low
        16 bits of the significand), so both norms come from float32 rows.
        """
        if self.precision == "bfloat16":
            torch = _torch()
            hi_norms, lo_norms = [], []
            for start in range(0, rows.shape[0], 16384):  # bounded temporaries
                part = rows[start : start + 16384]
                if handle is not None:
                    hi = handle[start : start + 16384].to(device="cpu", dtype=torch.float32).numpy()
                else:
                    hi = _as_tensor(part).to(torch.bfloat16).to(torch.float32).numpy()
                hi_norms.append(row_norms64(hi))
                lo_norms.append(row_norms64(part - hi))
            if not hi_norms:
                return np.zeros(0), np.zeros(0)
            return np.concatenate(hi_norms), np.concatenate(lo_norms)
        norms = row_norms64(rows)
        unit = self._float32_input_unit()
        return norms * (1 + unit), norms * unit

    def _float32_input_unit(self) -> float:
        torch = _torch()
        precision = torch.get_float32_matmul_precision()
        if self.on_gpu and (torch.backends.cuda.matmul.allow_tf32 or precision != "highest"):
            return UNIT_BFLOAT16 if precision == "medium" else UNIT_TF32
        if precision == "medium":
            return UNIT_BFLOAT16
        return UNIT_TF32 if precision == "high" else 0.0

    def error_bound(self, block: np.ndarray, prepared: Prepared) -> np.ndarray:
        hi, lo = self._split_norms(block)
        output = UNIT_BFLOAT16 if self.precision == "bfloat16" else 0.0
        return pair_bound(hi, lo, prepared.norm_max, prepared.residual_max, block.shape[1], output)

    # -- arithmetic ---------------------------------------------------------
    def thread_setup(self) -> None:
        if not self.on_gpu:
            _torch().set_num_threads(1)  # the worker threads are the parallelism (see _threads)

    def multiply(self, queries: Any, database: Any, c0: int, c1: int, out: np.ndarray) -> None:
        torch = _torch()
        target = torch.from_numpy(out)
        if self.dtype == torch.float32 and not self.on_gpu:
            torch.mm(queries, database[c0:c1].T, out=target)  # straight into the caller's tile
            return
        tile = self._tile(queries.shape[0], c1 - c0)
        with self._exact_accumulation():
            torch.mm(queries, database[c0:c1].T, out=tile)
        target.copy_(tile)

    def multiply_native(self, queries: Any, database: Any, c0: int, c1: int) -> Any:
        tile = self._tile(queries.shape[0], c1 - c0)
        with self._exact_accumulation():
            _torch().mm(queries, database[c0:c1].T, out=tile)
        return tile

    def fill(self, tile: Any, rows: np.ndarray, columns: np.ndarray, value: float) -> None:
        if isinstance(tile, np.ndarray):  # the float32 copy (tiles with a bias)
            tile[rows, columns] = value
            return
        torch = _torch()
        tile[torch.from_numpy(rows).to(tile.device), torch.from_numpy(columns).to(tile.device)] = value

    def _tile(self, rows: int, columns: int) -> Any:
        torch = _torch()
        buffer = getattr(self._local, "tile", None)
        if buffer is None or buffer.numel() < rows * columns:
            buffer = torch.empty(rows * columns, dtype=self.dtype, device=self.device)
            self._local.tile = buffer
        return buffer[: rows * columns].view(rows, columns)

    @contextlib.contextmanager
    def _exact_accumulation(self):
        torch = _torch()
        if not (self.on_gpu and self.precision == "bfloat16"):
            yield
            return
        flags = torch.backends.cuda.matmul
        held = flags.allow_bf16_reduced_precision_reduction
        flags.allow_bf16_reduced_precision_reduction = False
        try:
            yield
        finally:
            flags.allow_bf16_reduced_precision_reduction = held

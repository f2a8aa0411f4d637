"""Training the block encoder from a sampled neighbour matrix with margin-weighted triplets."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._artifact import check_target
from .._check import check_finite_scalar, check_positive_int
from .._progress import progress_bar
from ..errors import InputError
from ..sampling import SampledMatrix
from .encoder import BlocksEncoder, torch

__all__ = ["Triplets", "mine_triplets", "train_blocks"]
logger = logging.getLogger("nnlift")


@dataclass(frozen=True)
class Triplets:
    """Anchor, positive and negative rows with the margin ``|s_xy − s_xz|`` of each triplet."""

    anchors: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    margins: np.ndarray

    def __len__(self) -> int:
        return len(self.anchors)


def mine_triplets(
    matrix: sp.csr_matrix, n: int, rng: np.random.Generator, *, min_margin: float = 0.1, max_rounds: int = 50
) -> Triplets:
    """``n`` triplets from a sparse similarity matrix, vectorised (ARCHITECTURE §3, block embeddings).

    The anchor x is random (among rows with stored neighbours); y is one of x's
    stored neighbours; z is random with z ≠ x. ``s_xz`` is the stored score or,
    when the pair is absent, x's smallest stored score. A triplet is kept when
    ``|s_xy − s_xz| > min_margin``; the positive is the more similar of y and z.
    """
    n = check_positive_int(n, "n")
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sort_indices()
    size = matrix.shape[0]
    if size < 3:
        raise InputError(f"the matrix needs at least 3 points to mine triplets; got {size}")
    lengths = np.diff(matrix.indptr)
    rows_with = np.flatnonzero(lengths > 0)
    if len(rows_with) == 0:
        raise InputError("the similarity matrix has no stored neighbours")
    row_min = np.full(size, np.inf)
    row_min[rows_with] = np.minimum.reduceat(matrix.data, matrix.indptr[rows_with])
    keys = np.repeat(np.arange(size, dtype=np.int64), lengths) * size + matrix.indices  # sorted: rows, then columns
    parts: list[tuple[np.ndarray, ...]] = []
    kept = 0
    for _ in range(max_rounds):
        batch = max(2 * (n - kept), 1024)
        x = rows_with[rng.integers(0, len(rows_with), batch)]
        slot = matrix.indptr[x] + (rng.random(batch) * lengths[x]).astype(np.int64)
        y, s_xy = matrix.indices[slot].astype(np.int64), matrix.data[slot].astype(np.float64)
        z = rng.integers(0, size - 1, batch)
        z = z + (z >= x)  # uniform over every row but x
        where = np.searchsorted(keys, x * size + z)
        present = (where < len(keys)) & (keys[np.minimum(where, len(keys) - 1)] == x * size + z)
        s_xz = np.where(present, matrix.data[np.minimum(where, len(keys) - 1)], row_min[x])
        margin = np.abs(s_xy - s_xz)
        keep = margin > min_margin
        y_first = s_xy >= s_xz
        parts.append((x[keep], np.where(y_first, y, z)[keep], np.where(y_first, z, y)[keep], margin[keep]))
        kept += int(keep.sum())
        if kept >= n:
            break
    if kept == 0:
        raise InputError(f"no triplet has a margin above {min_margin}: the neighbours' similarities are too uniform")
    anchors, positives, negatives, margins = (np.concatenate(p)[:n] for p in zip(*parts))
    if len(anchors) < n:
        logger.warning("mined only %d of %d triplets with margin > %g", len(anchors), n, min_margin)
    return Triplets(anchors, positives, negatives, margins.astype(np.float32))


def _triplet_loss(encoder: BlocksEncoder, vectors: Any, triplets: Triplets, index: np.ndarray) -> Any:
    def embed(rows: np.ndarray) -> Any:
        return torch.nn.functional.normalize(encoder(vectors[torch.from_numpy(rows)]), dim=1)

    anchor, positive, negative = (
        embed(getattr(triplets, part)[index]) for part in ("anchors", "positives", "negatives")
    )
    to_positive = 1.0 - (anchor * positive).sum(dim=1)
    to_negative = 1.0 - (anchor * negative).sum(dim=1)
    margin = torch.from_numpy(triplets.margins[index])
    return torch.relu(to_positive - to_negative + margin).mean()


def train_blocks(
    target: SampledMatrix,
    *,
    val_target: SampledMatrix | None = None,
    num_blocks: int = 4,
    block_size: int = 64,
    dropout: float = 0.05,
    epochs: int = 200,
    stop_patience: int = 10,
    min_delta: float = 1e-3,
    triplets_per_epoch: int = 3200,
    batch_size: int = 32,
    val_triplets: int = 1600,
    lr: float = 2e-3,
    factor: float = 0.5,
    patience: int = 5,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> BlocksEncoder:
    """Train a :class:`BlocksEncoder` on a sampled neighbour matrix; returns the best encoder (lowest val loss).

    Adam with ReduceLROnPlateau (``factor``, ``patience``) on the validation
    loss. The validation triplets are mined once, with their own seed, from
    ``val_target``: a sample disjoint from ``target`` (``split_neighbors``,
    ``nnlift blocks prepare --val-output``). Without it they come from
    ``target`` itself, so nothing is held out, and a warning says so.

    Training stops early when the validation loss has not improved by
    ``min_delta`` (relative) for ``stop_patience`` epochs; ``epochs`` is the
    most it runs. ``stop_`` on the returned encoder says why it stopped and
    which epoch it kept; ``history_`` holds train loss, validation loss,
    learning rate and seconds per epoch. With ``checkpoint``, the best encoder
    is saved there as an nnlift artifact; the path is checked before training
    (an existing artifact is replaced only with ``overwrite=True``, anything
    else never).
    """
    if checkpoint is not None:
        check_target(checkpoint, overwrite=overwrite, option="checkpoint")
    epochs = check_positive_int(epochs, "epochs")
    stop_patience = check_positive_int(stop_patience, "stop_patience")
    min_delta = check_finite_scalar(min_delta, "min_delta", low=0.0, high=1.0)
    if val_target is None:
        logger.warning(
            "train_blocks: validation triplets come from the training matrix, so nothing is held out; "
            "pass val_target (split_neighbors, or `nnlift blocks prepare --val-output`)"
        )
    elif np.shape(val_target.vectors)[1:] != np.shape(target.vectors)[1:]:
        raise InputError(
            f"val_target has vectors of width {np.shape(val_target.vectors)[1:]}; target has {np.shape(target.vectors)[1:]}"
        )
    vectors = torch.from_numpy(np.ascontiguousarray(target.vectors, dtype=np.float32))
    torch.manual_seed(seed)
    encoder = BlocksEncoder(vectors.shape[1], num_blocks, block_size, dropout)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=factor, patience=patience)
    held = target if val_target is None else val_target
    val_vectors = torch.from_numpy(np.ascontiguousarray(held.vectors, dtype=np.float32))
    validation = mine_triplets(held.matrix, val_triplets, np.random.default_rng(seed + 1_000_003))
    rng = np.random.default_rng(seed)
    best, best_state, best_epoch, history, plateau = np.inf, None, 0, [], False
    with progress_bar("training block encoder", epochs, enabled=progress) as bar:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            triplets = mine_triplets(target.matrix, triplets_per_epoch, rng)
            order = rng.permutation(len(triplets))
            encoder.train()
            total = 0.0
            for lo in range(0, len(order), batch_size):
                optimiser.zero_grad()
                loss = _triplet_loss(encoder, vectors, triplets, order[lo : lo + batch_size])
                loss.backward()
                optimiser.step()
                total += loss.item() * len(order[lo : lo + batch_size])
            encoder.eval()
            with torch.no_grad():
                val_loss = _triplet_loss(encoder, val_vectors, validation, np.arange(len(validation))).item()
            scheduler.step(val_loss)
            record = {
                "epoch": epoch,
                "train_loss": total / len(order),
                "val_loss": val_loss,
                "lr": optimiser.param_groups[0]["lr"],
                "seconds": time.perf_counter() - start,
            }
            history.append(record)
            logger.info(
                "epoch %d: train %.4f, val %.4f, lr %.1e, %.1fs",
                epoch,
                record["train_loss"],
                val_loss,
                record["lr"],
                record["seconds"],
            )
            if val_loss < best * (1.0 - min_delta) or best_state is None:
                best, best_epoch = val_loss, epoch
                best_state = {k: v.clone() for k, v in encoder.state_dict().items()}
            bar.advance(1)
            if epoch - best_epoch >= stop_patience:
                plateau = True
                break
    if plateau:
        reason = f"validation loss stopped improving (by {min_delta:g}) for {stop_patience} epochs"
    else:
        reason = f"reached epochs={epochs}"
        if best_epoch > epochs - stop_patience:
            reason += "; the validation loss was still falling: raise epochs"
            logger.warning("train_blocks %s", reason)
    encoder.load_state_dict(best_state)
    encoder.eval()
    encoder.history_ = history
    encoder.stop_ = {"reason": reason, "epochs_run": len(history), "best_epoch": best_epoch, "best_val_loss": best}
    if checkpoint is not None:
        encoder.save(checkpoint, overwrite=overwrite)
    return encoder

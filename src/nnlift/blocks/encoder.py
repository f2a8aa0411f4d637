"""The block-softmax encoder: ``y = concat_b softmax(W_b · dropout(x) + c_b)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._artifact import read_artifact, save_artifact
from .._check import check_array, check_finite_scalar, check_positive_int
from .._optional import require

torch = require("torch", "block embeddings")
nn = torch.nn

__all__ = ["BlocksEncoder"]


class BlocksEncoder(nn.Module):
    """``num_blocks`` softmax blocks of ``block_size`` over a linear map of the (dropped-out) input.

    Each block of the output sums to 1, so a row is ``num_blocks`` probability
    distributions: peaked blocks mean a confident, typical item.

    Examples
    --------
    >>> import torch
    >>> encoder = BlocksEncoder(input_dim=32, num_blocks=4, block_size=8)
    >>> y = encoder(torch.zeros(2, 32))
    >>> tuple(y.shape), bool(torch.allclose(y.view(2, 4, 8).sum(-1), torch.ones(2, 4)))
    ((2, 32), True)
    """

    def __init__(self, input_dim: int, num_blocks: int = 4, block_size: int = 64, dropout: float = 0.05) -> None:
        super().__init__()
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.num_blocks = check_positive_int(num_blocks, "num_blocks")
        self.block_size = check_positive_int(block_size, "block_size", minimum=2)
        self.dropout_rate = check_finite_scalar(dropout, "dropout", low=0.0, high=0.99)
        self.dropout = nn.Dropout(self.dropout_rate)
        self.linear = nn.Linear(self.input_dim, self.num_blocks * self.block_size)

    def forward(self, x: Any) -> Any:
        logits = self.linear(self.dropout(x)).view(-1, self.num_blocks, self.block_size)
        return torch.softmax(logits, dim=-1).reshape(-1, self.num_blocks * self.block_size)

    def encode(self, vectors: Any, batch_size: int = 4096) -> np.ndarray:
        """Block embeddings (n, num_blocks·block_size) as float32 numpy, in evaluation mode."""
        array = check_array(vectors, "vectors", width=self.input_dim)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = torch.cat(
                [self(torch.from_numpy(array[i : i + batch_size])) for i in range(0, len(array), batch_size)]
            )
        self.train(was_training)
        return out.numpy()

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """Weights and shape as an nnlift artifact (reopen with ``nnlift.load``)."""
        params = {
            "input_dim": self.input_dim,
            "num_blocks": self.num_blocks,
            "block_size": self.block_size,
            "dropout": self.dropout_rate,
        }
        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in self.state_dict().items()}
        return save_artifact(path, self, params, arrays, extra)

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict) -> BlocksEncoder:
        encoder = cls(**manifest["params"])
        encoder.load_state_dict({name: torch.as_tensor(value) for name, value in arrays.items()})
        encoder.eval()
        encoder.history_ = manifest.get("extra", {}).get("history", [])
        return encoder

    @classmethod
    def load(cls, path: str | os.PathLike) -> BlocksEncoder:
        manifest, arrays = read_artifact(path, expected_class=cls)
        return cls._from_artifact(manifest, arrays)

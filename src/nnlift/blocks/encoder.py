"""The block-softmax encoder: ``y = concat_b softmax(W_b · dropout(x) + c_b)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._artifact import ArtifactError, Contents, load_artifact, require_arrays
from .._artifact import save as save_object
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

    def _artifact(self) -> Contents:
        params = {
            "input_dim": self.input_dim,
            "num_blocks": self.num_blocks,
            "block_size": self.block_size,
            "dropout": self.dropout_rate,
        }
        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in self.state_dict().items()}
        extra = {"history": list(getattr(self, "history_", [])), "stop": getattr(self, "stop_", None)}
        return Contents(params, arrays, extra)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Weights, shape and training history as an nnlift artifact (reopen with ``nnlift.load``).

        Atomic; an existing artifact is replaced only with ``overwrite=True``, anything else never.
        """
        return save_object(self, path, overwrite=overwrite)

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict, parts: dict) -> BlocksEncoder:
        encoder = cls(**manifest["params"])
        expected = {name: tuple(value.shape) for name, value in encoder.state_dict().items()}
        require_arrays(arrays, tuple(expected), owner="BlocksEncoder")
        for name, shape in expected.items():
            if arrays[name].shape != shape or arrays[name].dtype != np.float32 or not np.isfinite(arrays[name]).all():
                raise ArtifactError(f"BlocksEncoder artifact: {name} must be finite float32 of shape {shape}")
        encoder.load_state_dict({name: torch.as_tensor(value) for name, value in arrays.items()})
        encoder.eval()
        history = manifest["extra"].get("history", [])
        if not isinstance(history, list):
            raise ArtifactError("BlocksEncoder artifact: extra.history must be a list")
        encoder.history_ = history
        stop = manifest["extra"].get("stop")
        if stop is not None and not isinstance(stop, dict):
            raise ArtifactError("BlocksEncoder artifact: extra.stop must be a mapping")
        encoder.stop_ = stop
        return encoder

    @classmethod
    def load(cls, path: str | os.PathLike) -> BlocksEncoder:
        """Load an encoder saved by :meth:`save`."""
        return load_artifact(path, expected_class=cls)

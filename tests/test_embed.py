import numpy as np
import pytest

from nnlift.embed import embed_texts, get_embedder

pytest.importorskip("wordllama")


def test_wordllama_embeds_unit_rows_and_caches(tmp_path):
    texts = ["a small domestic cat", "a young cat, a kitten", "a heavy goods vehicle"]
    first = embed_texts(texts, "wordllama", cache_dir=tmp_path, progress=False)
    assert first.shape == (3, 256) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert first[0] @ first[1] > first[0] @ first[2]  # related texts are closer
    files = list((tmp_path / "embeddings").glob("*.npy"))
    assert len(files) == 1
    np.save(files[0], np.zeros((3, 256), np.float32))  # a second call must read the cache, not re-embed
    cached = embed_texts(texts, "wordllama", cache_dir=tmp_path, progress=False)
    assert not cached.any()
    other = embed_texts(texts[:2], "wordllama", cache_dir=tmp_path, progress=False)  # other texts, other key
    np.testing.assert_allclose(other, first[:2], atol=1e-6)


def test_embed_errors():
    with pytest.raises(ValueError, match="model must be one of"):
        get_embedder("bert")
    with pytest.raises(ValueError, match="texts is empty"):
        embed_texts([], cache_dir=False)

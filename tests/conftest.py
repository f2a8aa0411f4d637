import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import settings

# Tests are deterministic: hypothesis draws the same examples on every run and machine, so a
# run that passes here passes in CI. HYPOTHESIS_PROFILE=explore draws fresh examples (and keeps
# the failures it finds in .hypothesis/) when hunting for new cases; add those as @example.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", max_examples=500, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

# Engine timings are cached per machine (nnlift.engines); the tests, and the processes they start, keep theirs
# in a directory of their own, never in the user's ~/.cache.
os.environ["NNLIFT_CACHE_DIR"] = tempfile.mkdtemp(prefix="nnlift-test-cache-")
atexit.register(shutil.rmtree, os.environ["NNLIFT_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_topk(scores, k):
    """Full stable sort: descending score, lower id first."""
    order = np.argsort(-scores.astype(np.float64), axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def assert_same_neighbors(ids, scores, ref_ids, ref_scores, tol=1e-5):
    """Equal up to ties: where scores tie within tol, the ids may swap (as faiss's check_ref_knn_with_draws)."""
    np.testing.assert_allclose(scores, ref_scores, atol=tol)
    for row in range(ids.shape[0]):
        if np.array_equal(ids[row], ref_ids[row]):
            continue
        values = ref_scores[row]
        # group positions by (approximately) equal score and compare as sets
        start = 0
        while start < len(values):
            stop = start + 1
            while stop < len(values) and abs(values[stop] - values[start]) <= tol:
                stop += 1
            if stop - start == 1 and stop < len(values):
                assert ids[row, start] == ref_ids[row, start], f"row {row} differs at {start}"
            elif stop < len(values):
                assert set(ids[row, start:stop]) == set(ref_ids[row, start:stop]), f"row {row} tie group differs"
            start = stop

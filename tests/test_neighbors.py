import numpy as np
import pytest

from nnlift import Neighbors
from nnlift.neighbors import sort_neighbors


def test_csr_and_lists_drop_padding():
    nb = Neighbors(np.array([[3, 1, -1], [0, -1, -1]]), np.array([[0.9, 0.5, -np.inf], [0.7, -np.inf, -np.inf]]))
    ids, scores = nb.to_lists()
    assert [a.tolist() for a in ids] == [[3, 1], [0]]
    graph = nb.to_csr(n_columns=4)
    assert graph.shape == (2, 4)
    assert graph[0, 3] == pytest.approx(0.9) and graph[1, 0] == pytest.approx(0.7)
    assert graph.nnz == 3
    with pytest.raises(ValueError, match="n_columns"):
        nb.to_csr(n_columns=2)


def test_sort_neighbors_tie_rule_and_padding():
    nb = sort_neighbors(np.array([[5, 2, -1, 9]]), np.array([[0.5, 0.5, 0.9, 0.7]]))
    assert nb.ids.tolist() == [[9, 2, 5, -1]]
    assert np.isneginf(nb.scores[0, -1])


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="equal shapes"):
        Neighbors(np.zeros((2, 3)), np.zeros((2, 2)))


def test_unpacking_is_an_error_that_names_ids_and_scores():
    import nnlift

    found = nnlift.topk(np.eye(3)[:2], np.eye(3), k=2)  # exactly two queries: unpacking used to "work"
    with pytest.raises(TypeError, match="use found.ids and found.scores"):
        scores, ids = found
    assert found[1].ids.tolist() == [[1, 0]]

"""Neighbour and walk figures: what is drawn is what the search returned."""

import numpy as np
import pytest

import nnlift
from nnlift.algebra import direction, walk

pytest.importorskip("matplotlib")
import matplotlib.image

from nnlift import plot


@pytest.fixture
def captured(monkeypatch):
    """The rows each figure was drawn from, and each call of the item drawer."""
    rows, calls = [], []
    real = plot._grid

    def grid(r, draw, *args, **kwargs):
        rows.append(r)
        return real(r, lambda axis, item: (calls.append(item), draw(axis, item)), *args, **kwargs)

    monkeypatch.setattr(plot, "_grid", grid)
    return rows, calls


@pytest.fixture
def digits():
    rng = np.random.default_rng(0)
    images = rng.random((40, 6, 6)).astype(np.float32)
    return images, images.reshape(40, -1)


def test_any_neighbors_become_an_image_grid_with_targets_framed(tmp_path, captured, digits):
    images, flat = digits
    found = nnlift.topk(flat[:3], flat, k=4)
    path = plot.plot_neighbors(flat[:3], found, images=images, targets=[0, [1, 7], 99], path=tmp_path / "n.png")
    assert matplotlib.image.imread(path).shape[2] in (3, 4)
    (rows,), calls = captured
    assert len(rows) == 3
    for r, ((head, caption), cells) in enumerate(rows):
        assert np.array_equal(head, flat[r]) and caption == "query"
        assert [c[0] for c in cells] == found.labels(r)
        assert [c[1] for c in cells] == [f"{s:.3f}" for s in found.scores[r]]
    assert [c[3] for c in rows[0][1]] == [i == 0 for i in found.labels(0)]  # the right item framed
    assert sum(c[3] for c in rows[2][1]) == 0  # a target not found frames nothing
    assert sum(isinstance(item, (int, np.integer)) for item in calls) == 12  # neighbours drawn by id from images


def test_text_labels_keys_and_a_custom_drawer(tmp_path, captured):
    vectors = np.eye(4, dtype=np.float32) + 0.1
    index = nnlift.ExactIndex().add(vectors, ids=["a", "b", "c", "d"])
    found = index.search(vectors[:2], k=2)
    table = plot.plot_neighbors(None, found, labels={"a": "apple", "b": "bread"})
    assert table.splitlines()[1].split() == ["0", "1", "a", f"{found.scores[0, 0]:.3f}", "apple"]
    seen = []
    plot.plot_neighbors(["a", "b"], found, draw=lambda axis, item: seen.append(item), path=tmp_path / "t.png")
    assert seen == ["a", *found.labels(0), "b", *found.labels(1)]


def test_a_walk_shows_each_steps_items_and_frames_the_new_ones(tmp_path, captured):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((60, 8)).astype(np.float32)
    recommender = nnlift.Recommender().fit(vectors)
    steps = walk(0, direction([1, 2], [3, 4], recommender), recommender, scales=(0.5, 1.0, 2.0), k=4)
    path = plot.plot_walk(steps, tmp_path / "w.png", start=0, labels=[f"item {i}" for i in range(60)])
    assert path.stat().st_size > 1000
    (rows,), _ = captured
    assert rows[0] == ((None, "start"), [(0, "", plot.PLAIN, False)])
    for ((_, title), cells), step in zip(rows[1:], steps):
        assert title == f"scale {step.scale:g}\n{len(step.new)} new"
        assert [c[0] for c in cells] == step.ids
        assert [c[2] == plot.NEW for c in cells] == [i in step.new for i in step.ids]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda f: plot.plot_neighbors(None, f, targets=[1], path="x.png"), nnlift.InputError, "targets must hold one"),
        (lambda f: plot.plot_neighbors(None, f, draw="imshow", path="x.png"), nnlift.InputTypeError, "draw must be"),
        (
            lambda f: plot.plot_neighbors(None, f, images=np.zeros((10, 5)), path="x.png"),
            nnlift.InputError,
            "not square",
        ),
        (
            lambda f: plot.plot_neighbors(None, f, image_shape=(2, 2), path="x.png"),
            nnlift.InputError,
            "given no images",
        ),
        (lambda f: plot.plot_neighbors(None, [1, 2], path="x.png"), nnlift.InputTypeError, "list of Lookup"),
        (lambda f: plot.plot_walk([], "x.png"), nnlift.InputTypeError, "list of Step"),
    ],
)
def test_bad_figure_input_is_named(call, error, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = nnlift.topk(np.eye(5)[:2], np.eye(5), k=2)
    with pytest.raises(error, match=message):
        call(found)
    assert not (tmp_path / "x.png").exists()

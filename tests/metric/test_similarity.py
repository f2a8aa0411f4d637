"""Similarity learning on digits with a small MLP (seeded)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")
pytest.importorskip("sklearn")

from nnlift.datasets import load_digits_split  # noqa: E402
from nnlift.metric import SimilarityModel  # noqa: E402


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU())


@pytest.fixture(scope="module")
def split():
    torch.set_num_threads(2)
    return load_digits_split(val_size=0.25, test_size=0.25, seed=0)


@pytest.fixture(scope="module")
def trained(split):
    model = SimilarityModel(mlp(), 32, epochs=20, lr=3e-3, progress=False, seed=0)
    assert model.fit(split.x_train, split.y_train, val=(split.x_val, split.y_val)) is model
    return model.index(split.x_train, split.y_train)


def raw_pixels(split):
    model = SimilarityModel(torch.nn.Identity(), 64)
    model.head = torch.nn.Identity()
    return model.index(split.x_train, split.y_train)


def test_training_beats_raw_pixels_on_held_out(split, trained):
    learned = trained.evaluate_retrieval(split.x_test, split.y_test)
    raw = raw_pixels(split).evaluate_retrieval(split.x_test, split.y_test)
    print("learned", learned, "raw", raw)
    # mAP@R (what a metric loss optimises: all same-class items ranked first) beats raw pixels by far.
    # precision@1 does not: raw-pixel 1-NN is a strong baseline on digits (0.982 here against the learned
    # 0.971), so only a sanity floor is asserted for it; the closing note reports both.
    assert learned["map@r"] > raw["map@r"] + 0.3
    assert learned["precision@1"] > 0.95
    history = trained.history_
    assert len(history) == 20 and history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_map@r"] > history[0]["val_map@r"]


def test_calibration_target_holds_on_a_second_split(split, trained):
    calibration = trained.calibrate(split.x_val, split.y_val, targets={"precision": 0.99})
    assert set(calibration.cutpoints) == {"optimal", "precision=0.99"}
    at_target = trained.evaluate_classification(split.x_test, split.y_test, ["precision=0.99"])[0]
    n = at_target["matched"]
    noise = 2 * np.sqrt(0.99 * 0.01 / n)  # two standard errors of a proportion
    print("test precision at the val cutpoint", at_target, "noise", noise)
    assert at_target["precision"] >= 0.99 - noise and at_target["recall"] > 0.5
    matched = trained.match(split.x_test, "precision=0.99")
    far = trained.match(split.x_test, cutpoint=-1.0)
    assert (far == None).all() and (matched != None).mean() > 0.5  # noqa: E711


def test_unseen_class_added_without_retraining(split):
    seen = split.y_train != 9
    model = SimilarityModel(mlp(), 32, epochs=10, lr=3e-3, progress=False, seed=0)
    model.fit(split.x_train[seen], split.y_train[seen])
    model.index(split.x_train[seen], split.y_train[seen])
    nines = split.x_test[split.y_test == 9]
    before = [r[0].label for r in model.lookup(nines, 1)]
    assert 9 not in before
    model.index(split.x_train[~seen], split.y_train[~seen], data=[f"nine #{i}" for i in range((~seen).sum())])
    after = [r[0].label for r in model.lookup(nines, 1)]
    print("share of unseen-class queries whose nearest item is a 9:", np.mean(np.array(after) == 9))
    assert np.mean(np.array(after) == 9) > 0.8
    hit = model.single_lookup(nines[0], k=3)
    assert any(r.data is not None and r.data.startswith("nine") for r in hit)


def test_save_load_round_trips_lookups(tmp_path, split, trained):
    trained.calibrate(split.x_val, split.y_val)
    path = trained.save(tmp_path / "model")
    again = SimilarityModel.load(path, backbone=mlp())
    a, b = trained.lookup(split.x_test[:20], 5), again.lookup(split.x_test[:20], 5)
    assert a == b
    assert again.calibration_.cutpoints == trained.calibration_.cutpoints
    assert again.epochs == trained.epochs == 20 and again.lr == trained.lr == 3e-3 and again.history_ == trained.history_
    import nnlift

    with pytest.raises(TypeError, match="needs its backbone"):
        nnlift.load(path)


def test_plot_neighbors_grid_and_text(tmp_path, split, trained):
    pytest.importorskip("matplotlib")
    from nnlift.plot import plot_neighbors

    lookups = trained.single_lookup(split.x_test[0], k=5)
    figure_path = plot_neighbors(
        split.x_test[0],
        lookups,
        images=split.x_train,
        image_shape=(8, 8),
        path=tmp_path / "grid.png",
        query_label=int(split.y_test[0]),
    )
    assert figure_path.stat().st_size > 1000
    text = plot_neighbors("a query", lookups)
    assert "distance" in text and str(lookups[0].label) in text


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, s: m.fit(s.x_train, s.y_train[:10]), "10 labels but x has"),
        (lambda m, s: m.set_params(classes_per_batch=1).fit(s.x_train, s.y_train), "at least 2"),
        (lambda m, s: m.set_params(classes_per_batch=11).fit(s.x_train, s.y_train), "only 10 classes"),
        (
            lambda m, s: m.set_params(classes_per_batch=2).fit(s.x_train[:3], np.array([0, 0, 1])),
            "at least 2 examples",
        ),
        (lambda m, s: m.fit(s.x_train[:0], s.y_train[:0]), "x is empty"),
        (lambda m, s: m.set_params(loss="magic").fit(s.x_train, s.y_train), "loss must be one of"),
        (lambda m, s: m.lookup(s.x_test, 1), "index is empty"),
        (lambda m, s: m.index(s.x_train, s.y_train, data=[1, 2]), "data has 2 entries"),
        (lambda m, s: m.index(s.x_train).calibrate(s.x_val, s.y_val), "needs positives"),
        (lambda m, s: m.index(s.x_train, s.y_train).match(s.x_val), "calibrate"),
    ],
)
def test_clear_errors(split, call, message):
    model = SimilarityModel(mlp(), 16)
    with pytest.raises(ValueError, match=message):
        call(model, split)


class SmallCNN(torch.nn.Module):
    """Two 3×3 convolutions over the 8×8 image: enough to beat raw pixels on precision@1 too."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Unflatten(1, (1, 8, 8)),
            torch.nn.Conv2d(1, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(64 * 16, 128),
            torch.nn.ReLU(),
        )

    def forward(self, x):
        return self.net(x)


def test_small_cnn_beats_raw_pixels_on_both_metrics(split):
    torch.manual_seed(0)
    model = SimilarityModel(SmallCNN(), 32, epochs=20, lr=1e-3, progress=False, seed=0)
    model.fit(split.x_train, split.y_train)
    learned = model.index(split.x_train, split.y_train).evaluate_retrieval(split.x_test, split.y_test)
    raw = raw_pixels(split).evaluate_retrieval(split.x_test, split.y_test)
    print("cnn", learned, "raw", raw)
    assert learned["precision@1"] > raw["precision@1"]
    assert learned["map@r"] > raw["map@r"] + 0.3


def test_the_index_passed_is_a_template_and_is_never_filled():
    torch = pytest.importorskip("torch")
    import nnlift
    from nnlift.metric import SimilarityModel

    template = nnlift.IVFIndex(n_lists=2, n_probe=2)
    model = SimilarityModel(torch.nn.Sequential(torch.nn.Linear(4, 8)), 4, index=template)
    model.index(np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32), list(range(10)))
    assert len(template) == 0 and len(model.index_) == 10 and type(model.index_) is nnlift.IVFIndex
    assert model.get_params()["index"] is template


def test_lookup_of_embeddings_is_clear_and_lookup_embeddings_answers_it():
    import nnlift

    model = SimilarityModel(torch.nn.Sequential(torch.nn.Linear(10, 8)), 4)
    items = np.random.default_rng(0).normal(size=(20, 10)).astype(np.float32)
    model.index(items, [i % 3 for i in range(20)])
    embedded = model.embed(items[:2])
    with pytest.raises(nnlift.InputError, match=r"shape \(2, 4\) does not fit the backbone.*use lookup_embeddings"):
        model.lookup(embedded, k=2)
    direct, by_embedding = model.lookup(items[:2], k=3), model.lookup_embeddings(embedded, k=3)
    assert [[r.id for r in row] for row in direct] == [[r.id for r in row] for row in by_embedding]
    assert direct[0][0].id == 0 and by_embedding[1][0].id == 1
    with pytest.raises(nnlift.InputError, match=r"embedding_dim=4"):
        model.lookup_embeddings(items[:2])


def test_index_summary_reset_index_and_majority_vote_match(split):
    model = SimilarityModel(mlp(), 32, epochs=3, lr=3e-3, progress=False, seed=0)
    model.fit(split.x_train, split.y_train)
    model.index(split.x_train, split.y_train)
    summary = model.index_summary()
    assert summary["items"] == len(split.x_train) and summary["classes"] == 10
    assert sum(summary["per_label"].values()) == len(split.x_train)
    assert summary["per_label"][3] == int((split.y_train == 3).sum())
    one = model.match(split.x_test, cutpoint=2.0, k=1)
    voted = model.match(split.x_test, cutpoint=2.0, k=5)
    accuracy = lambda predicted: float(np.mean(predicted.astype(int) == split.y_test))  # noqa: E731
    print("match accuracy k=1:", accuracy(one), "k=5 vote:", accuracy(voted))
    assert accuracy(voted) >= accuracy(one) - 0.02  # a vote of 5 is not worse than the nearest alone
    assert (model.match(split.x_test[:5], cutpoint=-1.0, k=5) == None).all()  # noqa: E711 - nothing within
    model.reset_index()
    assert model.index_summary()["items"] == 0 and model.labels_ == []
    with pytest.raises(Exception, match="empty"):
        model.lookup(split.x_test[:1])
    model.index(split.x_train[:10], split.y_train[:10])
    assert model.index_summary()["items"] == 10

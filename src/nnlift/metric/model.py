"""``SimilarityModel``: TensorFlow Similarity's workflow on PyTorch.

Train any backbone with pytorch-metric-learning's losses and ``MPerClassSampler``,
index labelled items in an nnlift index, look up neighbours, calibrate a
match threshold on held-out data, evaluate, and save it all in one artifact.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._artifact import ArtifactError, Contents, load_artifact
from .._artifact import save as save_object
from .._check import check_finite_scalar, check_positive_int
from .._optional import require
from .._progress import progress_bar
from ..evaluate.metrics import hit_rate_at_k, map_at_r, precision_at_k
from ..index.base import BaseIndex, build_index, quiet
from ..index.exact import ExactIndex
from .calibration import Calibration, calibrate_thresholds, classification_at
from ..errors import InputError, InputTypeError

__all__ = ["SimilarityModel", "Lookup", "NO_MATCH"]
logger = logging.getLogger("nnlift")
NO_MATCH = None  # what match() returns beyond the threshold

torch = require("torch", "similarity learning")
nn = torch.nn


@dataclass(frozen=True)
class Lookup:
    """One indexed neighbour of a query."""

    id: Any
    label: Any
    distance: float
    data: Any = None


def _labels(y: Any, n: int, name: str = "y") -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise InputError(f"{name} must be 1-D (one label per row); got shape {labels.shape}")
    if len(labels) != n:
        raise InputError(f"{name} has {len(labels)} labels but x has {n} rows")
    return labels


class SimilarityModel(nn.Module):
    """A backbone, a linear projection to ``embedding_dim`` and L2 normalisation.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps a batch of inputs to a batch of feature vectors.
    embedding_dim : int
        Size of the metric embedding.
    index : nnlift index, optional
        Template of where ``index(...)`` stores items (``index_``, a clone: the
        index passed is never filled) and of the validation self-join; an
        ``ExactIndex`` (cosine) by default.

    Examples
    --------
    >>> import torch, numpy as np
    >>> model = SimilarityModel(torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU()), 16)
    >>> model.embed(np.zeros((2, 64), dtype=np.float32)).shape
    (2, 16)
    """

    # The backbone is code, passed again to load; the index is a part; a loss object is saved by its name.
    _saved_params = (
        "embedding_dim",
        "loss",
        "epochs",
        "classes_per_batch",
        "examples_per_class",
        "batches_per_epoch",
        "lr",
        "seed",
        "progress",
    )
    _load_needs = ("backbone",)

    def __init__(
        self,
        backbone: nn.Module,
        embedding_dim: int = 64,
        index: BaseIndex | None = None,
        *,
        loss: str | Any = "multi_similarity",
        epochs: int = 20,
        classes_per_batch: int = 8,
        examples_per_class: int = 4,
        batches_per_epoch: int | None = None,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise InputTypeError(f"backbone must be a torch.nn.Module; got {type(backbone).__name__}")
        self.backbone = backbone
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.loss = loss
        self.epochs = epochs
        self.classes_per_batch = classes_per_batch
        self.examples_per_class = examples_per_class
        self.batches_per_epoch = batches_per_epoch
        self.lr = lr
        self.seed = seed
        self.progress = progress
        self.head = nn.LazyLinear(self.embedding_dim)
        template = ExactIndex() if index is None else index
        if not isinstance(template, BaseIndex):
            raise InputTypeError(f"index must be an nnlift index such as ExactIndex(); got {type(index).__name__}")
        self._index_template = template  # never filled: the caller's index is not changed
        self.index_ = template.clone()
        self.labels_: list = []
        self.data_: list = []
        self.calibration_: Calibration | None = None
        self.history_: list[dict[str, float]] = []

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The model's parameters (backbone and index included), as scikit-learn's ``get_params``."""
        params = {n: getattr(self, n) for n in self._saved_params}
        return {"backbone": self.backbone, "index": self._index_template, **params}

    def set_params(self, **params: Any) -> SimilarityModel:
        """Change training settings (``epochs``, ``lr``, ``loss``...) before the next ``fit``; returns ``self``."""
        settable = [n for n in self._saved_params if n != "embedding_dim"]
        for name, value in params.items():
            if name not in settable:
                raise InputError(f"SimilarityModel has no settable parameter {name!r}; valid: {settable}")
            setattr(self, name, value)
        return self

    def forward(self, x: Any) -> Any:
        return nn.functional.normalize(self.head(self.backbone(x)), dim=1)

    # -- embedding -------------------------------------------------------------
    def embed(self, x: Any, batch_size: int = 1024) -> np.ndarray:
        """Unit embeddings (n, embedding_dim) as float32 numpy, without gradients."""
        inputs = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
        if len(inputs) == 0:
            raise InputError("x is empty")
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = torch.cat([self(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])
        except RuntimeError as exc:  # the backbone refused the input's shape
            hint = ""
            if inputs.ndim == 2 and inputs.shape[1] == self.embedding_dim:
                hint = f"; these look like embeddings already (width {self.embedding_dim}): use lookup_embeddings"
            raise InputError(
                f"x of shape {tuple(inputs.shape)} does not fit the backbone ({str(exc).splitlines()[0]}){hint}"
            ) from None
        finally:
            self.train(was_training)
        return out.numpy().astype(np.float32)

    # -- training --------------------------------------------------------------
    def fit(self, x: Any, y: Any, *, val: tuple[Any, Any] | None = None) -> SimilarityModel:
        """Train with a pytorch-metric-learning loss on batches of ``classes_per_batch × examples_per_class``.

        The training settings are the model's parameters (``loss``, ``epochs``,
        ``lr``...; ``loss`` is ``"multi_similarity"``, ``"triplet"``,
        ``"circle"``, ``"contrastive"`` or any pytorch-metric-learning loss
        object). Returns ``self``; ``history_`` holds one record per epoch:
        the training loss and, with ``val``, mAP@R and precision@1 of
        leave-one-out retrieval within the validation set.
        """
        epochs = check_positive_int(self.epochs, "epochs")
        lr = check_finite_scalar(self.lr, "lr", low=0.0)
        seed, progress = self.seed, self.progress
        classes_per_batch, examples_per_class = self.classes_per_batch, self.examples_per_class
        batches_per_epoch = (
            None if self.batches_per_epoch is None else check_positive_int(self.batches_per_epoch, "batches_per_epoch")
        )
        pml_losses = require("pytorch_metric_learning.losses", "similarity learning")
        samplers = require("pytorch_metric_learning.samplers", "similarity learning")
        common = require("pytorch_metric_learning.utils.common_functions", "similarity learning")
        inputs = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if len(inputs) == 0:
            raise InputError("x is empty")
        labels = _labels(y, len(inputs))
        classes, counts = np.unique(labels, return_counts=True)
        classes_per_batch = check_positive_int(classes_per_batch, "classes_per_batch")
        examples_per_class = check_positive_int(examples_per_class, "examples_per_class", minimum=2)
        if classes_per_batch < 2:
            raise InputError("classes_per_batch must be at least 2: a metric loss needs negatives from another class")
        if len(classes) < classes_per_batch:
            raise InputError(f"classes_per_batch={classes_per_batch} but y has only {len(classes)} classes")
        lonely = classes[counts < 2]
        if len(lonely):
            raise InputError(
                f"every class needs at least 2 examples to form positive pairs; class(es) {lonely[:5].tolist()} have 1"
            )
        criterion = self._loss(self.loss, pml_losses)
        batch_size = classes_per_batch * examples_per_class
        batches = batches_per_epoch or max(1, len(inputs) // batch_size)
        torch.manual_seed(seed)
        common.NUMPY_RANDOM = np.random.RandomState(seed)
        codes = torch.as_tensor(np.searchsorted(classes, labels))
        sampler = samplers.MPerClassSampler(
            codes, m=examples_per_class, batch_size=batch_size, length_before_new_iter=batches * batch_size
        )
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(inputs, codes), batch_size=batch_size, sampler=sampler, drop_last=True
        )
        self.history_ = []  # this fit's epochs
        self.embed(inputs[:2])  # materialise the lazy head before building the optimiser
        optimiser = torch.optim.Adam(self.parameters(), lr=lr)
        val_inputs = val_labels = None
        if val is not None:
            val_inputs = np.asarray(val[0], dtype=np.float32)
            val_labels = _labels(val[1], len(val_inputs), "val labels")
        self.train()
        with progress_bar("training", epochs * batches, enabled=progress) as bar:
            for epoch in range(1, epochs + 1):
                total = 0.0
                for batch_inputs, batch_labels in loader:
                    optimiser.zero_grad()
                    value = criterion(self(batch_inputs), batch_labels)
                    value.backward()
                    optimiser.step()
                    total += value.item()
                    bar.advance(1)
                record = {"epoch": epoch, "loss": total / batches}
                if val_inputs is not None:
                    record.update(_self_retrieval(self.embed(val_inputs), val_labels, self._index_template))
                self.history_.append(record)
                logger.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in record.items()})
        self.eval()
        return self

    @staticmethod
    def _loss(loss: str | Any, pml_losses: Any) -> Any:
        if not isinstance(loss, str):
            return loss
        choices = {
            "multi_similarity": pml_losses.MultiSimilarityLoss,
            "triplet": pml_losses.TripletMarginLoss,
            "circle": pml_losses.CircleLoss,
            "contrastive": pml_losses.ContrastiveLoss,
        }
        if loss not in choices:
            raise InputError(f"loss must be one of {sorted(choices)} or a pytorch-metric-learning loss; got {loss!r}")
        return choices[loss]()

    # -- index and lookup ---------------------------------------------------------
    def index(self, x: Any, y: Any = None, data: Sequence | None = None, ids: Any = None) -> SimilarityModel:
        """Embed and store items with optional labels and data; call again to add items (or new classes)."""
        embeddings = self.embed(x)
        n = len(embeddings)
        labels = [None] * n if y is None else _labels(y, n).tolist()
        if data is not None and len(data) != n:
            raise InputError(f"data has {len(data)} entries but x has {n} rows")
        start = len(self.index_)
        if ids is None and self.index_._external is not None:
            raise InputError("this index has explicit ids; pass ids= for the new items too")
        self.index_.add(embeddings, ids=ids)
        self.labels_ += labels
        self.data_ += [None] * n if data is None else list(data)
        logger.info("indexed %d items (%d in all)", n, start + n)
        return self

    def index_summary(self) -> dict[str, Any]:
        """What is indexed (TF Similarity's ``index_summary``): items, classes, items per label, the index.

        Examples
        --------
        >>> import torch
        >>> model = SimilarityModel(torch.nn.Identity(), 2)
        >>> model.head = torch.nn.Identity()
        >>> model.index([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], ["a", "b", "b"]).index_summary()["per_label"]
        {'a': 1, 'b': 2}
        """
        per_label: dict[Any, int] = {}
        for label in self.labels_:
            per_label[label] = per_label.get(label, 0) + 1
        return {
            "items": len(self.index_),
            "classes": len([label for label in per_label if label is not None]),
            "per_label": per_label,
            "unlabelled": per_label.get(None, 0),
            "embedding_dim": self.embedding_dim,
            "index": repr(self._index_template),
            "calibrated": self.calibration_ is not None,
        }

    def reset_index(self) -> SimilarityModel:
        """Empty the index (TF Similarity's ``reset_index``), keeping the trained model and its calibration."""
        self.index_ = self._index_template.clone()
        self.labels_, self.data_ = [], []
        return self

    def _neighbors(self, x: Any, k: int):
        return self._search_embeddings(self.embed(x), k)

    def _search_embeddings(self, embeddings: Any, k: int):
        if len(self.index_) == 0:
            raise InputError("the index is empty; call index(x, y) first")
        return self.index_.search(embeddings, check_positive_int(k, "k"))

    def lookup(self, x: Any, k: int = 5) -> list[list[Lookup]]:
        """Per query, its k nearest indexed items as ``Lookup(id, label, distance, data)`` (cosine distance)."""
        return self._records(self._neighbors(x, k))

    def lookup_embeddings(self, embeddings: Any, k: int = 5) -> list[list[Lookup]]:
        """:meth:`lookup` for queries that are already metric embeddings (``embed``'s output), not raw inputs."""
        width = self.embedding_dim
        array = np.asarray(embeddings)
        if array.ndim != 2 or array.shape[1] != width:
            raise InputError(f"embeddings must have shape (n, embedding_dim={width}); got {array.shape}")
        return self._records(self._search_embeddings(array, k))

    def _records(self, found) -> list[list[Lookup]]:
        out = []
        for row in range(len(found)):
            records = []
            for col in range(found.k):
                position = found.ids[row, col]
                if position < 0:
                    continue
                key = found.keys[row, col] if found.keys is not None else position
                internal = self.index_.positions([key])[0] if self.index_._external is not None else position
                records.append(
                    Lookup(
                        key.item() if hasattr(key, "item") else key,
                        self.labels_[internal],
                        float(1.0 - found.scores[row, col]),
                        self.data_[internal],
                    )
                )
            out.append(records)
        return out

    def single_lookup(self, x: Any, k: int = 5) -> list[Lookup]:
        """``lookup`` for one item."""
        array = np.asarray(x, dtype=np.float32)
        return self.lookup(array[None] if array.ndim == 1 else array[:1], k)[0]

    # -- calibration --------------------------------------------------------------
    def _nearest(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, list]:
        labels = _labels(y, len(np.asarray(x)))
        records = self.lookup(x, 1)
        predicted = [r[0].label for r in records]
        distances = np.array([r[0].distance for r in records])
        correct = np.array([p == t for p, t in zip(predicted, labels.tolist())])
        return distances, correct, predicted

    def calibrate(self, x: Any, y: Any, *, metric: str = "f1", targets: dict[str, float] | None = None) -> Calibration:
        """Distance cutpoints from held-out labelled data (``"optimal"`` for ``metric``, plus each target)."""
        distances, correct, _ = self._nearest(x, y)
        self.calibration_ = calibrate_thresholds(distances, correct, targets or {"precision": 0.99}, metric)
        return self.calibration_

    def match(self, x: Any, cutpoint: str | float = "optimal", k: int = 1) -> np.ndarray:
        """Each query's label by a vote of its ``k`` nearest items within the cutpoint; ``None`` when none is.

        With ``k=1`` it is the nearest item's label. With k > 1 each item within
        the cutpoint gives its label one vote; a tie goes to the tied label whose
        nearest item is closest (so the answer never depends on the order of
        labels).

        Examples
        --------
        >>> import torch
        >>> model = SimilarityModel(torch.nn.Identity(), 2)
        >>> model.head = torch.nn.Identity()
        >>> model = model.index([[1.0, 0.0], [0.95, 0.31], [0.9, 0.44], [0.0, 1.0]], ["a", "b", "b", "c"])
        >>> model.match([[1.0, 0.05]], cutpoint=0.5).tolist(), model.match([[1.0, 0.05]], cutpoint=0.5, k=3).tolist()
        (['a'], ['b'])
        """
        threshold = self._threshold(cutpoint)
        k = check_positive_int(k, "k")
        out = []
        for records in self.lookup(x, k):
            votes: dict[Any, list] = {}
            for rank, record in enumerate(records):
                if record.distance <= threshold:
                    tally = votes.setdefault(record.label, [0, rank])
                    tally[0] += 1
            if not votes:
                out.append(NO_MATCH)
                continue
            out.append(max(votes.items(), key=lambda item: (item[1][0], -item[1][1]))[0])
        return np.array(out, dtype=object)

    def _threshold(self, cutpoint: str | float) -> float:
        if isinstance(cutpoint, (int, float)) and not isinstance(cutpoint, bool):
            return check_finite_scalar(cutpoint, "cutpoint")
        if not isinstance(cutpoint, str):
            raise InputTypeError(f"cutpoint must be a distance or a calibrated name; got {cutpoint!r}")
        if self.calibration_ is None:
            raise InputError("call calibrate(x, y) before matching by a named cutpoint")
        if cutpoint not in self.calibration_.cutpoints:
            raise InputError(f"unknown cutpoint {cutpoint!r}; calibrated: {sorted(self.calibration_.cutpoints)}")
        return self.calibration_.cutpoints[cutpoint]

    # -- evaluation ----------------------------------------------------------------
    def evaluate_retrieval(self, x: Any, y: Any, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
        """precision@1, mAP@R and hit_rate@k of queries ``x`` against the indexed items, by label."""
        labels = _labels(y, len(np.asarray(x)))
        indexed = np.asarray(self.labels_, dtype=object)
        width = max(max(ks), int(max((indexed == t).sum() for t in set(labels.tolist()))))
        found = self._neighbors(x, min(width, len(self.index_)))
        positions = (
            found.ids
            if self.index_._external is None
            else np.vectorize(lambda key: -1 if key is None else self.index_.positions([key])[0], otypes=[np.int64])(
                found.keys
            )
        )
        targets = [np.flatnonzero(indexed == t) for t in labels.tolist()]
        out = {"precision@1": precision_at_k(positions, targets, 1), "map@r": map_at_r(positions, targets)}
        out.update({f"hit_rate@{k}": hit_rate_at_k(positions, targets, k) for k in ks})
        return out

    def evaluate_classification(self, x: Any, y: Any, cutpoints: Sequence[str | float] | None = None) -> list[dict]:
        """Precision, recall and F1 of ``match`` at each cutpoint (all calibrated ones by default)."""
        distances, correct, _ = self._nearest(x, y)
        names = (
            list(cutpoints)
            if cutpoints is not None
            else list(
                (self.calibration_ or Calibration(np.empty(0), np.empty(0), np.empty(0), np.empty(0), {})).cutpoints
            )
        )
        if not names:
            raise InputError("no cutpoints: calibrate first or pass cutpoints=")
        return [{"cutpoint": name, **classification_at(distances, correct, self._threshold(name))} for name in names]

    # -- persistence -----------------------------------------------------------------
    def _artifact(self) -> Contents:
        arrays = {f"weight:{name}": tensor.detach().cpu().numpy() for name, tensor in self.state_dict().items()}
        labels = np.asarray(self.labels_)
        if labels.dtype == object:
            raise InputTypeError("labels must all be numbers or all strings to be saved")
        arrays["labels"] = labels
        data = np.asarray(self.data_) if any(d is not None for d in self.data_) else None
        if data is not None and data.dtype != object:
            arrays["data"] = data
        elif data is not None:
            logger.warning("item data of mixed types is not saved (only arrays of numbers or strings are)")
        extra = {
            "in_features": int(self.head.in_features),
            "history": self.history_,
            "cutpoints": None if self.calibration_ is None else self.calibration_.cutpoints,
        }
        if self.calibration_ is not None:
            for name in ("thresholds", "precision", "recall", "f1"):
                arrays[f"calibration_{name}"] = getattr(self.calibration_, name)
        params = {name: getattr(self, name) for name in self._saved_params}
        if not isinstance(params["loss"], str):
            params["loss"] = f"custom:{type(params['loss']).__name__}"  # code, not data: pass it again to re-train
        return Contents(params, arrays, extra, {"index": self.index_})

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Weights, index, labels, data and calibration in one artifact folder (load with ``SimilarityModel.load``).

        The whole tree, index included, appears at once; an existing artifact is
        replaced only with ``overwrite=True``, anything else never.
        """
        return save_object(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, backbone: nn.Module) -> SimilarityModel:
        """Rebuild a saved model around ``backbone`` (an untrained module of the saved architecture)."""
        return load_artifact(path, expected_class=cls, backbone=backbone)

    @classmethod
    def _from_artifact(
        cls, manifest: dict, arrays: dict, parts: dict, backbone: nn.Module
    ) -> SimilarityModel:
        index = parts.get("index")
        if not isinstance(index, BaseIndex):
            raise ArtifactError("SimilarityModel artifact: its part 'index' must be an nnlift index")
        extra = manifest["extra"]
        model = cls(backbone, index=index.clone(), **manifest["params"])
        model.index_ = index
        model.head = nn.Linear(extra["in_features"], model.embedding_dim)
        state = {
            name.split(":", 1)[1]: torch.as_tensor(value)
            for name, value in arrays.items()
            if name.startswith("weight:")
        }
        model.load_state_dict(state)
        model.labels_ = arrays["labels"].tolist()
        if len(model.labels_) != len(index):
            raise ArtifactError(f"SimilarityModel artifact: {len(model.labels_)} labels for {len(index)} indexed items")
        model.data_ = arrays["data"].tolist() if "data" in arrays else [None] * len(model.labels_)
        model.history_ = extra["history"]
        if extra["cutpoints"] is not None:
            model.calibration_ = Calibration(
                *(arrays[f"calibration_{n}"] for n in ("thresholds", "precision", "recall", "f1")),
                cutpoints=extra["cutpoints"],
            )
        model.eval()
        return model


def _self_retrieval(embeddings: np.ndarray, labels: np.ndarray, template: BaseIndex) -> dict[str, float]:
    """Leave-one-out retrieval within a labelled set, by the index template's self-join: mAP@R and precision@1."""
    counts = {label: int((labels == label).sum()) for label in set(labels.tolist())}
    k = min(max(counts.values()), len(labels) - 1)
    built = build_index(template, np.ascontiguousarray(embeddings, dtype=np.float32))
    with quiet(built):
        found = built.self_join(k)
    targets = [
        np.flatnonzero((labels == label) & (np.arange(len(labels)) != i)) for i, label in enumerate(labels.tolist())
    ]
    return {"val_map@r": map_at_r(found.ids, targets), "val_precision@1": precision_at_k(found.ids, targets, 1)}

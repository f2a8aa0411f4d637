"""Is this bank like the queries? Diagnostics before trusting a bank correction.

NNN, CSLS, inverted softmax and QB-Norm lower the items that the *bank* finds
close, on the premise that the bank's queries are like the real ones. When
they are not (QB-Norm's users found that a training-split bank made results
worse), the correction penalises the wrong items. :func:`bank_report`
measures, on samples of the bank and of (unlabelled) real queries:

- ``mean_similarity``: each set's mean top-k similarity to the database;
- ``mean_shift``: the distance between the two sets' mean vectors, with a
  permutation p-value (the two-sample test: rows shuffled between the sets);
- ``hubness``: the N_k skewness of the database under each set's top-k;
- ``bias_agreement``: the Spearman correlation, over database items, of
  NNN's bias ``b(x)`` computed from the bank and from the queries. This is
  what a bank correction uses; near 1, the bank lowers the same items the
  queries' own neighbourhoods would.

It warns when the bias agreement is below ``0.5``, or when the sets differ
beyond chance (p < 0.01) *and* their mean similarities to the database
differ by more than ``0.05``: then NNN or QB-Norm are likely to hurt.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .._check import check_array, check_positive_int, normalize_rows
from ..errors import InputError
from ..correct.nnn import nnn_bias
from ..index.exact import ExactIndex
from .hubness import hubness

__all__ = ["BankReport", "bank_report", "BankWarning"]


class BankWarning(UserWarning):
    """The bank looks unlike the queries: a bank correction may hurt."""


@dataclass(frozen=True)
class BankReport:
    """What :func:`bank_report` measured (bank first, then queries, in each pair)."""

    mean_similarity: tuple[float, float]
    mean_shift: float
    mean_shift_p: float
    hubness: tuple[float, float]
    bias_agreement: float
    warnings: list[str] = field(default_factory=list)

    @property
    def likely_to_hurt(self) -> bool:
        return bool(self.warnings)

    def summary(self) -> str:
        lines = [
            f"mean top-k similarity to the database: bank {self.mean_similarity[0]:.3f}, "
            f"queries {self.mean_similarity[1]:.3f}",
            f"distance between the means: {self.mean_shift:.4f} (permutation p = {self.mean_shift_p:.3f})",
            f"N_k skewness of the database: bank {self.hubness[0]:.2f}, queries {self.hubness[1]:.2f}",
            f"agreement of NNN's bias from the bank and from the queries (Spearman): {self.bias_agreement:.3f}",
        ]
        return "\n".join(lines + [f"warning: {w}" for w in self.warnings])


def bank_report(
    bank: Any,
    queries: Any,
    database: Any,
    *,
    k: int = 10,
    sample: int = 2000,
    permutations: int = 200,
    seed: int = 0,
    warn: bool = True,
) -> BankReport:
    """Compare a bank with a sample of real queries, against the database (cosine).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centres = 2 * rng.normal(size=(10, 8))
    >>> def draw(n): return centres[rng.integers(0, 10, n)] + 0.5 * rng.normal(size=(n, 8))
    >>> like = bank_report(draw(300), draw(300), draw(500), warn=False)
    >>> like.likely_to_hurt, like.bias_agreement > 0.5
    (False, True)
    """
    database = normalize_rows(check_array(database, "database"), "database")
    bank = normalize_rows(check_array(bank, "bank", width=database.shape[1]), "bank")
    queries = normalize_rows(check_array(queries, "queries", width=database.shape[1]), "queries")
    k = check_positive_int(k, "k")
    sample = check_positive_int(sample, "sample", minimum=2)
    permutations = check_positive_int(permutations, "permutations")
    if k > min(len(bank), len(queries), len(database)):
        raise InputError(f"k={k} is more than the bank, the queries or the database hold")
    rng = np.random.default_rng(seed)
    bank = bank[np.sort(rng.choice(len(bank), min(sample, len(bank)), replace=False))]
    queries = queries[np.sort(rng.choice(len(queries), min(sample, len(queries)), replace=False))]
    index = ExactIndex(progress=False).add(database)
    found = {name: index.search(rows, k) for name, rows in (("bank", bank), ("queries", queries))}
    similarity = tuple(float(found[name].scores.mean(dtype=np.float64)) for name in ("bank", "queries"))
    skewness = tuple(hubness(found[name], len(database), k=k)["skewness"] for name in ("bank", "queries"))
    # two-sample test on the means: the observed distance against rows shuffled between the sets
    pooled = np.concatenate([bank, queries]).astype(np.float64)
    shift = float(np.linalg.norm(bank.mean(0, dtype=np.float64) - queries.mean(0, dtype=np.float64)))
    beyond = 0
    for _ in range(permutations):
        order = rng.permutation(len(pooled))
        a, b = pooled[order[: len(bank)]], pooled[order[len(bank) :]]
        beyond += np.linalg.norm(a.mean(0) - b.mean(0)) >= shift
    p_value = (beyond + 1) / (permutations + 1)
    biases = [nnn_bias(database, rows, k) for rows in (bank, queries)]
    agreement = float(stats.spearmanr(biases[0], biases[1]).statistic)
    notes = []
    if agreement < 0.5:
        notes.append(
            f"NNN's bias from the bank agrees poorly with the queries' own (Spearman {agreement:.2f} < 0.5): "
            "a bank correction would lower other items than the queries find close; NNN or QB-Norm may hurt"
        )
    if p_value < 0.01 and abs(similarity[0] - similarity[1]) > 0.05:
        notes.append(
            f"the bank is unlike the queries (mean shift p = {p_value:.3f}; mean similarity to the database "
            f"{similarity[0]:.3f} against {similarity[1]:.3f}): NNN or QB-Norm may hurt; use a bank of real queries, "
            "or nnlift.OnlineBank"
        )
    if warn:
        for note in notes:
            warnings.warn(note, BankWarning, stacklevel=2)
    return BankReport(similarity, shift, p_value, skewness, agreement, notes)

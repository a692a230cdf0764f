"""EASE: a linear item-item model fitted in closed form for top-N ranking."""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

from ..trainset import TrainSet
from .base import Recommender, check_non_negative

logger = logging.getLogger(__name__)

# The fit inverts a dense items x items matrix: 8 * n_items**2 bytes in float64,
# 108 MB for ML-1M's 3,679 training movies and 7.2 GB at 30,000.
# NOTE: ML-25M and ML-32M have more movies than this limit. EASE can rank them only
# after the catalogue is pruned to the most rated movies or the model is made sparse.
MAX_ITEMS = 30_000


class EASE(Recommender):
    """Ranking model of Steck (2019), "Embarrassingly Shallow Autoencoders for Sparse Data".

    ``X`` is the binary users x items matrix (1 where the user rated the item, whatever
    the stars). The item-item weights solve ``min ||X - X B||^2 + l2 * ||B||^2`` with
    ``diag(B) = 0``, in closed form::

        P = (X^T X + l2 * I)^-1,   B[j, i] = -P[j, i] / P[i, i],   B[i, i] = 0

    Ranking score: ``score(u, i) = sum_j X[u, j] * B[j, i]``. The score is not on the
    rating scale, so the model does not predict ratings: ``predict`` always falls back
    (user mean) and the pipeline reports only its ranking metrics.

    Parameters
    ----------
    l2 : float
        L2 regularisation. 1000 was the best of {100, 250, 500, 1000, 2000, 4000} by
        NDCG@10 on a 10 % validation split of the ML-1M training ratings (2000 tied,
        with a lower catalogue coverage).
    """

    name = "ease"
    predicts_ratings = False
    state_attributes = ("item_weights_",)

    def __init__(self, l2: float = 1000.0):
        self.l2 = l2

    def _check_params(self) -> None:
        check_non_negative(l2=self.l2)

    def _fit(self, train: TrainSet, rng: np.random.Generator) -> None:
        if train.n_items > MAX_ITEMS:
            raise ValueError(
                f"ease inverts a dense {train.n_items} x {train.n_items} matrix; it supports at most "
                f"{MAX_ITEMS} items. Keep the most rated movies or rank with item_knn."
            )
        rated = train.user_items.copy()
        rated.data[:] = 1.0
        gram = (rated.T @ rated).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2

        precision = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        weights = precision / -np.diag(precision)
        np.fill_diagonal(weights, 0.0)
        self.item_weights_ = weights.astype(np.float32)

    def _predict_known(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        return np.full(len(user_index), np.nan)

    def _score_items(self, user_index: np.ndarray) -> np.ndarray:
        user_items = self.train_.user_items
        if len(user_index) > 32:  # a batch, e.g. evaluation: one sparse-dense product
            rated = user_items[user_index]
            rated.data[:] = 1.0
            return np.asarray(rated @ self.item_weights_, dtype=np.float64)

        scores = np.empty((len(user_index), self.item_weights_.shape[1]))
        for row, user in enumerate(user_index):
            # Summing the rated items' weight rows is X[u] @ B without a sparse product.
            rated = user_items.indices[user_items.indptr[user] : user_items.indptr[user + 1]]
            scores[row] = self.item_weights_[rated].sum(axis=0, dtype=np.float64)
        return scores

"""Seed-parity user-based CF: cosine similarity on the zero-filled matrix, all raters."""

from __future__ import annotations

import logging
import warnings

import numpy as np

from ..trainset import TrainSet
from .base import Recommender, group_positions

logger = logging.getLogger(__name__)

# A dense float32 users x users matrix takes 4 * n_users**2 bytes: 146 MB for
# ML-1M's 6,040 users but about 19 GB for ML-10M's 69,878.
MAX_DENSE_USERS = 30_000


class UserCosine(Recommender):
    """User-based CF with cosine similarity over every user who rated the item.

    Prediction formula, with ``N(i)`` the training users who rated item ``i``::

        r_hat(u, i) = sum_{v in N(i)} sim(u, v) * r(v, i) / sum_{v in N(i)} |sim(u, v)|

    ``sim`` is the cosine of the two users' zero-filled rating rows, and a user is
    never their own neighbor. When the denominator is zero (no user with a non-zero
    similarity rated the item), the model has no estimate and the base class falls
    back to the user's mean. The dense users x users similarity is kept for parity
    with the original project, so the model rejects more than ``MAX_DENSE_USERS`` users.
    """

    name = "user_cosine"
    state_attributes = ("user_similarity_",)
    separate_files = {"user_similarity_": "user_similarity.pkl"}

    def __init__(self):
        pass

    def _fit(self, train: TrainSet, rng: np.random.Generator) -> None:
        if train.n_users > MAX_DENSE_USERS:
            raise ValueError(
                f"user_cosine keeps a dense {train.n_users} x {train.n_users} similarity "
                f"matrix; it supports at most {MAX_DENSE_USERS} users. "
                "Use user_knn, item_knn or mf for larger data sets."
            )
        if train.n_users > 10_000:
            warnings.warn(
                f"user_cosine allocates {4 * train.n_users**2 / 1e9:.1f} GB for the similarity matrix",
                stacklevel=2,
            )

        # Imported here: scikit-learn's pairwise module takes about a second to import,
        # which the service would pay at start-up for a model it only loads.
        from sklearn.metrics.pairwise import cosine_similarity

        similarity = cosine_similarity(train.user_items, dense_output=True).astype(np.float32)
        np.fill_diagonal(similarity, 0.0)
        self.user_similarity_ = similarity

    def _predict_known(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        item_users, _ = self._matrices()
        estimate = np.full(len(user_index), np.nan)

        for item, positions in group_positions(item_index, "user_cosine: predict, by movie"):
            start, end = item_users.indptr[item], item_users.indptr[item + 1]
            raters = item_users.indices[start:end]
            ratings = item_users.data[start:end].astype(np.float64)
            weights = self.user_similarity_[np.ix_(user_index[positions], raters)]
            numerator = weights @ ratings
            denominator = np.abs(weights).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                estimate[positions] = np.where(denominator > 0, numerator / denominator, np.nan)
        return estimate

    def _score_items(self, user_index: np.ndarray) -> np.ndarray:
        user_items = self.train_.user_items
        _, rated = self._matrices()
        weights = self.user_similarity_[user_index]
        numerator = (user_items.T @ weights.T).T
        denominator = (rated.T @ np.abs(weights).T).T
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, numerator / denominator, np.nan)

    def _matrices(self):
        """Return the training matrix by item (CSC) and its 0/1 copy, built once per training matrix."""
        if getattr(self, "_matrices_of", None) is not self.train_:
            rated = self.train_.user_items.copy()
            rated.data[:] = 1.0
            self._cached_matrices = (self.train_.user_items.tocsc(), rated)
            self._matrices_of = self.train_
        return self._cached_matrices

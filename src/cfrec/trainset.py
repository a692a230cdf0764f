"""Train/test split and the user-item matrix built from the training ratings only."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

logger = logging.getLogger(__name__)

UNKNOWN_INDEX = -1


def train_test_split(
    ratings: pd.DataFrame, test_size: float = 0.2, random_state: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ratings at random into a training and a test frame.

    The split permutes the row positions with ``np.random.default_rng(random_state)``
    and puts the first ``round(n * test_size)`` of them in the test frame, so the same
    seed always gives the same split.

    Raises
    ------
    ValueError
        If ``test_size`` is not strictly between 0 and 1, or either part would be empty.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be between 0 and 1 (exclusive), got {test_size!r}")

    n_ratings = len(ratings)
    n_test = int(round(n_ratings * test_size))
    if n_test == 0 or n_test == n_ratings:
        raise ValueError(
            f"test_size={test_size} leaves an empty train or test set for {n_ratings} ratings"
        )

    order = np.random.default_rng(random_state).permutation(n_ratings)
    test = ratings.iloc[np.sort(order[:n_test])].reset_index(drop=True)
    train = ratings.iloc[np.sort(order[n_test:])].reset_index(drop=True)
    return train, test


@dataclass
class TrainSet:
    """Training ratings as a sparse users x items matrix with maps to raw ids.

    Attributes
    ----------
    user_items : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Ratings as float32; a stored entry is a rating, an absent entry is "not rated".
    user_ids : ndarray of int64, shape (n_users,)
        Raw ``user_id`` of each row, sorted ascending.
    movie_ids : ndarray of int64, shape (n_items,)
        Raw ``movie_id`` of each column, sorted ascending.
    """

    user_items: sp.csr_matrix
    user_ids: np.ndarray
    movie_ids: np.ndarray

    @classmethod
    def from_ratings(cls, ratings: pd.DataFrame) -> TrainSet:
        """Build the matrix from a frame with ``user_id``, ``movie_id`` and ``rating``."""
        user_ids, user_index = np.unique(ratings["user_id"].to_numpy(np.int64), return_inverse=True)
        movie_ids, item_index = np.unique(ratings["movie_id"].to_numpy(np.int64), return_inverse=True)
        values = ratings["rating"].to_numpy(np.float32)
        user_items = sp.csr_matrix(
            (values, (user_index, item_index)), shape=(len(user_ids), len(movie_ids))
        )
        user_items.sort_indices()
        return cls(user_items=user_items, user_ids=user_ids, movie_ids=movie_ids)

    @property
    def n_users(self) -> int:
        return self.user_items.shape[0]

    @property
    def n_items(self) -> int:
        return self.user_items.shape[1]

    @property
    def global_mean(self) -> float:
        return float(self.user_items.data.mean())

    def user_index(self, user_ids) -> np.ndarray:
        """Map raw user ids to row indices, with ``UNKNOWN_INDEX`` for users not in training."""
        return _lookup(self.user_ids, user_ids)

    def item_index(self, movie_ids) -> np.ndarray:
        """Map raw movie ids to column indices, with ``UNKNOWN_INDEX`` for movies not in training."""
        return _lookup(self.movie_ids, movie_ids)

    def to_state(self) -> dict:
        return {"user_items": self.user_items, "user_ids": self.user_ids, "movie_ids": self.movie_ids}

    @classmethod
    def from_state(cls, state: dict) -> TrainSet:
        return cls(
            user_items=sp.csr_matrix(state["user_items"]),
            user_ids=np.asarray(state["user_ids"]),
            movie_ids=np.asarray(state["movie_ids"]),
        )


def _lookup(sorted_ids: np.ndarray, raw_ids) -> np.ndarray:
    raw_ids = np.atleast_1d(np.asarray(raw_ids, dtype=np.int64))
    positions = np.searchsorted(sorted_ids, raw_ids)
    positions = np.minimum(positions, len(sorted_ids) - 1)
    found = sorted_ids[positions] == raw_ids
    return np.where(found, positions, UNKNOWN_INDEX)

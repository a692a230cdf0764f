"""Popularity baseline: ranks items by their number of training ratings."""

from __future__ import annotations

import numpy as np

from ..trainset import TrainSet
from .base import Recommender


class Popularity(Recommender):
    """Non-personalised baseline that ranks items by their number of training ratings.

    Prediction formula (rating)::

        r_hat(u, i) = mean training rating of item i

    Ranking score: ``score(u, i) = |U(i)|``, the number of training ratings of
    item ``i``, the same for every user.
    """

    name = "popular"
    state_attributes = ("item_count_",)

    def __init__(self):
        pass

    def _fit(self, train: TrainSet, rng: np.random.Generator) -> None:
        self.item_count_ = np.bincount(train.user_items.indices, minlength=train.n_items).astype(np.int64)

    def _predict_known(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        return self.item_mean_[item_index]

    def _score_items(self, user_index: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_count_.astype(np.float64), (len(user_index), len(self.item_count_))).copy()

"""Baseline predictor: global mean plus regularised user and item biases."""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from ..trainset import TrainSet
from .base import Recommender, check_non_negative, check_positive_int

logger = logging.getLogger(__name__)


def fit_biases(
    user_items: sp.csr_matrix, reg_user: float, reg_item: float, n_epochs: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Fit ``r(u, i) ~ mu + b_u + b_i`` by alternating closed-form ridge steps.

    Each epoch sets every item bias, then every user bias, to the minimiser of the
    regularised squared error with the other side fixed::

        b_i = sum_{u in U(i)} (r(u, i) - mu - b_u) / (reg_item + |U(i)|)
        b_u = sum_{i in I(u)} (r(u, i) - mu - b_i) / (reg_user + |I(u)|)

    Returns
    -------
    global_mean : float
    user_bias : ndarray of float64, shape (n_users,)
    item_bias : ndarray of float64, shape (n_items,)
        Users and items without ratings get a bias of 0.
    """
    n_users, n_items = user_items.shape
    user_counts = np.diff(user_items.indptr)
    rows = np.repeat(np.arange(n_users), user_counts)
    cols = user_items.indices
    ratings = user_items.data.astype(np.float64)
    item_counts = np.bincount(cols, minlength=n_items)
    global_mean = float(ratings.mean())

    user_bias = np.zeros(n_users)
    item_bias = np.zeros(n_items)
    for _ in range(n_epochs):
        item_bias = np.bincount(cols, ratings - global_mean - user_bias[rows], n_items) / (reg_item + item_counts)
        user_bias = np.bincount(rows, ratings - global_mean - item_bias[cols], n_users) / (reg_user + user_counts)
    return global_mean, user_bias, item_bias


def baseline_residuals(
    user_items: sp.csr_matrix, global_mean: float, user_bias: np.ndarray, item_bias: np.ndarray
) -> sp.csr_matrix:
    """Return ``r(u, i) - mu - b_u - b_i`` at every stored rating, as float32 CSR."""
    rows = np.repeat(np.arange(user_items.shape[0]), np.diff(user_items.indptr))
    residuals = user_items.astype(np.float32, copy=True)
    residuals.data -= (global_mean + user_bias[rows] + item_bias[user_items.indices]).astype(np.float32)
    return residuals


class Baseline(Recommender):
    """Global mean plus regularised user and item biases.

    Prediction formula::

        r_hat(u, i) = mu + b_u + b_i

    ``mu`` is the mean training rating; the biases minimise the squared error plus
    ``reg_user * sum b_u**2 + reg_item * sum b_i**2`` by ``n_epochs`` alternating
    closed-form steps (see :func:`fit_biases`). Surprise's ``BaselineOnly`` (ALS
    option) uses the same steps with ``reg_user=15``, ``reg_item=10``, 10 epochs.

    Parameters
    ----------
    reg_user, reg_item : float
        Ridge penalty of the user and item biases, in rating-count units: a bias
        estimated from ``n`` ratings is shrunk by ``n / (n + reg)``.
    n_epochs : int
        Alternating steps; 3-5 are enough to converge on MovieLens.
    """

    name = "baseline"
    state_attributes = ("user_bias_", "item_bias_")

    def __init__(self, reg_user: float = 15.0, reg_item: float = 10.0, n_epochs: int = 10):
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.n_epochs = n_epochs

    def _check_params(self) -> None:
        check_non_negative(reg_user=self.reg_user, reg_item=self.reg_item)
        check_positive_int(n_epochs=self.n_epochs)

    def _fit(self, train: TrainSet, rng: np.random.Generator) -> None:
        start = time.perf_counter()
        self.global_mean_, self.user_bias_, self.item_bias_ = fit_biases(
            train.user_items, self.reg_user, self.reg_item, self.n_epochs
        )
        logger.debug("baseline: %d epochs in %.2f s", self.n_epochs, time.perf_counter() - start)

    def _predict_known(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        return self.global_mean_ + self.user_bias_[user_index] + self.item_bias_[item_index]

    def _score_items(self, user_index: np.ndarray) -> np.ndarray:
        return self.global_mean_ + self.user_bias_[user_index][:, None] + self.item_bias_[None, :]

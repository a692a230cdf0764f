"""Top-k ranking metrics of a fitted model on held-out ratings.

Protocol of :func:`ranking_metrics`:

1. A test rating is relevant when it is at least ``relevance_threshold`` (4 stars
   by default) and its movie is in the training matrix. No model can rank a movie
   without training ratings, so such ratings are left out of the counts.
2. Evaluated users: every test user present in training with at least one
   relevant test rating.
3. For each evaluated user the model scores every item (``score_items``). Items
   the user rated in training are removed, and NaN scores (items the model cannot
   score) rank after every scored item. The ``k`` highest scores are the
   recommendations, so a user with fewer than ``k`` unrated items gets fewer.
4. Per user: ``hits`` = relevant test items among the recommendations;
   precision@k = hits / k; recall@k = hits / n_relevant; ndcg@k with binary gains,
   DCG = sum over hit ranks r (1-based) of 1 / log2(r + 1), divided by the DCG of
   min(k, n_relevant) hits at the top; hit@k = 1 if hits > 0. Each is averaged
   over the evaluated users.
5. coverage@k: distinct recommended items over all users / number of items.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .models.base import Recommender
from .progress import progress
from .trainset import TrainSet

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 512


def ranking_metrics(
    model: Recommender,
    train: TrainSet,
    test: pd.DataFrame,
    k: int = 10,
    relevance_threshold: float = 4.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict:
    """Compute precision, recall, NDCG, hit rate and catalogue coverage at ``k``.

    The protocol is in this module's docstring. Users are scored ``batch_size`` at
    a time, so memory stays near ``batch_size * n_items`` floats.

    Parameters
    ----------
    model : Recommender
        A model fitted on ``train``.
    train : TrainSet
        The training matrix; its ratings are excluded from the recommendations.
    test : DataFrame
        Held-out ratings with ``user_id``, ``movie_id`` and ``rating``.
    k : int
        Length of each recommendation list.
    relevance_threshold : float
        Minimum test rating for an item to count as relevant.

    Returns
    -------
    dict
        ``precision@k``, ``recall@k``, ``ndcg@k``, ``hit@k``, ``coverage@k`` (floats)
        and ``n_users`` (int, users evaluated). With no user to evaluate, the
        metrics are NaN.

    Raises
    ------
    ValueError
        If ``k`` or ``batch_size`` is not a positive integer.
    """
    for name, value in (("k", k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")

    relevant = _relevant_matrix(train, test, relevance_threshold)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    keys = [f"{metric}@{k}" for metric in ("precision", "recall", "ndcg", "hit", "coverage")]
    if len(users) == 0:
        logger.warning("no test user has a relevant test item; ranking metrics are NaN")
        return {**dict.fromkeys(keys, float("nan")), "n_users": 0}

    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal_dcg = np.cumsum(discounts)
    totals = np.zeros(4)
    recommended_items = np.zeros(train.n_items, dtype=bool)

    batch_starts = progress(range(0, len(users), batch_size), desc=f"{model.name}: ranking, user batches")
    for start in batch_starts:
        batch = users[start : start + batch_size]
        top_items, valid = top_k_unrated(model, train, batch, k)
        recommended_items[top_items[valid]] = True

        batch_relevant = relevant[batch].toarray().astype(bool)
        hits = np.take_along_axis(batch_relevant, top_items, axis=1) & valid
        n_hits = hits.sum(axis=1)
        n_relevant = batch_relevant.sum(axis=1)
        dcg = hits @ discounts[: hits.shape[1]]
        best_dcg = ideal_dcg[np.minimum(n_relevant, k) - 1]

        totals += [(n_hits / k).sum(), (n_hits / n_relevant).sum(), (dcg / best_dcg).sum(), (n_hits > 0).sum()]

    precision, recall, ndcg, hit = totals / len(users)
    coverage = recommended_items.sum() / train.n_items
    values = [precision, recall, ndcg, hit, coverage]
    return {**{key: float(value) for key, value in zip(keys, values)}, "n_users": int(len(users))}


def top_k_unrated(model: Recommender, train: TrainSet, user_index: np.ndarray, k: int):
    """Return each user's ``k`` best-scored items that they did not rate in training.

    Returns
    -------
    top_items : ndarray of int64, shape (n_users, min(k, n_items))
        Item indices, best first.
    valid : ndarray of bool, same shape
        False where the user has fewer unrated items than ``k``; those slots
        hold an arbitrary rated item and are not recommendations.
    """
    scores = np.asarray(model.score_items(user_index), dtype=np.float64)
    # NaN (not scorable) ranks after every finite score; rated items rank after NaN.
    scores = np.where(np.isnan(scores), np.finfo(np.float64).min, scores)
    rated = train.user_items[user_index]
    scores[np.repeat(np.arange(len(user_index)), np.diff(rated.indptr)), rated.indices] = -np.inf

    k = min(k, scores.shape[1])
    if k < scores.shape[1]:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    order = np.argsort(-np.take_along_axis(scores, candidates, axis=1), axis=1, kind="stable")
    top_items = np.take_along_axis(candidates, order, axis=1)
    valid = np.isfinite(np.take_along_axis(scores, top_items, axis=1))
    return top_items, valid


def _relevant_matrix(train: TrainSet, test: pd.DataFrame, relevance_threshold: float) -> sp.csr_matrix:
    """Build the users x items 0/1 matrix of relevant test ratings of known users and items."""
    user_index = train.user_index(test["user_id"].to_numpy())
    item_index = train.item_index(test["movie_id"].to_numpy())
    keep = (user_index >= 0) & (item_index >= 0) & (test["rating"].to_numpy() >= relevance_threshold)
    ones = np.ones(int(keep.sum()), dtype=np.int8)
    relevant = sp.csr_matrix((ones, (user_index[keep], item_index[keep])), shape=(train.n_users, train.n_items))
    relevant.sum_duplicates()
    relevant.data[:] = 1
    return relevant

"""Item-based k-nearest-neighbor CF on mean- or baseline-centred ratings."""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from ..neighbors import densify_if_small, row_dot_products, shrink_similarity, top_k_weighted_mean
from ..trainset import TrainSet
from .base import Recommender, check_non_negative, check_positive_int, group_positions
from .baseline import baseline_residuals, fit_biases

logger = logging.getLogger(__name__)

CENTERINGS = ("baseline", "mean")
# The dense items x items similarity takes 4 * n_items**2 bytes: 54 MB for the 3,679
# movies in ML-1M's default training split, 460 MB for ML-10M's 10,677, 3.2 GB at this limit.
MAX_DENSE_ITEMS = 30_000
# Similarity rows computed at once while fitting: 2**24 float32 cells are 64 MB.
MAX_BLOCK_ELEMENTS = 2**24


class ItemKNN(Recommender):
    """Item-based CF: a reference estimate plus the neighbors' weighted residuals.

    Prediction formula, with ``N_k(i; u)`` the ``k`` items most similar to ``i``
    among those the user rated, keeping only positive similarities::

        r_hat(u, i) = b(u, i) + sum_{j in N_k(i; u)} sim(i, j) * (r(u, j) - b(u, j))
                                / sum_{j in N_k(i; u)} sim(i, j)

    ``centering`` sets the reference ``b`` and the vectors compared by ``sim``:

    - ``"baseline"`` (default): ``b(u, i) = mu + b_u + b_i`` from the regularised
      biases of :class:`~cfrec.models.baseline.Baseline`, and ``sim`` is the cosine
      of the items' baseline-residual columns (as Surprise's ``KNNBaseline``, but
      with a zero-filled cosine instead of a Pearson correlation over common users);
    - ``"mean"``: ``b(u, i) = mu_i``, the item's mean rating, and ``sim`` is the
      adjusted cosine, i.e. the cosine of the item columns after subtracting each
      user's mean rating.

    Similarities are multiplied by ``n_common / (n_common + shrinkage)``, with
    ``n_common`` the number of users who rated both items. An item is never its own
    neighbor. With fewer than ``min_neighbors`` neighbors the model has no estimate
    and the base class falls back to the user's mean.

    The defaults had the lowest RMSE on a random 10% validation split of the
    ML-1M training ratings among k in {20, 30, 40, 60, 100}, shrinkage in
    {50, 100, 200, 400}, both centerings, and Pearson instead of cosine.

    Parameters
    ----------
    k : int
        Maximum number of neighbors per prediction.
    shrinkage : float
        Shrinkage of similarities toward 0, in common-rating units; 0 disables it.
    min_neighbors : int
        Minimum number of positive-similarity neighbors needed for an estimate.
    centering : {"baseline", "mean"}
        Reference estimate and similarity, as above.
    reg_user, reg_item : float
        Regularisation of the biases when ``centering="baseline"``.
    """

    name = "item_knn"
    state_attributes = ("item_similarity_", "user_bias_", "item_bias_")
    separate_files = {"item_similarity_": "item_similarity.pkl"}

    def __init__(
        self,
        k: int = 30,
        shrinkage: float = 50.0,
        min_neighbors: int = 1,
        centering: str = "baseline",
        reg_user: float = 15.0,
        reg_item: float = 10.0,
    ):
        self.k = k
        self.shrinkage = shrinkage
        self.min_neighbors = min_neighbors
        self.centering = centering
        self.reg_user = reg_user
        self.reg_item = reg_item

    def _check_params(self) -> None:
        check_positive_int(k=self.k, min_neighbors=self.min_neighbors)
        check_non_negative(shrinkage=self.shrinkage, reg_user=self.reg_user, reg_item=self.reg_item)
        if self.centering not in CENTERINGS:
            raise ValueError(f"centering must be one of {CENTERINGS}, got {self.centering!r}")

    def _fit(self, train: TrainSet, rng: np.random.Generator) -> None:
        if train.n_items > MAX_DENSE_ITEMS:
            raise ValueError(
                f"item_knn keeps a dense {train.n_items} x {train.n_items} similarity matrix; "
                f"it supports at most {MAX_DENSE_ITEMS} items. Use mf for larger catalogues."
            )

        start = time.perf_counter()
        self._clear_caches()
        self._fit_reference(train)
        residuals = self._residual_matrix(train.user_items)
        self.item_similarity_ = item_similarity(residuals, self.shrinkage)
        logger.debug(
            "item_knn: %d x %d similarity in %.2f s", train.n_items, train.n_items, time.perf_counter() - start
        )

    def _clear_caches(self) -> None:
        # Matrices derived from a previous fit; they are rebuilt on first use.
        for attribute in ("_residuals", "_positive_similarity"):
            self.__dict__.pop(attribute, None)

    def _fit_reference(self, train: TrainSet) -> None:
        if self.centering == "baseline":
            _, self.user_bias_, self.item_bias_ = fit_biases(
                train.user_items, self.reg_user, self.reg_item, n_epochs=10
            )
        else:
            self.user_bias_ = np.zeros(train.n_users)
            self.item_bias_ = self.item_mean_ - self.global_mean_

    def _reference(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Return ``b(u, i)`` for pairs (or, broadcast, a users x items grid)."""
        return self.global_mean_ + self.user_bias_[user_index] + self.item_bias_[item_index]

    def _residual_matrix(self, user_items: sp.csr_matrix) -> sp.csr_matrix:
        """Return ratings minus the reference the similarity is computed on (users x items)."""
        if self.centering == "baseline":
            return baseline_residuals(user_items, self.global_mean_, self.user_bias_, self.item_bias_)
        residuals = user_items.astype(np.float32, copy=True)
        residuals.data -= np.repeat(self.user_mean_, np.diff(user_items.indptr)).astype(np.float32)
        return residuals

    def _prediction_residuals(self) -> sp.csr_matrix:
        """Return ``r(u, j) - b(u, j)`` at every training rating (users x items)."""
        if not hasattr(self, "_residuals"):
            user_items = self.train_.user_items
            rows = np.repeat(np.arange(user_items.shape[0]), np.diff(user_items.indptr))
            residuals = user_items.astype(np.float32, copy=True)
            residuals.data -= self._reference(rows, user_items.indices).astype(np.float32)
            self._residuals = residuals
        return self._residuals

    def _predict_known(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        residuals = self._prediction_residuals()
        deviation = np.full(len(user_index), np.nan)
        for user, positions in group_positions(user_index, "item_knn: predict, by user"):
            start, end = residuals.indptr[user], residuals.indptr[user + 1]
            weights = self.item_similarity_[np.ix_(item_index[positions], residuals.indices[start:end])]
            deviation[positions], _ = top_k_weighted_mean(
                weights, residuals.data[start:end], self.k, self.min_neighbors
            )
        return self._reference(user_index, item_index) + deviation

    def _score_items(self, user_index: np.ndarray) -> np.ndarray:
        # NOTE: ranking averages over every rated item with a positive similarity
        # instead of the k most similar ones, so a batch costs dense matrix products
        # rather than a top-k selection per (user, item).
        if not hasattr(self, "_positive_similarity"):
            self._positive_similarity = np.maximum(self.item_similarity_, 0.0)
        residuals = self._prediction_residuals()[user_index]
        rated = _stored_mask(residuals).astype(np.float32)
        numerator = residuals.toarray() @ self._positive_similarity.T
        total_weight = rated @ self._positive_similarity.T
        with np.errstate(invalid="ignore", divide="ignore"):
            deviation = numerator / total_weight
        if self.min_neighbors > 1:
            n_neighbors = rated @ (self._positive_similarity > 0).T.astype(np.float32)
            deviation[n_neighbors < self.min_neighbors] = np.nan
        deviation[total_weight <= 0] = np.nan
        return self._reference(user_index[:, None], np.arange(self.train_.n_items)[None, :]) + deviation


def _stored_mask(matrix: sp.csr_matrix) -> np.ndarray:
    """Return a dense bool array, True at every stored entry (even a stored 0)."""
    mask = np.zeros(matrix.shape, dtype=bool)
    mask[np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr)), matrix.indices] = True
    return mask


def item_similarity(residuals: sp.csr_matrix, shrinkage: float) -> np.ndarray:
    """Compute the shrunk cosine similarity of every pair of item columns of ``residuals``.

    Returns a dense float32 (n_items, n_items) array with 0 on the diagonal,
    computed ``MAX_BLOCK_ELEMENTS`` cells at a time.
    """
    item_users = residuals.T.tocsr()
    unit_columns = normalize(item_users, norm="l2", axis=1)
    rated = item_users.copy()
    rated.data[:] = 1.0
    dense_unit = densify_if_small(unit_columns)
    dense_rated = densify_if_small(rated) if shrinkage > 0 else None

    n_items = item_users.shape[0]
    block_size = max(1, MAX_BLOCK_ELEMENTS // n_items)
    if block_size >= n_items and isinstance(dense_unit, np.ndarray):
        # One block: numpy computes X @ X.T with a symmetric product, half the work.
        similarity = dense_unit @ dense_unit.T
        if shrinkage > 0:
            shrink_similarity(similarity, dense_rated @ dense_rated.T, shrinkage)
        np.fill_diagonal(similarity, 0.0)
        return similarity

    similarity = np.empty((n_items, n_items), dtype=np.float32)
    for start in range(0, n_items, block_size):
        stop = min(start + block_size, n_items)
        block = row_dot_products(unit_columns[start:stop], dense_unit)
        if shrinkage > 0:
            shrink_similarity(block, row_dot_products(rated[start:stop], dense_rated), shrinkage)
        similarity[start:stop] = block
    np.fill_diagonal(similarity, 0.0)
    return similarity

"""Item-item similarity and each item's top-k most similar items."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from .progress import progress

logger = logging.getLogger(__name__)

# Rows of the items x items similarity computed at once: 1,024 x 84k float32 is 344 MB.
BLOCK_SIZE = 1024
# Largest matrix, in float32 cells (256 MB), that densify_if_small turns dense.
MAX_DENSE_ELEMENTS = 2**26


def center_by_user_mean(user_items: sp.csr_matrix) -> sp.csr_matrix:
    """Subtract each user's mean rating from their stored ratings (adjusted cosine)."""
    counts = np.diff(user_items.indptr)
    sums = np.asarray(user_items.sum(axis=1)).ravel()
    means = np.divide(sums, counts, out=np.zeros_like(sums, dtype=np.float64), where=counts > 0)
    centered = user_items.astype(np.float32, copy=True)
    centered.data -= np.repeat(means, counts).astype(np.float32)
    return centered


def top_k_item_neighbors(user_items: sp.csr_matrix, k: int = 100, adjusted: bool = True) -> dict:
    """Find each item's ``k`` most similar items by (adjusted) cosine similarity.

    The similarity of items ``i`` and ``j`` is the cosine of their rating columns,
    after subtracting each user's mean when ``adjusted``. It is computed in blocks
    of ``BLOCK_SIZE`` items, so memory grows with ``n_items * BLOCK_SIZE``, not
    ``n_items ** 2``.

    Returns
    -------
    dict
        ``neighbor_index``: int32 array (n_items, k), most similar first, -1 where an
        item has fewer than ``k`` neighbors with a positive similarity;
        ``similarity``: float32 array (n_items, k), NaN where the index is -1.
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")

    matrix = center_by_user_mean(user_items) if adjusted else user_items.astype(np.float32)
    item_vectors = normalize(matrix.T.tocsr(), norm="l2", axis=1)
    n_items = item_vectors.shape[0]
    k = min(k, max(n_items - 1, 1))
    neighbor_index = np.full((n_items, k), -1, dtype=np.int32)
    similarity = np.full((n_items, k), np.nan, dtype=np.float32)

    for start in progress(range(0, n_items, BLOCK_SIZE), desc="similar movies, item blocks"):
        stop = min(start + BLOCK_SIZE, n_items)
        block = (item_vectors[start:stop] @ item_vectors.T).toarray()
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # an item is not its own neighbor
        top = _top_k_columns(block, k)
        top_values = np.take_along_axis(block, top, axis=1)
        keep = top_values > 0
        neighbor_index[start:stop] = np.where(keep, top, -1)
        similarity[start:stop] = np.where(keep, top_values, np.nan)
    return {"neighbor_index": neighbor_index, "similarity": similarity}


def _top_k_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Return the column indices of each row's ``k`` largest scores, largest first."""
    if k < scores.shape[1]:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        candidates = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    order = np.argsort(-np.take_along_axis(scores, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def densify_if_small(matrix: sp.spmatrix, max_dense_elements: int | None = None):
    """Return ``matrix`` as a dense float32 array if it has at most ``max_dense_elements`` cells.

    ``max_dense_elements`` defaults to ``MAX_DENSE_ELEMENTS``. Larger matrices are
    returned unchanged (sparse), so callers handle both.
    """
    if max_dense_elements is None:
        max_dense_elements = MAX_DENSE_ELEMENTS
    if matrix.shape[0] * matrix.shape[1] <= max_dense_elements:
        return matrix.toarray().astype(np.float32, copy=False)
    return matrix


def row_dot_products(rows: sp.csr_matrix, others) -> np.ndarray:
    """Return the dot product of every row of ``rows`` with every row of ``others``.

    ``others`` is a sparse matrix or the dense array from :func:`densify_if_small`.
    A dense ``others`` makes the product run in BLAS, which is several times faster
    than a sparse product at MovieLens densities. The result is a dense float32 array of
    shape (n_rows, n_others); with L2-normalised rows it is their cosine similarity.
    """
    if isinstance(others, np.ndarray):
        product = rows.toarray() @ others.T
    else:
        product = (rows @ others.T).toarray()
    return np.asarray(product, dtype=np.float32)


def shrink_similarity(similarity: np.ndarray, n_common: np.ndarray, shrinkage: float) -> np.ndarray:
    """Multiply similarities by ``n_common / (n_common + shrinkage)``, in place; return them.

    ``n_common`` counts the items (or users) both sides rated, so similarities
    supported by few common ratings shrink towards zero.
    """
    if shrinkage > 0:
        similarity *= n_common / (n_common + np.float32(shrinkage))
    return similarity


def top_k_weighted_mean(
    weights: np.ndarray, values: np.ndarray, k: int, min_neighbors: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Average ``values`` over each row's ``k`` largest positive weights.

    Parameters
    ----------
    weights : ndarray, shape (n_rows, n_candidates)
        Similarity of each target (row) to each candidate neighbor.
    values : ndarray, shape (n_candidates,) or (n_rows, n_candidates)
        Value each candidate contributes, e.g. its mean-centred rating.
    k : int
        Number of most similar candidates considered per row; of those, only the
        ones with a positive weight are used.
    min_neighbors : int
        Rows with fewer positive-weight neighbors among the top ``k`` get NaN.

    Returns
    -------
    mean : ndarray of float64, shape (n_rows,)
        ``sum(w * value) / sum(w)`` over the neighbors used, NaN where there are
        fewer than ``min_neighbors`` of them (a row with no candidates included).
    n_neighbors : ndarray of int64, shape (n_rows,)
        Number of neighbors used per row.
    """
    n_rows, n_candidates = weights.shape
    if n_candidates == 0:
        return np.full(n_rows, np.nan), np.zeros(n_rows, dtype=np.int64)

    values = np.broadcast_to(values, weights.shape)
    if k < n_candidates:
        top = np.argpartition(weights, n_candidates - k, axis=1)[:, n_candidates - k :]
        weights = np.take_along_axis(weights, top, axis=1)
        values = np.take_along_axis(values, top, axis=1)

    positive = weights > 0
    weights = np.where(positive, weights, 0.0).astype(np.float64)
    n_neighbors = positive.sum(axis=1)
    total_weight = weights.sum(axis=1)
    weighted_sum = np.einsum("ij,ij->i", weights, values)
    enough = (n_neighbors >= max(min_neighbors, 1)) & (total_weight > 0)
    mean = np.full(n_rows, np.nan)
    mean[enough] = weighted_sum[enough] / total_weight[enough]
    return mean, n_neighbors

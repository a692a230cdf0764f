"""The contract every rating model follows, and the shared cold-start fallback.

A model is fitted on a :class:`~cfrec.trainset.TrainSet` and then works in matrix
indices: ``predict`` estimates a batch of (user_index, item_index) pairs and
``score_items`` scores every item for a batch of users. Raw ids are mapped to
indices by the trainset; ``UNKNOWN_INDEX`` (-1) marks an id absent from training.

Pairs a model cannot estimate get an explicit fallback with a reason code:

- user and movie known, the model has no estimate (e.g. no neighbor rated the
  movie): the user's mean training rating;
- user unknown, movie known: the movie's mean training rating;
- user known, movie unknown: the user's mean training rating;
- both unknown: the global mean training rating.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..progress import progress
from ..trainset import TrainSet

logger = logging.getLogger(__name__)

# Batches with at least this many groups get a progress bar (a test set, not a request).
PROGRESS_MIN_GROUPS = 500

RATING_MIN = 1.0
RATING_MAX = 5.0

NO_FALLBACK = 0
FALLBACK_NO_ESTIMATE = 1
FALLBACK_UNKNOWN_USER = 2
FALLBACK_UNKNOWN_ITEM = 3
FALLBACK_UNKNOWN_BOTH = 4

FALLBACK_REASONS = {
    NO_FALLBACK: None,
    FALLBACK_NO_ESTIMATE: "model_has_no_estimate: used the user's mean training rating",
    FALLBACK_UNKNOWN_USER: "user_not_in_training: used the movie's mean training rating",
    FALLBACK_UNKNOWN_ITEM: "movie_not_in_training: used the user's mean training rating",
    FALLBACK_UNKNOWN_BOTH: "user_and_movie_not_in_training: used the global mean rating",
}


class NotFittedError(RuntimeError):
    """Raised when a model is used before ``fit``."""


@dataclass
class Predictions:
    """Estimated ratings for a batch of pairs.

    Attributes
    ----------
    rating : ndarray of float64, shape (n_pairs,)
        Estimates clipped to the rating scale 1-5.
    fallback : ndarray of int8, shape (n_pairs,)
        ``NO_FALLBACK`` where the model estimated the pair itself, else the
        ``FALLBACK_*`` code of the rule that produced the estimate.
    """

    rating: np.ndarray
    fallback: np.ndarray

    def reasons(self) -> list[str | None]:
        """Return the fallback reason of each pair, None where the model estimated it."""
        return [FALLBACK_REASONS[int(code)] for code in self.fallback]


class Recommender:
    """Base class of the rating models.

    Subclasses set ``name``, store each ``__init__`` argument as an attribute of the
    same name (as scikit-learn estimators do), implement
    ``_fit``, ``_predict_known`` and ``_score_items``, and list in
    ``state_attributes`` the fitted attributes needed to predict after loading.
    Subclasses with hyper-parameters validate them in ``_check_params``, which
    ``fit`` calls before touching the model.
    """

    name: ClassVar[str] = ""
    # False for ranking-only models, whose scores are not on the rating scale.
    predicts_ratings: ClassVar[bool] = True
    state_attributes: ClassVar[tuple[str, ...]] = ()
    # Fitted attributes saved in an artifact file of their own, by attribute name.
    separate_files: ClassVar[dict[str, str]] = {}

    def get_params(self) -> dict:
        """Return the hyper-parameters, read from the attributes named like ``__init__``'s."""
        names = [
            name
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
        ]
        return {name: getattr(self, name) for name in names}

    # --- fitting -----------------------------------------------------------------
    def fit(self, train: TrainSet, random_state: int | None = None) -> Recommender:
        """Fit the model on the training matrix and return it."""
        self._check_params()
        if train.user_items.nnz == 0:
            raise ValueError("cannot fit on an empty training set")

        self.train_ = train
        self._set_means(train)
        self._fit(train, np.random.default_rng(random_state))
        return self

    def _set_means(self, train: TrainSet) -> None:
        user_items = train.user_items
        self.global_mean_ = train.global_mean
        user_counts = np.diff(user_items.indptr)
        item_counts = np.bincount(user_items.indices, minlength=train.n_items)
        user_sums = np.asarray(user_items.sum(axis=1)).ravel()
        item_sums = np.asarray(user_items.sum(axis=0)).ravel()
        self.user_mean_ = _safe_divide(user_sums, user_counts, self.global_mean_)
        self.item_mean_ = _safe_divide(item_sums, item_counts, self.global_mean_)

    def _check_params(self) -> None:
        """Raise ValueError naming an invalid hyper-parameter; called first by ``fit``."""

    def _fit(self, train: TrainSet, rng: np.random.Generator) -> None:
        raise NotImplementedError

    # --- prediction --------------------------------------------------------------
    def predict(self, user_index, item_index) -> Predictions:
        """Estimate ratings for pairs of matrix indices (``UNKNOWN_INDEX`` allowed)."""
        self._check_fitted()
        user_index = np.atleast_1d(np.asarray(user_index, dtype=np.int64))
        item_index = np.atleast_1d(np.asarray(item_index, dtype=np.int64))
        if user_index.shape != item_index.shape:
            raise ValueError(
                f"user_index and item_index must have the same shape, "
                f"got {user_index.shape} and {item_index.shape}"
            )

        known_user = user_index >= 0
        known_item = item_index >= 0
        both = known_user & known_item
        rating = np.full(user_index.shape, np.nan)
        if both.any():
            rating[both] = self._predict_known(user_index[both], item_index[both])

        fallback = np.zeros(user_index.shape, dtype=np.int8)
        fallback[both & np.isnan(rating)] = FALLBACK_NO_ESTIMATE
        fallback[~known_user & known_item] = FALLBACK_UNKNOWN_USER
        fallback[known_user & ~known_item] = FALLBACK_UNKNOWN_ITEM
        fallback[~known_user & ~known_item] = FALLBACK_UNKNOWN_BOTH
        rating = self._fill_fallback(rating, fallback, user_index, item_index)
        return Predictions(rating=np.clip(rating, RATING_MIN, RATING_MAX), fallback=fallback)

    def _fill_fallback(self, rating, fallback, user_index, item_index) -> np.ndarray:
        rating = rating.copy()
        use_user = (fallback == FALLBACK_NO_ESTIMATE) | (fallback == FALLBACK_UNKNOWN_ITEM)
        use_item = fallback == FALLBACK_UNKNOWN_USER
        rating[use_user] = self.user_mean_[user_index[use_user]]
        rating[use_item] = self.item_mean_[item_index[use_item]]
        rating[fallback == FALLBACK_UNKNOWN_BOTH] = self.global_mean_
        return rating

    def _predict_known(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Estimate pairs of known users and items; NaN where the model has no estimate."""
        raise NotImplementedError

    def score_items(self, user_index) -> np.ndarray:
        """Score every item for each user, for ranking.

        Returns an array of shape ``(len(user_index), n_items)``; higher is better, and
        NaN marks an item the model cannot score for that user. Items the user rated in
        training are scored too: the caller masks them.
        """
        self._check_fitted()
        user_index = np.atleast_1d(np.asarray(user_index, dtype=np.int64))
        if (user_index < 0).any() or (user_index >= self.train_.n_users).any():
            raise ValueError("score_items needs users present in the training matrix")
        return self._score_items(user_index)

    def _score_items(self, user_index: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # --- persistence -------------------------------------------------------------
    def get_state(self) -> dict:
        """Return the fitted state as plain numpy/scipy/builtin objects, for pickling."""
        self._check_fitted()
        fitted = {name: getattr(self, name) for name in self.state_attributes}
        means = {"global_mean_": self.global_mean_, "user_mean_": self.user_mean_, "item_mean_": self.item_mean_}
        return {"name": self.name, "params": self.get_params(), "fitted": {**means, **fitted}}

    @classmethod
    def from_state(cls, state: dict, train: TrainSet) -> Recommender:
        """Rebuild a fitted model from ``get_state()`` output and its training matrix."""
        if state.get("name") != cls.name:
            raise ValueError(f"state is for model {state.get('name')!r}, not {cls.name!r}")
        model = cls(**state["params"])
        model.train_ = train
        for attribute, value in state["fitted"].items():
            setattr(model, attribute, value)
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "train_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(train) first")


def check_non_negative(**values) -> None:
    """Raise ValueError naming the first hyper-parameter that is negative or not a number."""
    for name, value in values.items():
        is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not is_number or not value >= 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def check_positive_int(**values) -> None:
    """Raise ValueError naming the first hyper-parameter that is not a positive integer."""
    for name, value in values.items():
        is_integer = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not is_integer or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray, default: float) -> np.ndarray:
    out = np.full(numerator.shape, default, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def group_positions(keys: np.ndarray, description: str = "groups"):
    """Yield ``(key, positions)`` for each distinct key, positions into ``keys``.

    Lets a model process a batch of pairs one item (or user) at a time with array
    operations inside each group, instead of a Python loop per pair. Large batches
    show a progress bar named ``description`` when progress bars are on.
    """
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    bounds = zip(starts, ends)
    if len(starts) >= PROGRESS_MIN_GROUPS:
        bounds = progress(bounds, total=len(starts), desc=description)
    for start, end in bounds:
        yield int(sorted_keys[start]), order[start:end]

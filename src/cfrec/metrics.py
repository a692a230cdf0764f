"""Rating-prediction metrics: RMSE, MAE and rounded-rating accuracy."""

from __future__ import annotations

import numpy as np

from .models.base import RATING_MAX, RATING_MIN


def rounded_rating(predicted) -> np.ndarray:
    """Round predictions to the nearest star (halves to even, as numpy does) within 1-5."""
    return np.clip(np.rint(np.asarray(predicted, dtype=np.float64)), RATING_MIN, RATING_MAX).astype(np.int64)


def rating_metrics(true_rating, predicted) -> dict[str, float]:
    """Compute RMSE, MAE and accuracy (share of rounded predictions equal to the true rating).

    Raises
    ------
    ValueError
        If the arrays differ in length, are empty, or a prediction is NaN.
    """
    true_rating = np.asarray(true_rating, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    if true_rating.shape != predicted.shape or true_rating.size == 0:
        raise ValueError(
            f"expected two non-empty arrays of equal length, got {true_rating.shape} and {predicted.shape}"
        )
    if np.isnan(predicted).any():
        raise ValueError(f"{int(np.isnan(predicted).sum())} predictions are NaN; every test pair needs one")

    error = predicted - true_rating
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "accuracy": float(np.mean(rounded_rating(predicted) == true_rating)),
    }

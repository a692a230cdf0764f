"""Rating models, by the name used on the command line and in artifacts."""

from __future__ import annotations

from .base import Predictions, Recommender
from .baseline import Baseline
from .blend import Blend
from .ease import EASE
from .item_knn import ItemKNN
from .mf import MatrixFactorization
from .popular import Popularity
from .user_cosine import UserCosine
from .user_knn import UserKNN

MODELS: dict[str, type[Recommender]] = {
    model.name: model
    for model in (UserCosine, Popularity, Baseline, UserKNN, ItemKNN, MatrixFactorization, Blend, EASE)
}


def get_model_class(name: str) -> type[Recommender]:
    """Return the model class registered as ``name``; raise ValueError for an unknown name."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}") from None


__all__ = ["MODELS", "Predictions", "Recommender", "get_model_class"]

"""Rating models, by the name used on the command line and in artifacts."""

from __future__ import annotations

from .base import Predictions, Recommender
from .user_cosine import UserCosine

MODELS: dict[str, type[Recommender]] = {
    UserCosine.name: UserCosine,
}


def get_model_class(name: str) -> type[Recommender]:
    """Return the model class registered as ``name``; raise ValueError for an unknown name."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}") from None


__all__ = ["MODELS", "Predictions", "Recommender", "get_model_class"]

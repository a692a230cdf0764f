"""The training pipeline: data, split, models, evaluation, artifacts.

``run_training`` is what ``python src/train.py`` calls; the steps are small
functions so tests and benchmarks can call them one at a time.
"""

from __future__ import annotations

import json
import logging
import platform
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from . import artifacts, data
from .metrics import rating_metrics
from .models import get_model_class
from .models.base import NO_FALLBACK, Recommender
from .neighbors import top_k_item_neighbors
from .progress import progress, progress_enabled, timed_step
from .trainset import TrainSet, train_test_split

logger = logging.getLogger(__name__)

# About 20 s end to end on ML-1M on an idle 2-core machine; `--all` adds the slower models.
DEFAULT_MODELS = ("user_cosine", "popular", "item_knn", "ease")
SIMILAR_MOVIES_K = 100
# The pair the original project reported (user 1, "One Flew Over the Cuckoo's Nest": 4.41).
EXAMPLE_PAIR = (1, 1193)


@dataclass
class TrainConfig:
    """Options of one training run; the CLI in ``src/train.py`` documents each."""

    data_dir: Path | None = None
    output_dir: Path | None = None
    data_url: str | None = None
    verify_checksums: bool = True
    test_size: float = 0.2
    seed: int = 42
    models: tuple[str, ...] = DEFAULT_MODELS
    serve: str | None = None
    rank_with: str | None = None
    ranking: bool = True
    figures: bool = True
    model_params: dict[str, dict] = field(default_factory=dict)


@dataclass
class Dataset:
    """The three MovieLens tables and the checksum of the ratings file."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: pd.DataFrame
    ratings_md5: str
    data_dir: Path


def run_training(config: TrainConfig) -> dict:
    """Run every step and return the metrics record that is written to metrics.json.

    Steps: get and load the data, split, build the training matrix, fit and
    evaluate each model and the reference baselines, pick the served rating model
    and the ranking model behind ``/recommend``,
    compute similar movies, write artifacts, metrics, report and figures.
    """
    _validate(config)
    output_dir = artifacts.resolve_output_dir(config.output_dir)

    dataset = load_dataset(config)
    train_ratings, test_ratings = split(dataset.ratings, config)
    train = build_train_set(train_ratings, test_ratings)

    results, fitted = {}, {}
    results.update(evaluate_reference_baselines(train, test_ratings, config.seed))
    for name in progress(config.models, desc="models", unit="model", leave=True):
        fitted[name], results[name] = fit_and_evaluate(name, train, test_ratings, config)

    served = choose_served_model(fitted, results, config.serve)
    ranker = choose_ranker(fitted, results, config.rank_with, served)
    metadata = build_metadata(config, dataset, train, test_ratings, served, results[served])
    metadata["ranker"] = ranker
    item_neighbors = compute_item_neighbors(train)
    record = {
        **_split_record(config, train_ratings, test_ratings),
        "served_model": served, "ranker": ranker, "models": results,
    }

    # user_similarity.pkl is written whenever user_cosine is trained, because users of the
    # original project know the file; other models that are not served leave no files.
    seed_parity = tuple(fitted[name] for name in ("user_cosine",) if name in fitted and name not in (served, ranker))
    with timed_step(logger, "write artifacts") as step:
        paths = artifacts.save_artifacts(
            output_dir, train, fitted[served], dataset.movies[["movie_id", "title", "genres"]],
            np.sort(dataset.users["user_id"].to_numpy()), item_neighbors, metadata,
            ranker=fitted[ranker],
            other_models=seed_parity,
        )
        write_json(output_dir / "metrics.json", record)
        step["detail"] = f"{len(paths) + 1} files in {output_dir}, serving {served}, ranking with {ranker}"

    if config.figures:
        from .report import write_report

        with timed_step(logger, "write report and figures") as step:
            step["detail"] = str(write_report(output_dir, record, dataset, train, test_ratings, fitted))
    return record


def _validate(config: TrainConfig) -> None:
    if not config.models:
        raise ValueError("no model to train: pass --model NAME or --all")
    for name in config.models:
        get_model_class(name)
    for option, name in (("--serve", config.serve), ("--rank-with", config.rank_with)):
        if name is not None and name not in config.models:
            raise ValueError(
                f"{option} {name} names a model that is not trained in this run; trained: {', '.join(config.models)}"
            )
    if config.serve is not None and not get_model_class(config.serve).predicts_ratings:
        raise ValueError(f"--serve {config.serve}: this model ranks but does not predict ratings")
    if not any(get_model_class(name).predicts_ratings for name in config.models):
        raise ValueError("no rating model to serve: add a model other than a ranking-only one (e.g. item_knn)")


# --- steps ---------------------------------------------------------------------
def load_dataset(config: TrainConfig) -> Dataset:
    """Download the data if absent, verify it, and parse the three tables."""
    data_dir = data.resolve_data_dir(config.data_dir)
    with timed_step(logger, "get data") as step:
        data.ensure_dataset(
            data_dir, url=config.data_url, verify=config.verify_checksums, progress=progress_enabled()
        )
        step["detail"] = str(data_dir)

    with timed_step(logger, "load ratings, movies, users") as step:
        ratings = data.load_ratings(data_dir / "ratings.dat")
        movies = data.load_movies(data_dir / "movies.dat")
        users = data.load_users(data_dir / "users.dat")
        step["detail"] = (
            f"{len(ratings):,} ratings by {ratings['user_id'].nunique():,} users "
            f"on {ratings['movie_id'].nunique():,} movies; {len(movies):,} titles, {len(users):,} users"
        )
    _check_ids_in_catalog(ratings, movies, users)
    ratings_md5 = data.file_md5(data_dir / "ratings.dat")
    return Dataset(ratings=ratings, movies=movies, users=users, ratings_md5=ratings_md5, data_dir=data_dir)


def _check_ids_in_catalog(ratings: pd.DataFrame, movies: pd.DataFrame, users: pd.DataFrame) -> None:
    unknown_movies = np.setdiff1d(ratings["movie_id"].unique(), movies["movie_id"].to_numpy())
    unknown_users = np.setdiff1d(ratings["user_id"].unique(), users["user_id"].to_numpy())
    if len(unknown_movies) or len(unknown_users):
        raise data.DataError(
            f"ratings.dat refers to {len(unknown_users)} user ids absent from users.dat "
            f"(e.g. {unknown_users[:5].tolist()}) and {len(unknown_movies)} movie ids absent from "
            f"movies.dat (e.g. {unknown_movies[:5].tolist()}); the three files must come from the same release."
        )


def split(ratings: pd.DataFrame, config: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the ratings at random into train and test."""
    with timed_step(logger, "split train/test") as step:
        train, test = train_test_split(ratings, test_size=config.test_size, random_state=config.seed)
        step["detail"] = f"{len(train):,} train, {len(test):,} test (test_size={config.test_size}, seed={config.seed})"
    return train, test


def build_train_set(train_ratings: pd.DataFrame, test_ratings: pd.DataFrame) -> TrainSet:
    """Build the users x items matrix from the training ratings only."""
    with timed_step(logger, "build user-item matrix from train") as step:
        train = TrainSet.from_ratings(train_ratings)
        unseen_user = train.user_index(test_ratings["user_id"]) < 0
        unseen_item = train.item_index(test_ratings["movie_id"]) < 0
        density = train.user_items.nnz / (train.n_users * train.n_items)
        step["detail"] = (
            f"{train.n_users:,} users x {train.n_items:,} movies, {train.user_items.nnz:,} ratings, "
            f"sparsity {1 - density:.2%}; test ratings with a user unseen in train: {int(unseen_user.sum())}, "
            f"with a movie unseen in train: {int(unseen_item.sum())}"
        )
    return train


def evaluate_reference_baselines(train: TrainSet, test: pd.DataFrame, seed: int) -> dict:
    """Score two reference predictors: uniform random 1-5 and the global mean."""
    true_rating = test["rating"].to_numpy()
    rng = np.random.default_rng(seed)
    results = {}
    for name, predicted in (
        ("random", rng.integers(1, 6, size=len(test)).astype(np.float64)),
        ("global_mean", np.full(len(test), train.global_mean)),
    ):
        results[name] = {**rating_metrics(true_rating, predicted), "fit_seconds": 0.0, "predict_seconds": 0.0}
        logger.info("%s: RMSE %.4f, accuracy %.4f", name, results[name]["rmse"], results[name]["accuracy"])
    return results


def fit_and_evaluate(name: str, train: TrainSet, test: pd.DataFrame, config: TrainConfig):
    """Fit one model, predict the test set and compute its metrics."""
    model = get_model_class(name)(**config.model_params.get(name, {}))
    user_index = train.user_index(test["user_id"])
    item_index = train.item_index(test["movie_id"])

    with timed_step(logger, f"{name}: fit") as fit_step:
        model.fit(train, random_state=config.seed, **_fit_extras(model, user_index, item_index, test))
    if not model.predicts_ratings:
        result = {"fit_seconds": round(fit_step["seconds"], 3), "params": model.get_params()}
        if config.ranking:
            result.update(_ranking(model, train, test))
        return model, result

    with timed_step(logger, f"{name}: predict {len(test):,} test ratings") as predict_step:
        predictions = model.predict(user_index, item_index)

    result = rating_metrics(test["rating"].to_numpy(), predictions.rating)
    result["coverage"] = float(np.mean(predictions.fallback == NO_FALLBACK))
    result["fit_seconds"] = round(fit_step["seconds"], 3)
    result["predict_seconds"] = round(predict_step["seconds"], 3)
    result["params"] = model.get_params()
    example = model.predict(train.user_index([EXAMPLE_PAIR[0]]), train.item_index([EXAMPLE_PAIR[1]]))
    result["example_prediction"] = {
        "user_id": EXAMPLE_PAIR[0], "movie_id": EXAMPLE_PAIR[1], "predicted_rating": float(example.rating[0]),
    }
    if hasattr(model, "history_"):
        result["history"] = model.history_
    logger.info(
        "%s: RMSE %.4f, MAE %.4f, accuracy %.4f, coverage %.4f; user %d, movie %d -> %.2f",
        name, result["rmse"], result["mae"], result["accuracy"], result["coverage"],
        *EXAMPLE_PAIR, result["example_prediction"]["predicted_rating"],
    )

    if config.ranking:
        result.update(_ranking(model, train, test))
    return model, result


def _fit_extras(model: Recommender, user_index, item_index, test: pd.DataFrame) -> dict:
    # Models with a learning curve monitor the test RMSE per epoch; it never steers training.
    if getattr(model, "accepts_validation", False):
        return {"validation": (user_index, item_index, test["rating"].to_numpy(np.float64))}
    return {}


def _ranking(model: Recommender, train: TrainSet, test: pd.DataFrame) -> dict:
    from .ranking import ranking_metrics

    with timed_step(logger, f"{model.name}: ranking metrics") as step:
        result = ranking_metrics(model, train, test, k=10)
        step["detail"] = ", ".join(f"{key} {value:.4f}" for key, value in result.items() if key.endswith("@10"))
    result["ranking_seconds"] = round(step["seconds"], 3)
    return result


def choose_served_model(fitted: dict, results: dict, serve: str | None) -> str:
    """Return ``serve`` if given, else the trained rating model with the lowest test RMSE."""
    if serve is not None:
        return serve
    rating_models = [name for name, model in fitted.items() if model.predicts_ratings]
    return min(rating_models, key=lambda name: results[name]["rmse"])


def choose_ranker(fitted: dict, results: dict, rank_with: str | None, served: str) -> str:
    """Return ``rank_with`` if given, else the trained model with the highest NDCG@10.

    Without ranking metrics (``--no-ranking``) the served model ranks too.
    """
    if rank_with is not None:
        return rank_with
    ranked = [name for name in fitted if "ndcg@10" in results[name]]
    if not ranked:
        return served
    return max(ranked, key=lambda name: results[name]["ndcg@10"])


def compute_item_neighbors(train: TrainSet) -> dict:
    """Compute each movie's most similar movies for ``/similar_movies``."""
    with timed_step(logger, "similar movies (adjusted cosine, top 100)") as step:
        neighbors = top_k_item_neighbors(train.user_items, k=SIMILAR_MOVIES_K, adjusted=True)
        step["detail"] = f"{train.n_items:,} movies"
    return neighbors


# --- records -------------------------------------------------------------------
def _split_record(config: TrainConfig, train_ratings: pd.DataFrame, test_ratings: pd.DataFrame) -> dict:
    return {
        "test_size": config.test_size,
        "seed": config.seed,
        "n_train": len(train_ratings),
        "n_test": len(test_ratings),
    }


def build_metadata(config, dataset: Dataset, train: TrainSet, test, served: str, served_result: dict) -> dict:
    """Describe the run: format, data checksum, split, served model, library versions."""
    import scipy
    import sklearn

    return {
        "run_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ratings_md5": dataset.ratings_md5,
        "split": {"test_size": config.test_size, "seed": config.seed, "n_train": int(train.user_items.nnz),
                  "n_test": len(test)},
        "model": served,
        "params": served_result.get("params", {}),
        "metrics": {key: served_result[key] for key in ("rmse", "mae", "accuracy", "coverage")},
        "versions": {
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "pandas": pd.__version__,
        },
    }


def write_json(path: Path, record: dict) -> None:
    """Write ``record`` as indented JSON, atomically."""
    temporary = path.with_name(f".{path.name}.{time.time_ns()}.tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2, default=_to_builtin)
    temporary.replace(path)


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")

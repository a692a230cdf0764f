"""Shared fixtures: a small generated data set in the ML-1M format and artifacts trained on it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Ratings of the generated data set come from 3 hidden taste factors, so neighbours
# and latent factors have something real to find.
FIXTURE_USERS = 60
FIXTURE_MOVIES = 48
RATINGS_PER_USER = 18
# Movie 1193 and user 1 are present so the README's example request works on the fixture.
FIXTURE_MOVIE_IDS = [*range(1, FIXTURE_MOVIES), 1193]
EXTRA_MOVIE_IDS = [3001, 3002]  # in movies.dat, never rated
EXTRA_USER_IDS = [900, 901]  # in users.dat, never rated
GENRES = ["Action", "Comedy", "Drama", "Romance", "Thriller", "Children's"]


def real_data_dir() -> Path | None:
    """Return a folder holding the real ratings.dat, or None.

    Looks at $CF_DATA_DIR, then data/ml-1m in the repository.
    """
    for candidate in (os.environ.get("CF_DATA_DIR"), REPO_ROOT / "data" / "ml-1m"):
        if candidate and (Path(candidate) / "ratings.dat").is_file():
            return Path(candidate)
    return None


def write_fixture_dataset(folder: Path, seed: int = 7) -> Path:
    """Write ratings.dat, movies.dat and users.dat in the ML-1M format; return the folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    user_factors = rng.normal(size=(FIXTURE_USERS, 3))
    movie_factors = rng.normal(size=(len(FIXTURE_MOVIE_IDS), 3))
    movie_bias = rng.normal(scale=0.5, size=len(FIXTURE_MOVIE_IDS))

    lines = []
    for user in range(FIXTURE_USERS):
        movies = rng.choice(len(FIXTURE_MOVIE_IDS), size=RATINGS_PER_USER, replace=False)
        scores = 3.4 + movie_bias[movies] + user_factors[user] @ movie_factors[movies].T
        stars = np.clip(np.rint(scores + rng.normal(scale=0.4, size=len(movies))), 1, 5).astype(int)
        for movie, star in zip(movies, stars):
            lines.append(f"{user + 1}::{FIXTURE_MOVIE_IDS[movie]}::{star}::{978300000 + len(lines)}")
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")

    titles = [
        f"{movie_id}::{'Misérables, Les (1995)' if movie_id == 2 else f'Movie {movie_id} (1990)'}::"
        f"{GENRES[movie_id % len(GENRES)]}|{GENRES[(movie_id + 2) % len(GENRES)]}"
        for movie_id in [*FIXTURE_MOVIE_IDS, *EXTRA_MOVIE_IDS]
    ]
    (folder / "movies.dat").write_text("\n".join(titles) + "\n", encoding="latin-1")

    users = [f"{user_id}::F::25::4::12345" for user_id in [*range(1, FIXTURE_USERS + 1), *EXTRA_USER_IDS]]
    (folder / "users.dat").write_text("\n".join(users) + "\n", encoding="latin-1")
    return folder


@pytest.fixture(scope="session")
def fixture_data_dir(tmp_path_factory) -> Path:
    """A generated ML-1M-format data set (60 users, 48 rated movies, 2 unrated movies and users)."""
    return write_fixture_dataset(tmp_path_factory.mktemp("fixture-data") / "ml-1m")


@pytest.fixture(scope="session")
def fixture_artifacts_dir(fixture_data_dir, tmp_path_factory) -> Path:
    """Artifacts trained on the fixture data set by the real pipeline (every model)."""
    from cfrec import pipeline
    from cfrec.models import MODELS

    output_dir = tmp_path_factory.mktemp("fixture-artifacts")
    config = pipeline.TrainConfig(
        data_dir=fixture_data_dir,
        output_dir=output_dir,
        verify_checksums=False,
        models=tuple(MODELS),
        figures=False,
    )
    pipeline.run_training(config)
    return output_dir

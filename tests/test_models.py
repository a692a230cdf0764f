"""Contract, hand-computed and real-data tests of every registered rating model."""

from __future__ import annotations

import pickle
from math import sqrt

import numpy as np
import pandas as pd
import pytest
from conftest import real_data_dir

from cfrec.models import MODELS
from cfrec.models.base import (
    FALLBACK_NO_ESTIMATE,
    FALLBACK_UNKNOWN_BOTH,
    FALLBACK_UNKNOWN_ITEM,
    FALLBACK_UNKNOWN_USER,
    NO_FALLBACK,
    NotFittedError,
)
from cfrec.trainset import TrainSet, train_test_split

MODEL_NAMES = sorted(MODELS)


def make_train(n_users: int = 30, n_items: int = 20, density: float = 0.5, seed: int = 0) -> TrainSet:
    """Return a random rating matrix with every user and item rated at least once."""
    rng = np.random.default_rng(seed)
    rated = rng.random((n_users, n_items)) < density
    rated[np.arange(n_users), np.arange(n_users) % n_items] = True
    rated[np.arange(n_items) % n_users, np.arange(n_items)] = True
    users, items = np.nonzero(rated)
    ratings = pd.DataFrame(
        {"user_id": users + 1, "movie_id": items + 100, "rating": rng.integers(1, 6, size=len(users))}
    )
    return TrainSet.from_ratings(ratings)


def make_tiny_train() -> TrainSet:
    """Return the 4 users x 4 items matrix of the hand-computed tests (0 = not rated).

    ::

               item0 item1 item2 item3
        user0    5     3     -     1
        user1    4     -     4     1
        user2    1     1     -     5
        user3    -     1     5     4
    """
    matrix = np.array([[5, 3, 0, 1], [4, 0, 4, 1], [1, 1, 0, 5], [0, 1, 5, 4]])
    users, items = np.nonzero(matrix)
    ratings = pd.DataFrame({"user_id": users, "movie_id": items, "rating": matrix[users, items]})
    return TrainSet.from_ratings(ratings)


@pytest.fixture(scope="module")
def train() -> TrainSet:
    return make_train()


@pytest.fixture(scope="module", params=MODEL_NAMES)
def fitted(request, train):
    return MODELS[request.param]().fit(train, random_state=0)


# --- contract ------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_returns_self(name, train):
    model = MODELS[name]()
    assert model.fit(train, random_state=0) is model


def test_predict_shapes_and_range(fitted, train):
    rng = np.random.default_rng(1)
    user_index = rng.integers(0, train.n_users, size=50)
    item_index = rng.integers(0, train.n_items, size=50)

    predictions = fitted.predict(user_index, item_index)

    assert predictions.rating.shape == (50,)
    assert predictions.fallback.shape == (50,)
    assert np.all(np.isfinite(predictions.rating))
    assert np.all((predictions.rating >= 1.0) & (predictions.rating <= 5.0))


def test_predict_unknown_ids_fall_back(fitted):
    predictions = fitted.predict([0, -1, 0, -1], [0, 0, -1, -1])

    assert predictions.fallback[0] in (NO_FALLBACK, FALLBACK_NO_ESTIMATE)
    assert predictions.fallback[1] == FALLBACK_UNKNOWN_USER
    assert predictions.fallback[2] == FALLBACK_UNKNOWN_ITEM
    assert predictions.fallback[3] == FALLBACK_UNKNOWN_BOTH
    assert predictions.rating[1] == pytest.approx(np.clip(fitted.item_mean_[0], 1, 5))
    assert predictions.rating[2] == pytest.approx(np.clip(fitted.user_mean_[0], 1, 5))
    assert predictions.rating[3] == pytest.approx(fitted.global_mean_)


def test_predict_rejects_mismatched_shapes(fitted):
    with pytest.raises(ValueError, match="same shape"):
        fitted.predict([0, 1], [0])


def test_score_items_shape(fitted, train):
    scores = fitted.score_items(np.array([0, 3, 7]))

    assert scores.shape == (3, train.n_items)
    assert not np.all(np.isnan(scores))


def test_state_pickle_round_trip(fitted, train):
    state = pickle.loads(pickle.dumps(fitted.get_state()))
    restored = type(fitted).from_state(state, train)
    user_index = np.repeat(np.arange(train.n_users), 3)
    item_index = np.tile([0, 5, 19], train.n_users)

    before = fitted.predict(user_index, item_index)
    after = restored.predict(user_index, item_index)

    np.testing.assert_array_equal(after.rating, before.rating)
    np.testing.assert_array_equal(after.fallback, before.fallback)
    np.testing.assert_array_equal(restored.score_items([0, 4]), fitted.score_items([0, 4]))


def test_state_holds_only_plain_objects(fitted):
    allowed_modules = ("builtins", "numpy", "scipy")

    def check(value, path):
        module = type(value).__module__.split(".")[0]
        assert module in allowed_modules, f"{path} is a {type(value).__module__}.{type(value).__name__}"
        if isinstance(value, dict):
            for key, item in value.items():
                check(item, f"{path}.{key}")
        elif isinstance(value, (list, tuple)):
            for position, item in enumerate(value):
                check(item, f"{path}[{position}]")

    check(fitted.get_state(), "state")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_refit_matches_fresh_fit(name, train):
    other = make_train(seed=5)
    user_index = np.arange(other.n_users)
    item_index = user_index % other.n_items
    refitted = MODELS[name]().fit(train, random_state=0)
    refitted.score_items([0])  # fills any cache built from the first training set
    refitted.fit(other, random_state=0)
    fresh = MODELS[name]().fit(other, random_state=0)

    np.testing.assert_array_equal(
        refitted.predict(user_index, item_index).rating, fresh.predict(user_index, item_index).rating
    )
    np.testing.assert_array_equal(refitted.score_items([1, 2]), fresh.score_items([1, 2]))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unfitted_model_raises(name):
    model = MODELS[name]()
    with pytest.raises(NotFittedError):
        model.predict([0], [0])
    with pytest.raises(NotFittedError):
        model.score_items([0])
    with pytest.raises(NotFittedError):
        model.get_state()


INVALID_PARAMS = [
    ("baseline", {"reg_user": -1.0}, "reg_user"),
    ("baseline", {"reg_item": "ten"}, "reg_item"),
    ("baseline", {"n_epochs": 0}, "n_epochs"),
    ("user_knn", {"k": 0}, "k must"),
    ("user_knn", {"shrinkage": -1.0}, "shrinkage"),
    ("user_knn", {"min_neighbors": 0}, "min_neighbors"),
    ("item_knn", {"k": 2.5}, "k must"),
    ("item_knn", {"centering": "median"}, "centering"),
    ("item_knn", {"shrinkage": -5}, "shrinkage"),
    ("mf", {"n_factors": 0}, "n_factors"),
    ("mf", {"n_epochs": -3}, "n_epochs"),
    ("mf", {"reg": -0.1}, "reg must"),
    ("mf", {"reg_bias": -0.1}, "reg_bias"),
    ("blend", {"components": ("blend",)}, "components"),
    ("blend", {"components": ()}, "components"),
    ("blend", {"component_params": {"user_knn": {}}}, "component_params"),
    ("blend", {"holdout_size": 0.9}, "holdout_size"),
]


@pytest.mark.parametrize(("name", "params", "message"), INVALID_PARAMS)
def test_invalid_hyper_parameter_raises(name, params, message, train):
    model = MODELS[name](**params)
    with pytest.raises(ValueError, match=message):
        model.fit(train)
    assert not hasattr(model, "train_")


def test_fit_rejects_empty_train(train):
    empty = TrainSet(user_items=train.user_items[:, :0].tocsr(), user_ids=train.user_ids, movie_ids=train.movie_ids[:0])
    with pytest.raises(ValueError, match="empty"):
        MODELS["baseline"]().fit(empty)


@pytest.mark.parametrize("name", ["user_knn", "item_knn"])
def test_knn_blocked_sparse_path_matches(name, train, monkeypatch):
    import cfrec.models.item_knn
    import cfrec.models.user_knn
    import cfrec.neighbors

    user_index = np.repeat(np.arange(train.n_users), 2)
    item_index = np.tile([1, 7], train.n_users)
    params = {"shrinkage": 5.0}
    whole = MODELS[name](**params).fit(train)
    expected = whole.predict(user_index, item_index).rating
    expected_scores = whole.score_items([0, 9])

    # Blocks of 2 rows, and sparse products instead of dense ones.
    monkeypatch.setattr(cfrec.models.user_knn, "MAX_BLOCK_ELEMENTS", 2 * train.n_users)
    monkeypatch.setattr(cfrec.models.item_knn, "MAX_BLOCK_ELEMENTS", 2 * train.n_items)
    monkeypatch.setattr(cfrec.neighbors, "MAX_DENSE_ELEMENTS", 0)
    blocked = MODELS[name](**params).fit(train)

    np.testing.assert_allclose(blocked.predict(user_index, item_index).rating, expected, rtol=1e-5)
    np.testing.assert_allclose(blocked.score_items([0, 9]), expected_scores, rtol=1e-5)


# --- hand-computed expectations on the 4 x 4 matrix ----------------------------
def test_user_cosine_hand_computed():
    model = MODELS["user_cosine"]().fit(make_tiny_train())

    # Cosines of zero-filled rows: user1 = (4, 0, 4, 1), norm sqrt(33).
    cos_10 = (4 * 5 + 1 * 1) / (sqrt(33) * sqrt(35))
    cos_12 = (4 * 1 + 1 * 5) / (sqrt(33) * sqrt(27))
    cos_13 = (4 * 5 + 1 * 4) / (sqrt(33) * sqrt(42))
    np.testing.assert_allclose(model.user_similarity_[1], [cos_10, 0.0, cos_12, cos_13], rtol=1e-6)

    # item1 was rated 3 by user0 and 1 by users 2 and 3.
    expected = (3 * cos_10 + 1 * cos_12 + 1 * cos_13) / (cos_10 + cos_12 + cos_13)
    predictions = model.predict([1], [1])
    assert predictions.rating[0] == pytest.approx(expected, rel=1e-6)
    assert predictions.fallback[0] == NO_FALLBACK


def test_user_knn_hand_computed_similarity():
    model = MODELS["user_knn"]().fit(make_tiny_train())

    # Mean-centred rows (means 3, 3, 7/3, 10/3): user1 = (1, -, 1, -2),
    # user0 = (2, 0, -, -2), user2 = (-4/3, -4/3, -, 8/3), user3 = (-, -7/3, 5/3, 2/3).
    sim_10 = (1 * 2 + (-2) * (-2)) / (sqrt(6) * sqrt(8))
    sim_12 = (1 * (-4 / 3) + (-2) * (8 / 3)) / (sqrt(6) * sqrt(96 / 9))
    sim_13 = (1 * (5 / 3) + (-2) * (2 / 3)) / (sqrt(6) * sqrt(78 / 9))
    np.testing.assert_allclose(model.similarity_rows(np.array([1]))[0], [sim_10, 0.0, sim_12, sim_13], atol=1e-6)


def test_user_knn_hand_computed_prediction_uses_top_k():
    train = make_tiny_train()
    sim_10 = 6 / sqrt(48)
    sim_13 = (1 / 3) / (sqrt(6) * sqrt(78 / 9))

    # item1's raters: user0 (deviation 3 - 3 = 0), user2 (negative similarity,
    # never used), user3 (deviation 1 - 10/3).
    with_two = MODELS["user_knn"](k=2).fit(train).predict([1], [1])
    expected = 3 + (sim_10 * 0 + sim_13 * (1 - 10 / 3)) / (sim_10 + sim_13)
    assert with_two.rating[0] == pytest.approx(expected, rel=1e-6)

    with_one = MODELS["user_knn"](k=1).fit(train).predict([1], [1])
    assert with_one.rating[0] == pytest.approx(3.0)
    assert with_one.fallback[0] == NO_FALLBACK


def test_user_knn_no_positive_neighbor_falls_back():
    # item2's raters are user1 (similarity 0.87 to user0) and user3 (negative
    # similarity), so with min_neighbors=2 user0 has too few neighbors.
    train = make_tiny_train()
    model = MODELS["user_knn"](min_neighbors=2).fit(train)

    predictions = model.predict([0], [2])

    assert predictions.fallback[0] == FALLBACK_NO_ESTIMATE
    assert predictions.rating[0] == pytest.approx(3.0)


def test_baseline_hand_computed():
    model = MODELS["baseline"](reg_user=1.0, reg_item=1.0, n_epochs=1).fit(make_tiny_train())

    mu = 35 / 12
    # Item biases with user biases at 0: sum of (r - mu) / (1 + n_i).
    item_bias = np.array([10 - 3 * mu, 5 - 3 * mu, 9 - 2 * mu, 11 - 4 * mu]) / np.array([4, 4, 3, 5])
    # Then user biases: sum over the user's items of (r - mu - b_i) / (1 + n_u).
    user_bias = np.array(
        [
            (5 - mu - item_bias[0]) + (3 - mu - item_bias[1]) + (1 - mu - item_bias[3]),
            (4 - mu - item_bias[0]) + (4 - mu - item_bias[2]) + (1 - mu - item_bias[3]),
            (1 - mu - item_bias[0]) + (1 - mu - item_bias[1]) + (5 - mu - item_bias[3]),
            (1 - mu - item_bias[1]) + (5 - mu - item_bias[2]) + (4 - mu - item_bias[3]),
        ]
    ) / 4

    np.testing.assert_allclose(model.item_bias_, item_bias, rtol=1e-6)
    np.testing.assert_allclose(model.user_bias_, user_bias, rtol=1e-6)
    assert model.predict([0], [2]).rating[0] == pytest.approx(mu + user_bias[0] + item_bias[2], rel=1e-6)


def test_ease_weights_match_closed_form():
    train = make_tiny_train()
    model = MODELS["ease"](l2=2.0).fit(train)

    rated = (train.user_items.toarray() > 0).astype(float)
    precision = np.linalg.inv(rated.T @ rated + 2.0 * np.eye(rated.shape[1]))
    expected = -precision / np.diag(precision)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.item_weights_, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score_items([0])[0], rated[0] @ expected, rtol=1e-5, atol=1e-6)


def test_ease_batch_and_single_scores_agree(train):
    model = MODELS["ease"]().fit(train)
    users = np.arange(train.n_users)
    batch = model.score_items(users)
    single = np.vstack([model.score_items([user]) for user in users])
    np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-6)


def test_ease_does_not_predict_ratings(train):
    predictions = MODELS["ease"]().fit(train).predict([0, 1], [0, 1])
    assert np.all(predictions.fallback == FALLBACK_NO_ESTIMATE)


def test_mf_history_monitors_validation(train):
    validation = (np.array([0, 1, 2]), np.array([3, 4, 5]), np.array([4.0, 2.0, 5.0]))
    model = MODELS["mf"](n_epochs=4, n_factors=3).fit(train, random_state=0, validation=validation)
    without = MODELS["mf"](n_epochs=4, n_factors=3).fit(train, random_state=0)

    assert [record["epoch"] for record in model.history_] == [1, 2, 3, 4]
    assert all("test_rmse" in record for record in model.history_)
    assert "test_rmse" not in without.history_[0]
    np.testing.assert_array_equal(model.user_factors_, without.user_factors_)
    train_rmse = [record["train_rmse"] for record in model.history_]
    assert train_rmse == sorted(train_rmse, reverse=True)


def test_mf_same_seed_same_model(train):
    first = MODELS["mf"](n_epochs=2).fit(train, random_state=3)
    second = MODELS["mf"](n_epochs=2).fit(train, random_state=3)
    np.testing.assert_array_equal(first.item_factors_, second.item_factors_)


# --- MovieLens 1M --------------------------------------------------------------
# Test RMSE on the 80/20 split with seed 42, measured at the default hyper-parameters.
RMSE_BANDS = {
    "user_cosine": (0.965, 0.985),
    "popular": (0.970, 0.990),
    "baseline": (0.900, 0.918),
    "user_knn": (0.880, 0.900),
    "item_knn": (0.840, 0.858),
    "mf": (0.843, 0.862),
    "blend": (0.830, 0.850),
}


@pytest.fixture(scope="module")
def ml1m_split():
    data_dir = real_data_dir()
    if data_dir is None:
        pytest.skip("MovieLens 1M ratings.dat not found: set CF_DATA_DIR or run `make data`")
    from cfrec.data import load_ratings

    train_ratings, test_ratings = train_test_split(load_ratings(data_dir / "ratings.dat"))
    train = TrainSet.from_ratings(train_ratings)
    user_index = train.user_index(test_ratings["user_id"].to_numpy())
    item_index = train.item_index(test_ratings["movie_id"].to_numpy())
    return train, user_index, item_index, test_ratings["rating"].to_numpy(np.float64)


def test_rmse_bands_cover_every_model():
    assert set(RMSE_BANDS) == {name for name, model in MODELS.items() if model.predicts_ratings}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RMSE_BANDS))
def test_ml1m_rmse_in_band(name, ml1m_split):
    train, user_index, item_index, rating = ml1m_split
    model = MODELS[name]().fit(train, random_state=42)

    predicted = model.predict(user_index, item_index).rating
    rmse = float(np.sqrt(np.mean((predicted - rating) ** 2)))

    low, high = RMSE_BANDS[name]
    assert low <= rmse <= high, f"{name}: RMSE {rmse:.4f} outside [{low}, {high}]"


@pytest.mark.slow
def test_ml1m_ease_ranking_band(ml1m_split):
    from cfrec.ranking import ranking_metrics

    train, user_index, item_index, rating = ml1m_split
    test = pd.DataFrame({
        "user_id": train.user_ids[np.maximum(user_index, 0)],
        "movie_id": train.movie_ids[np.maximum(item_index, 0)],
        "rating": rating,
    })[(user_index >= 0) & (item_index >= 0)]
    result = ranking_metrics(MODELS["ease"]().fit(train), train, test, k=10)

    assert 0.33 <= result["ndcg@10"] <= 0.40
    assert result["hit@10"] >= 0.84

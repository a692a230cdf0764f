import numpy as np
import pandas as pd
import pytest

from cfrec.metrics import rating_metrics, rounded_rating
from cfrec.trainset import UNKNOWN_INDEX, TrainSet, train_test_split


def make_ratings(n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user_id": np.arange(n) // 10 + 1,
            "movie_id": np.arange(n) % 10 + 100,
            "rating": rng.integers(1, 6, size=n),
            "timestamp": np.arange(n),
        }
    )


def test_split_is_reproducible_and_disjoint():
    ratings = make_ratings()
    train_a, test_a = train_test_split(ratings, test_size=0.2, random_state=3)
    train_b, test_b = train_test_split(ratings, test_size=0.2, random_state=3)
    pd.testing.assert_frame_equal(test_a, test_b)
    assert len(test_a) == 20
    assert len(train_a) == 80
    pairs = lambda frame: set(zip(frame["user_id"], frame["movie_id"]))  # noqa: E731
    assert not pairs(train_a) & pairs(test_a)
    assert pairs(train_a) | pairs(test_a) == pairs(ratings)


def test_split_seed_changes_test_set():
    ratings = make_ratings()
    _, test_a = train_test_split(ratings, random_state=1)
    _, test_b = train_test_split(ratings, random_state=2)
    assert not test_a.equals(test_b)


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5, 0.001])
def test_split_rejects_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(make_ratings(), test_size=test_size)


def test_trainset_maps_raw_ids_to_indices():
    ratings = pd.DataFrame({"user_id": [10, 10, 30], "movie_id": [7, 9, 9], "rating": [4, 2, 5]})
    train = TrainSet.from_ratings(ratings)
    assert train.user_items.shape == (2, 2)
    assert train.user_ids.tolist() == [10, 30]
    assert train.movie_ids.tolist() == [7, 9]
    assert train.user_index([30, 10, 20]).tolist() == [1, 0, UNKNOWN_INDEX]
    assert train.item_index([9, 8, 1000]).tolist() == [1, UNKNOWN_INDEX, UNKNOWN_INDEX]
    assert train.user_items[1, 1] == 5
    assert train.user_items[0, 1] == 2
    assert train.global_mean == pytest.approx(11 / 3)


def test_trainset_from_train_only_has_no_test_pairs():
    ratings = make_ratings()
    train_ratings, test_ratings = train_test_split(ratings)
    train = TrainSet.from_ratings(train_ratings)
    users = train.user_index(test_ratings["user_id"])
    items = train.item_index(test_ratings["movie_id"])
    known = (users >= 0) & (items >= 0)
    assert np.all(np.asarray(train.user_items[users[known], items[known]]).ravel() == 0)


def test_rating_metrics_hand_computed():
    result = rating_metrics([4, 2, 5], [3.6, 2.5, 4.0])
    assert result["rmse"] == pytest.approx(np.sqrt((0.16 + 0.25 + 1.0) / 3))
    assert result["mae"] == pytest.approx((0.4 + 0.5 + 1.0) / 3)
    # 3.6 -> 4 (hit), 2.5 -> 2 (numpy rounds halves to even: hit), 4.0 -> 4 (miss)
    assert result["accuracy"] == pytest.approx(2 / 3)


def test_rounded_rating_clips_to_scale():
    assert rounded_rating([0.2, 5.7, 3.49]).tolist() == [1, 5, 3]


def test_rating_metrics_rejects_nan_and_mismatch():
    with pytest.raises(ValueError, match="NaN"):
        rating_metrics([1, 2], [1.0, np.nan])
    with pytest.raises(ValueError, match="equal length"):
        rating_metrics([1, 2], [1.0])

"""Ranking metrics checked against values computed by hand on a tiny case."""

from __future__ import annotations

from math import log2

import numpy as np
import pandas as pd
import pytest

from cfrec.models.base import Recommender
from cfrec.models.popular import Popularity
from cfrec.ranking import ranking_metrics, top_k_unrated
from cfrec.trainset import TrainSet

# Users 1-3 and movies 10-15 (item indices 0-5).
TRAIN = pd.DataFrame(
    [(1, 10, 5), (1, 11, 3), (2, 12, 4), (3, 10, 2), (3, 13, 4), (3, 14, 1), (3, 15, 5)],
    columns=["user_id", "movie_id", "rating"],
)
TEST = pd.DataFrame(
    [
        (1, 12, 5),  # relevant
        (1, 13, 2),  # below the threshold
        (1, 15, 4),  # relevant
        (2, 10, 1),  # user 2 has no relevant test item, so is not evaluated
        (3, 11, 4),  # relevant
        (9, 10, 5),  # user not in training: ignored
        (1, 99, 5),  # movie not in training: ignored
    ],
    columns=["user_id", "movie_id", "rating"],
)
NAN = np.nan
SCORES = np.array(
    [
        [9.0, 8.0, 7.0, 6.0, 5.0, 4.0],  # user 1: unrated items 2, 3, 4, 5 in this order
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        [9.0, NAN, 1.0, 9.0, 9.0, 9.0],  # user 3: unrated items 1 (NaN) and 2
    ]
)


class FixedScores(Recommender):
    """Test double whose ranking scores are the rows of ``SCORES``."""

    name = "fixed_scores"

    def __init__(self):
        pass

    def _fit(self, train, rng):
        pass

    def _predict_known(self, user_index, item_index):
        return self.item_mean_[item_index]

    def _score_items(self, user_index):
        return SCORES[user_index]


@pytest.fixture(scope="module")
def train() -> TrainSet:
    return TrainSet.from_ratings(TRAIN)


def test_ranking_metrics_hand_computed(train):
    metrics = ranking_metrics(FixedScores().fit(train), train, TEST, k=2)

    # User 1 gets [item 2 (hit), item 3]: 1 hit of 2 relevant, DCG 1 / log2(2).
    # User 3 gets [item 2, item 1 (hit, NaN ranks last)]: 1 hit of 1, DCG 1 / log2(3).
    ndcg_user1 = 1.0 / (1.0 + 1.0 / log2(3))
    ndcg_user3 = (1.0 / log2(3)) / 1.0
    assert metrics["n_users"] == 2
    assert metrics["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert metrics["recall@2"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    assert metrics["ndcg@2"] == pytest.approx((ndcg_user1 + ndcg_user3) / 2)
    assert metrics["hit@2"] == pytest.approx(1.0)
    assert metrics["coverage@2"] == pytest.approx(3 / 6)


def test_ranking_metrics_short_list_keeps_k_denominator(train):
    # User 3 has only 2 unrated items, so a list of 5 contains 2 recommendations.
    metrics = ranking_metrics(FixedScores().fit(train), train, TEST[TEST["user_id"] == 3], k=5)

    assert metrics["n_users"] == 1
    assert metrics["precision@5"] == pytest.approx(1 / 5)
    assert metrics["recall@5"] == pytest.approx(1.0)
    assert metrics["ndcg@5"] == pytest.approx(1 / log2(3))


def test_top_k_unrated_excludes_training_items(train):
    top_items, valid = top_k_unrated(FixedScores().fit(train), train, np.array([0, 2]), k=3)

    np.testing.assert_array_equal(top_items[0], [2, 3, 4])
    np.testing.assert_array_equal(valid[0], [True, True, True])
    np.testing.assert_array_equal(top_items[1][:2], [2, 1])
    np.testing.assert_array_equal(valid[1], [True, True, False])


def test_ranking_metrics_without_relevant_items_are_nan(train):
    metrics = ranking_metrics(FixedScores().fit(train), train, TEST[TEST["user_id"] == 2], k=2)

    assert metrics["n_users"] == 0
    assert np.isnan(metrics["precision@2"])


@pytest.mark.parametrize("k", [0, -1, 2.5])
def test_ranking_metrics_rejects_invalid_k(train, k):
    with pytest.raises(ValueError, match="k must"):
        ranking_metrics(FixedScores().fit(train), train, TEST, k=k)


def test_popularity_ranks_by_training_count(train):
    model = Popularity().fit(train)

    np.testing.assert_array_equal(model.score_items([0])[0], [2, 1, 1, 1, 1, 1])
    assert model.predict([0], [0]).rating[0] == pytest.approx((5 + 2) / 2)
    # User 1 rated items 0 and 1; the others tie at one rating each.
    top_items, valid = top_k_unrated(model, train, np.array([0]), k=2)
    assert set(top_items[0]) <= {2, 3, 4, 5}
    assert valid.all()
